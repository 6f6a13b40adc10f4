using System.Buffers;
using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Index;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage.Partition;

/// <summary>One record to append: a key (UTF-8) and a raw value (null = tombstone), with its absolute expiry.</summary>
public readonly record struct LogRecord(byte[] Key, byte[]? Value, long Expiry);

/// <summary>How a partition writes its log.</summary>
/// <param name="MaxSegmentBytes">The active segment rolls before a write would pass this.</param>
/// <param name="WriteBufferBytes">In-memory append buffer.</param>
/// <param name="Preallocate">Reserve the active segment's space ahead of the writes (cheaper fsyncs).</param>
/// <param name="Compression">Snappy-compress values that shrink.</param>
/// <param name="CompressionMinValueBytes">Values shorter than this are stored as they are.</param>
public sealed record LogSettings(long MaxSegmentBytes, int WriteBufferBytes, bool Preallocate, bool Compression, int CompressionMinValueBytes)
{
    /// <summary>
    /// Preallocation step: a new active segment reserves this much, and reserves another step
    /// each time the writes reach the end of the reserved region, up to
    /// <see cref="PreallocateLimitBytes"/>. Null = the whole segment up front. Rounded down to
    /// the zero-fill step (<see cref="SegmentWriter.ZeroFillStep"/>); 0 = no preallocation.
    /// </summary>
    public long? PreallocateStepBytes { get; init; }

    /// <summary>Most a segment reserves: the roll size, at most 256 MiB (0 when preallocation is off).</summary>
    public long PreallocateLimitBytes => Preallocate ? Math.Min(MaxSegmentBytes, 256L << 20) : 0;

    /// <summary>Preallocated size of a new active segment: one step, at most <see cref="PreallocateLimitBytes"/>.</summary>
    public long PreallocateBytes => PreallocateStepBytes is { } step
        ? Math.Min(PreallocateLimitBytes, Math.Max(0, step) / SegmentWriter.ZeroFillStep * SegmentWriter.ZeroFillStep)
        : PreallocateLimitBytes;
}

/// <summary>A segment the log sealed: still open when it holds records, deleted (length 0, no segment) when it held none.</summary>
public readonly record struct SealedSegment(SegmentId Id, long Length, Segment? Segment);

/// <summary>
/// The write side of a partition: its active segment and the rules for appending to it,
/// written once for the embedded store and the WAL writer actor — compress a value when it
/// pays, frame a batch (<c>InBatch</c> on every record, <c>BatchEnd</c> on the last), roll
/// to a new segment before a write would pass the roll size (a write is never split), seal a
/// segment trimmed to its data or delete it when it holds no record. Flush and fsync are the
/// caller's policy. Not thread safe.
/// </summary>
public sealed class ActiveLog : IDisposable
{
    private readonly FileLayer _files;
    private readonly string _directory;
    private readonly LogSettings _settings;
    private uint _nextSequence;
    private long _syncsOfSealed;
    private SegmentWriter? _writer;

    /// <summary>Starts a log whose first segment gets sequence <paramref name="nextSequence"/> (from recovery); file work goes through <paramref name="files"/>.</summary>
    public ActiveLog(FileLayer files, string directory, uint nextSequence, LogSettings settings)
    {
        _files = files;
        _directory = directory;
        _settings = settings;
        _nextSequence = nextSequence;
        _writer = NewWriter();
    }

    /// <summary>The active segment's writer.</summary>
    public SegmentWriter Writer => _writer ?? throw new InvalidOperationException("The log is closed.");

    /// <summary>The active segment's id.</summary>
    public SegmentId ActiveId => Writer.Id;

    /// <summary>fsyncs issued by every segment of this log.</summary>
    public long SyncCount => _syncsOfSealed + (_writer?.SyncCount ?? 0);

    /// <summary>Stores a value as it goes to disk: compressed when that pays, else as it is.</summary>
    public (RecordFlags Flags, byte[] Stored) Prepare(byte[]? value)
    {
        if (value is null)
        {
            return (RecordFlags.Tombstone, []);
        }
        if (_settings.Compression && ValueCompression.TryCompress(value, _settings.CompressionMinValueBytes) is { } compressed)
        {
            return (RecordFlags.Compressed, compressed);
        }
        return (RecordFlags.None, value);
    }

    /// <summary>Stores a span value (a single put): compressed when that pays.</summary>
    public RecordFlags Prepare(ReadOnlySpan<byte> value, out byte[]? compressed)
    {
        compressed = _settings.Compression ? ValueCompression.TryCompress(value, _settings.CompressionMinValueBytes) : null;
        return compressed is null ? RecordFlags.None : RecordFlags.Compressed;
    }

