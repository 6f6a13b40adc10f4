using CrabKv.Storage.Format;

namespace CrabKv.Storage.Segments;

/// <summary>Outcome of reading the next record.</summary>
public enum ScanStatus
{
    /// <summary>A whole record that verifies.</summary>
    Record,
    /// <summary>The data ends exactly at a record boundary.</summary>
    End,
    /// <summary>The bytes at <see cref="SegmentScanner.Position"/> are not a valid record.</summary>
    Invalid,
}

/// <summary>
/// Reads a segment's records front to back through a large buffer, verifying each one.
/// The spans it hands out are valid until the next call. Not thread safe.
/// </summary>
public sealed class SegmentScanner
{
    private readonly Segment _segment;
    private readonly long _length;
    private byte[] _buffer;
    private long _bufferStart;
    private int _bufferLength;

    /// <summary>Scans <paramref name="segment"/> from the first record up to <paramref name="length"/>.</summary>
    public SegmentScanner(Segment segment, long length, int bufferBytes = 1 << 20)
    {
        _segment = segment;
        _length = length;
        _buffer = new byte[bufferBytes];
        Position = FormatConstants.FileHeaderSize;
    }

    /// <summary>Offset of the next record to read (or of the invalid bytes).</summary>
    public long Position { get; private set; }

    /// <summary>The last record read: header, offset and bytes.</summary>
    public RecordHeader Header { get; private set; }

    /// <summary>Offset of the last record read.</summary>
    public long RecordOffset { get; private set; }

    /// <summary>The last record's bytes (valid until the next call).</summary>
    public ReadOnlySpan<byte> Record => _buffer.AsSpan((int)(RecordOffset - _bufferStart), Header.Size);

    /// <summary>Why the last <see cref="ScanStatus.Invalid"/> was returned.</summary>
    public string InvalidReason { get; private set; } = "";

    /// <summary>Reads the next record.</summary>
    public ScanStatus Next()
    {
        if (Position == _length)
        {
            return ScanStatus.End;
        }
        if (_length - Position < FormatConstants.RecordHeaderSize)
        {
            InvalidReason = "partial record header";
            return ScanStatus.Invalid;
        }
        var head = Window(Position, FormatConstants.RecordHeaderSize);
        if (!RecordCodec.TryReadHeader(head, out var header))
        {
            InvalidReason = "invalid record header";
            return ScanStatus.Invalid;
        }
        if (Position + header.Size > _length)
        {
            InvalidReason = "record runs past the end of the data";
            return ScanStatus.Invalid;
        }
        var record = Window(Position, header.Size);
        if (!RecordCodec.Verify(record, header))
        {
            InvalidReason = "checksum mismatch";
            return ScanStatus.Invalid;
        }
        Header = header;
        RecordOffset = Position;
        Position += header.Size;
        return ScanStatus.Record;
    }

    /// <summary>
    /// Offset of the first whole, verifying record strictly after <paramref name="from"/>, or
    /// -1 when there is none (the rest is a torn tail, garbage or zero fill). Used to tell a
    /// torn tail from damage in the middle, and by repair to step over damage.
    /// </summary>
    public long FindNextValidRecord(long from) => FindNextValidRecord(from, out _);