    /// <summary>True when <paramref name="recordBytes"/> more would pass the roll size of a segment that already holds records.</summary>
    public bool NeedsRoll(long recordBytes) =>
        Writer.Length + recordBytes > _settings.MaxSegmentBytes && Writer.Length > FormatConstants.FileHeaderSize;

    /// <summary>Appends one record (no batch framing) and returns its location. Does not roll.</summary>
    public KeyLocation Append(RecordFlags flags, long expiry, ReadOnlySpan<byte> key, ReadOnlySpan<byte> stored)
    {
        var offset = Writer.Append(flags, expiry, key, stored);
        return new KeyLocation(Writer.Id, (uint)offset, (uint)RecordCodec.SizeOf(key.Length, stored.Length), expiry, (flags & RecordFlags.Tombstone) != 0);
    }

    /// <summary>
    /// Appends prepared records as one unit: framed as a batch when <paramref name="asBatch"/>
    /// (all-or-none after a crash), else they must be one record. Does not roll: call
    /// <see cref="NeedsRoll"/> with <see cref="SizeOf"/> first.
    /// </summary>
    public KeyLocation[] Append(ReadOnlySpan<LogRecord> records, ReadOnlySpan<(RecordFlags Flags, byte[] Stored)> stored, bool asBatch)
    {
        var offsets = new uint[records.Length];
        var sizes = new uint[records.Length];
        var segment = Append(records, stored, asBatch, offsets, sizes);
        var locations = new KeyLocation[records.Length];
        for (var i = 0; i < records.Length; i++)
        {
            locations[i] = new KeyLocation(segment, offsets[i], sizes[i], records[i].Expiry, records[i].Value is null);
        }
        return locations;
    }

    /// <summary>
    /// <see cref="Append(ReadOnlySpan{LogRecord}, ReadOnlySpan{ValueTuple{RecordFlags, byte[]}}, bool)"/> into
    /// caller-owned arrays (8 bytes a record instead of a location's 32: a large write-back flush
    /// stays off the large-object heap); returns the segment they landed in.
    /// </summary>
    public SegmentId Append(ReadOnlySpan<LogRecord> records, ReadOnlySpan<(RecordFlags Flags, byte[] Stored)> stored, bool asBatch, Span<uint> offsets, Span<uint> sizes)
    {
        if (!asBatch && records.Length != 1)
        {
            throw new ArgumentException("Several records are appended as a batch.", nameof(asBatch));
        }
        var segment = Writer.Id;
        for (var i = 0; i < records.Length; i++)
        {
            var flags = stored[i].Flags;
            if (asBatch)
            {
                flags |= RecordFlags.InBatch | (i == records.Length - 1 ? RecordFlags.BatchEnd : RecordFlags.None);
            }
            var location = Append(flags, records[i].Expiry, records[i].Key, stored[i].Stored);
            offsets[i] = location.Offset;
            sizes[i] = location.Size;
        }
        return segment;
    }

    /// <summary>Bytes the prepared records take on disk.</summary>
    public static long SizeOf(ReadOnlySpan<LogRecord> records, ReadOnlySpan<(RecordFlags Flags, byte[] Stored)> stored)
    {
        long total = 0;
        for (var i = 0; i < records.Length; i++)
        {
            total += RecordCodec.SizeOf(records[i].Key.Length, stored[i].Stored.Length);
        }
        return total;
    }

    /// <summary>Hands buffered bytes to the OS.</summary>
    public void Flush() => Writer.Flush();

    /// <summary>Makes everything written durable (fdatasync).</summary>
    public void Sync() => Writer.Sync();

    /// <summary>
    /// Seals the active segment and starts the next one (created first: if that fails, the
    /// active one is untouched). The sealed segment stays open for reads unless it held no record.
    /// </summary>
    public SealedSegment Roll()
    {
        var next = NewWriter();
        SealedSegment sealedOne;
        try
        {
            sealedOne = SealOrDelete(Writer);
        }
        catch
        {
            var path = next.Segment.Path;
            next.Dispose();
            _files.Delete(path);
            throw;
        }
        _writer = next;
        return sealedOne;
    }

    /// <summary>Seals (or deletes, when empty) the active segment and starts none: the log is closed.</summary>
    public SealedSegment Close()
    {
        var result = SealOrDelete(Writer);
        _writer = null;
        return result;
    }

    /// <summary>
    /// Drops the log as a crash would: buffered bytes are lost, the file keeps its preallocated
    /// tail, nothing is sealed. For a writer that failed (its state is unknown) and crash tests.
    /// </summary>
    public void Abandon()
    {
        _writer?.Segment.Dispose();
        _writer = null;
    }

    /// <summary>Closes the log (sealing the active segment) and the handle of the segment it sealed.</summary>
    public void Dispose()
    {
        if (_writer is not null)
        {
            Close().Segment?.Dispose();
        }
    }

    private SealedSegment SealOrDelete(SegmentWriter writer)
    {
        var empty = writer.Length == FormatConstants.FileHeaderSize;
        var segment = writer.Seal();
        _syncsOfSealed += writer.SyncCount;
        if (!empty)
        {
            return new SealedSegment(segment.Id, segment.Length, segment);
        }
        writer.Dispose();
        _files.Delete(segment.Path); // an active segment that never got a record is not kept
        return new SealedSegment(segment.Id, 0, null);
    }

    private SegmentWriter NewWriter() =>
        SegmentWriter.Create(_files, _directory, SegmentId.From(_nextSequence++, 0), _settings.WriteBufferBytes, _settings.PreallocateBytes, preallocateLimit: _settings.PreallocateLimitBytes);
}

/// <summary>
/// Reads a record back for a get: in place through the segment's mapping when there is one
/// (<see cref="IRecordSource.TryPeek"/>), else by a positional read into a scratch buffer;
/// either way the checksum and the key are verified and the value decompressed.
/// </summary>
public static class RecordReader
{
    /// <summary>
    /// Reads the value of the record at <paramref name="location"/> through <paramref name="source"/>
    /// (a segment, or the writer when the bytes may still be buffered). Damage is a
    /// <see cref="CorruptSegmentException"/> naming <paramref name="path"/> and the offset.
    /// The returned array is new: the caller owns it. <paramref name="mapped"/> tells whether the
    /// record was read in place or by a positional read (the only kind worth caching).
    /// </summary>
    public static byte[] ReadValue<TSource>(TSource source, string path, in KeyLocation location, ReadOnlySpan<byte> key, ref byte[] scratch, out bool mapped)
        where TSource : IRecordSource
    {
        Read(source, path, location, key, ref scratch, otherKeyIsMiss: false, default(NewArray), out mapped, out byte[] value);
        return value;
    }

    /// <summary>
    /// <see cref="ReadValue"/> of a location found by hash alone
    /// (<see cref="PartitionIndex.TryGetLiveByHash(ReadOnlySpan{byte}, long, out KeyLocation, out bool)"/>): null when the record verifies but holds
    /// another key (a hash collision: look the key up by comparing it). Damage is still a
    /// <see cref="CorruptSegmentException"/>.
    /// </summary>
    public static byte[]? ReadCandidate<TSource>(TSource source, string path, in KeyLocation location, ReadOnlySpan<byte> key, ref byte[] scratch, out bool mapped)
        where TSource : IRecordSource =>
        Read(source, path, location, key, ref scratch, otherKeyIsMiss: true, default(NewArray), out mapped, out byte[] value) ? value : null;

    /// <summary>
    /// <see cref="ReadValue"/> into <paramref name="destination"/> instead of a new array (no
    /// allocation when the record is read in place). With <paramref name="otherKeyIsMiss"/>
    /// (a location found by hash alone) false when the record verifies but holds another key,
    /// and nothing is written; otherwise always true. Damage is a <see cref="CorruptSegmentException"/>.
    /// </summary>
    public static bool ReadValueInto<TSource>(TSource source, string path, in KeyLocation location, ReadOnlySpan<byte> key, ref byte[] scratch, bool otherKeyIsMiss, IBufferWriter<byte> destination)
        where TSource : IRecordSource =>
        Read(source, path, location, key, ref scratch, otherKeyIsMiss, new IntoWriter(destination), out _, out int _);

    /// <summary>
    /// <see cref="ReadValue"/> only in place: false (and nothing read) when the record cannot be
    /// read through a mapping, for callers that send positional reads elsewhere.
    /// </summary>
    public static bool TryReadMapped<TSource>(TSource source, string path, in KeyLocation location, ReadOnlySpan<byte> key, out byte[] value)
        where TSource : IRecordSource
    {
        var mapped = TryReadMapped(source, path, location, key, otherKeyIsMiss: false, out var found);
        value = found ?? [];
        return mapped;
    }