    /// <summary>
    /// <see cref="FindNextValidRecord(long)"/> that also tells whether every byte from
    /// <paramref name="from"/> to the end is zero (a preallocated region never written), from
    /// the same reads: open decides "torn tail or zero fill" without reading the tail twice.
    /// <paramref name="zeroTail"/> is false whenever a record is found.
    /// </summary>
    public long FindNextValidRecord(long from, out bool zeroTail)
    {
        // The first bytes (all of them when fewer than a header follow) are checked here: the
        // loop below starts one byte on and stops a header short of the end.
        zeroTail = from >= _length
            || !Window(from, (int)Math.Min(FormatConstants.RecordHeaderSize + 1, _length - from)).ContainsAnyExcept((byte)0);
        for (var q = from + 1; q + FormatConstants.RecordHeaderSize <= _length;)
        {
            var chunk = Window(q, (int)Math.Min(4096, _length - q));
            // A record header is never 19 zero bytes (key length 0): skip zero runs fast.
            var firstNonZero = chunk.IndexOfAnyExcept((byte)0);
            if (firstNonZero < 0)
            {
                q += Math.Max(1, chunk.Length - FormatConstants.RecordHeaderSize);
                continue;
            }
            zeroTail = false;
            if (firstNonZero > FormatConstants.RecordHeaderSize)
            {
                q += firstNonZero - FormatConstants.RecordHeaderSize;
                continue;
            }
            if (RecordCodec.TryReadHeader(Window(q, (int)Math.Min(FormatConstants.RecordHeaderSize, _length - q)), out var h)
                && q + h.Size <= _length && RecordCodec.Verify(Window(q, h.Size), h))
            {
                return q;
            }
            q++;
        }
        return -1;
    }

    /// <summary>
    /// When the bytes at <paramref name="position"/> hold a plausible record header whose
    /// record ends exactly where a valid record (or the data) begins, returns that end: the
    /// damage is confined to this one record. Otherwise -1.
    /// </summary>
    public long EndOfDamagedRecord(long position)
    {
        if (_length - position < FormatConstants.RecordHeaderSize
            || !RecordCodec.TryReadHeader(Window(position, FormatConstants.RecordHeaderSize), out var h))
        {
            return -1;
        }
        var end = position + h.Size;
        if (end > _length)
        {
            return -1;
        }
        if (end == _length)
        {
            return end;
        }
        if (_length - end >= FormatConstants.RecordHeaderSize
            && RecordCodec.TryReadHeader(Window(end, FormatConstants.RecordHeaderSize), out var next)
            && end + next.Size <= _length && RecordCodec.Verify(Window(end, next.Size), next))
        {
            return end;
        }
        return -1;
    }

    /// <summary>
    /// End of the record whose header at <paramref name="position"/> is plausible (valid
    /// fields, fits the data), whether or not its checksum holds; -1 when the header is not.
    /// </summary>
    public long EndOfPlausibleRecord(long position)
    {
        if (_length - position < FormatConstants.RecordHeaderSize
            || !RecordCodec.TryReadHeader(Window(position, FormatConstants.RecordHeaderSize), out var h)
            || position + h.Size > _length)
        {
            return -1;
        }
        return position + h.Size;
    }

    /// <summary>Moves the scan to <paramref name="position"/> (repair skips damaged ranges).</summary>
    public void Seek(long position) => Position = position;

    private ReadOnlySpan<byte> Window(long offset, int count)
    {
        if (offset < _bufferStart || offset + count > _bufferStart + _bufferLength)
        {
            Refill(offset, count);
        }
        return _buffer.AsSpan((int)(offset - _bufferStart), count);
    }

    /// <summary>
    /// Makes the buffer start at <paramref name="offset"/> and hold at least
    /// <paramref name="count"/> bytes. A forward scan reads every byte once: the part of a
    /// record the old buffer already holds (one cut by the buffer's end) moves to the front and
    /// only the bytes after it are read.
    /// </summary>
    private void Refill(long offset, int count)
    {
        var bufferEnd = _bufferStart + _bufferLength;
        var keep = offset >= _bufferStart && offset < bufferEnd ? (int)(bufferEnd - offset) : 0;
        var target = count > _buffer.Length ? new byte[Math.Max(count, _buffer.Length * 2)] : _buffer;
        if (keep > 0)
        {
            _buffer.AsSpan((int)(offset - _bufferStart), keep).CopyTo(target); // overlapping copy: a memmove
        }
        _buffer = target;
        _bufferStart = offset;
        var wanted = (int)Math.Min(_buffer.Length, _length - offset);
        _bufferLength = keep + _segment.ReadAt(_buffer.AsSpan(keep, wanted - keep), offset + keep);
        if (_bufferLength < count)
        {
            throw new IOException($"Short read in '{_segment.Path}' at {offset}: file shrank while being scanned.");
        }
    }
}