    /// <summary>
    /// <see cref="TryReadMapped{TSource}(TSource, string, in KeyLocation, ReadOnlySpan{byte}, out byte[])"/>
    /// of a location found by hash alone: true with a null <paramref name="value"/> when the
    /// record verifies but holds another key (see <see cref="ReadCandidate"/>).
    /// </summary>
    public static bool TryReadMappedCandidate<TSource>(TSource source, string path, in KeyLocation location, ReadOnlySpan<byte> key, out byte[]? value)
        where TSource : IRecordSource =>
        TryReadMapped(source, path, location, key, otherKeyIsMiss: true, out value);

    private static bool TryReadMapped<TSource>(TSource source, string path, in KeyLocation location, ReadOnlySpan<byte> key, bool otherKeyIsMiss, out byte[]? value)
        where TSource : IRecordSource
    {
        if (!source.TryPeek(location.Offset, (int)location.Size, out var mapped))
        {
            value = null;
            return false;
        }
        using (mapped)
        {
            value = Decode(mapped.Span, path, location, key, otherKeyIsMiss, default(NewArray), out byte[] found) ? found : null;
            return true;
        }
    }

    private static bool Read<TSource, TSink, TResult>(TSource source, string path, in KeyLocation location, ReadOnlySpan<byte> key, ref byte[] scratch, bool otherKeyIsMiss,
        TSink sink, out bool mapped, out TResult result)
        where TSource : IRecordSource
        where TSink : IValueSink<TResult>
    {
        mapped = source.TryPeek(location.Offset, (int)location.Size, out var inPlace);
        if (mapped)
        {
            using (inPlace)
            {
                return Decode(inPlace.Span, path, location, key, otherKeyIsMiss, sink, out result);
            }
        }
        if (scratch.Length < location.Size)
        {
            scratch = new byte[Math.Max(location.Size, scratch.Length * 2)];
        }
        var span = scratch.AsSpan(0, (int)location.Size);
        var read = source.ReadAt(span, location.Offset);
        if (read != span.Length)
        {
            throw new CorruptSegmentException(path, location.Offset, "record read for a get does not verify");
        }
        return Decode(span, path, location, key, otherKeyIsMiss, sink, out result);
    }

    /// <summary>
    /// Verifies one whole record (header, checksum, key) and hands its value to
    /// <paramref name="sink"/>; false (and nothing taken) when it verifies but holds another key
    /// and <paramref name="otherKeyIsMiss"/>.
    /// </summary>
    private static bool Decode<TSink, TResult>(ReadOnlySpan<byte> record, string path, in KeyLocation location, ReadOnlySpan<byte> key, bool otherKeyIsMiss,
        TSink sink, out TResult result)
        where TSink : IValueSink<TResult>
    {
        if (!RecordCodec.TryReadHeader(record, out var h) || !RecordCodec.Verify(record, h))
        {
            throw new CorruptSegmentException(path, location.Offset, "record read for a get does not verify");
        }
        if (!RecordCodec.KeyOf(record, h).SequenceEqual(key))
        {
            if (otherKeyIsMiss)
            {
                result = default!;
                return false;
            }
            throw new CorruptSegmentException(path, location.Offset, "record read for a get does not verify");
        }
        try
        {
            result = sink.Take(record, h);
            return true;
        }
        catch (InvalidDataException e)
        {
            throw new CorruptSegmentException(path, location.Offset, e.Message);
        }
    }

    /// <summary>Where a verified record's value goes.</summary>
    private interface IValueSink<out TResult>
    {
        TResult Take(ReadOnlySpan<byte> record, in RecordHeader header);
    }

    /// <summary>A new array the caller owns.</summary>
    private readonly struct NewArray : IValueSink<byte[]>
    {
        public byte[] Take(ReadOnlySpan<byte> record, in RecordHeader header) => RecordCodec.DecodeValue(record, header);
    }

    /// <summary>The caller's buffer writer; the result is the value's length.</summary>
    private readonly struct IntoWriter(IBufferWriter<byte> destination) : IValueSink<int>
    {
        public int Take(ReadOnlySpan<byte> record, in RecordHeader header) => RecordCodec.DecodeValueInto(record, header, destination);
    }
}

/// <summary>Something records can be read from by position: a <see cref="Segment"/> or a <see cref="SegmentWriter"/>.</summary>
public interface IRecordSource
{
    /// <summary>Reads up to <paramref name="destination"/>.Length bytes at <paramref name="offset"/>; returns how many.</summary>
    int ReadAt(Span<byte> destination, long offset);

    /// <summary>
    /// Exactly <paramref name="length"/> bytes at <paramref name="offset"/> in place (no copy, no
    /// system call), or false when they cannot be had that way: read them with <see cref="ReadAt"/>.
    /// </summary>
    bool TryPeek(long offset, int length, out MappedBytes bytes);
}
