using System.Buffers.Binary;
using CrabKv.Storage.Files;
using CrabKv.Storage.Format;

namespace CrabKv.Storage.Segments;

/// <summary>One entry of a hint file: a record's key, place and expiry, without its value.</summary>
public readonly ref struct HintEntry(ReadOnlySpan<byte> key, RecordFlags flags, long expiry, uint offset, uint size)
{
    /// <summary>The key.</summary>
    public ReadOnlySpan<byte> Key { get; } = key;
    /// <summary>The record's flags.</summary>
    public RecordFlags Flags { get; } = flags;
    /// <summary>The record's expiry (Unix ms, 0 = never).</summary>
    public long Expiry { get; } = expiry;
    /// <summary>Record offset in the data segment.</summary>
    public uint Offset { get; } = offset;
    /// <summary>Record size.</summary>
    public uint Size { get; } = size;
}

/// <summary>Receives the entries of a verified hint file, in order.</summary>
public delegate void HintVisitor(in HintEntry entry);

/// <summary>Writes and reads hint files (FORMAT.md section 5).</summary>
public static class HintFile
{
    /// <summary>Builds a hint file in memory, then writes it as <c>.tmp</c>, fsyncs and renames it.</summary>
    public sealed class Builder
    {
        private readonly SegmentId _id;
        private byte[] _buffer = new byte[64 * 1024];
        private int _length;
        private uint _count;

        /// <summary>Starts the hint of segment <paramref name="id"/>.</summary>
        public Builder(SegmentId id)
        {
            _id = id;
            FileHeader.Write(_buffer, FormatConstants.HintMagic, id);
            _length = FormatConstants.FileHeaderSize;
        }

        /// <summary>Adds the entry of one record.</summary>
        public void Add(ReadOnlySpan<byte> key, RecordFlags flags, long expiry, uint offset, uint size)
        {
            var need = FormatConstants.HintEntryHeaderSize + key.Length;
            Ensure(need);
            var d = _buffer.AsSpan(_length, need);
            d[4] = (byte)flags;
            BinaryPrimitives.WriteInt64LittleEndian(d[5..], expiry);
            BinaryPrimitives.WriteUInt16LittleEndian(d[13..], (ushort)key.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(d[15..], size);
            BinaryPrimitives.WriteUInt32LittleEndian(d[19..], offset);
            key.CopyTo(d[FormatConstants.HintEntryHeaderSize..]);
            BinaryPrimitives.WriteUInt32LittleEndian(d, Crc32C.Compute(d[4..]));
            _length += need;
            _count++;
        }

        /// <summary>
        /// Writes the trailer and the file, durably, under its final name in <paramref name="directory"/>
        /// (the rename becomes durable with the caller's next directory fsync).
        /// </summary>
        public string Complete(FileLayer files, string directory, long dataLength)
        {
            Ensure(FormatConstants.HintTrailerSize);
            var t = _buffer.AsSpan(_length, FormatConstants.HintTrailerSize);
            t[4] = FormatConstants.HintTrailerFlags;
            BinaryPrimitives.WriteUInt32LittleEndian(t[5..], _count);
            BinaryPrimitives.WriteUInt32LittleEndian(t[9..], (uint)dataLength);
            BinaryPrimitives.WriteUInt32LittleEndian(t, Crc32C.Compute(t[4..]));
            _length += FormatConstants.HintTrailerSize;

            var final = Path.Combine(directory, _id.HintFileName);
            var tmp = final + ".tmp";
            using (var h = files.Open(tmp, FileMode.Create, FileAccess.Write, FileShare.Read))
            {
                files.Write(h, _buffer.AsSpan(0, _length), 0);
                files.FlushToDisk(h);
            }
            files.Move(tmp, final, overwrite: false); // a hint never replaces another segment's
            return final;
        }

        private void Ensure(int more)
        {
            if (_length + more > _buffer.Length)
            {
                Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + more));
            }
        }
    }

    /// <summary>Bytes read from a hint file at a time (an entry longer than this gets a larger buffer).</summary>
    internal const int ReadChunkBytes = 1 << 20;

    /// <summary>
    /// The entry count a hint file's trailer states, for presizing the key directory before the
    /// entries are read: a hint to size memory by, not verified against the entries
    /// (<see cref="TryLoad"/> does that). Null when the file cannot be read or its trailer is
    /// not one; never more than the file could hold.
    /// </summary>
    public static uint? TryReadEntryCount(FileLayer files, string path)
    {
        try
        {
            using var h = files.Open(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
            var length = files.GetLength(h);
            if (length < FormatConstants.FileHeaderSize + FormatConstants.HintTrailerSize)
            {
                return null;
            }
            Span<byte> t = stackalloc byte[FormatConstants.HintTrailerSize];
            if (files.Read(h, t, length - t.Length) != t.Length || t[4] != FormatConstants.HintTrailerFlags
                || Crc32C.Compute(t[4..]) != BinaryPrimitives.ReadUInt32LittleEndian(t))
            {
                return null;
            }
            var most = (length - FormatConstants.FileHeaderSize - FormatConstants.HintTrailerSize) / (FormatConstants.HintEntryHeaderSize + 1);
            return (uint)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(t[5..]), most);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// Verifies a whole hint file and then visits its entries. Returns false, visiting
    /// nothing, when the file is missing, damaged, or does not match a data segment of
    /// <paramref name="dataLength"/> bytes; the caller then scans the data segment. The file is
    /// read in 1 MiB chunks, twice (verify, then visit: the second read comes from the page
    /// cache), instead of into one array the size of the file.
    /// </summary>
    public static bool TryLoad(FileLayer files, string path, SegmentId id, long dataLength, HintVisitor visitor, out string? whyNot)
    {
        whyNot = null;
        if (!files.FileExists(path))
        {
            whyNot = "no hint file";
            return false;
        }
        using var h = files.Open(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        var fileLength = files.GetLength(h);
        var reader = new ChunkReader(files, h, fileLength);
        if (!reader.Ensure(FormatConstants.FileHeaderSize))
        {
            whyNot = "hint file shorter than its header";
            return false;
        }
        try
        {
            FileHeader.Validate(reader.Available[..FormatConstants.FileHeaderSize], FormatConstants.HintMagic, id, path);
        }
        catch (NotASegmentException e)
        {
            whyNot = e.Message;
            return false;
        }
        // Pass 1: verify everything, so a bad hint changes nothing.
        reader.Skip(FormatConstants.FileHeaderSize);
        uint count = 0;
        while (true)
        {
            if (!reader.Ensure(FormatConstants.HintTrailerSize))
            {
                whyNot = "hint file ends without its trailer";
                return false;
            }
            var span = reader.Available;
            if (span[4] == FormatConstants.HintTrailerFlags)
            {
                var t = span[..FormatConstants.HintTrailerSize];
                if (Crc32C.Compute(t[4..]) != BinaryPrimitives.ReadUInt32LittleEndian(t)
                    || BinaryPrimitives.ReadUInt32LittleEndian(t[5..]) != count
                    || BinaryPrimitives.ReadUInt32LittleEndian(t[9..]) != (uint)dataLength
                    || reader.Position + FormatConstants.HintTrailerSize != fileLength)
                {
                    whyNot = "hint trailer does not match its entries or its data segment";
                    return false;
                }
                break;
            }
            if (!reader.Ensure(FormatConstants.HintEntryHeaderSize))
            {
                whyNot = $"partial hint entry at {reader.Position}";
                return false;
            }
            span = reader.Available;
            var keyLength = BinaryPrimitives.ReadUInt16LittleEndian(span[13..]);
            var need = FormatConstants.HintEntryHeaderSize + keyLength;
            if (keyLength == 0 || !reader.Ensure(need))
            {
                whyNot = $"bad hint entry at {reader.Position}";
                return false;
            }
            span = reader.Available;
            if (Crc32C.Compute(span[4..need]) != BinaryPrimitives.ReadUInt32LittleEndian(span))
            {
                whyNot = $"bad hint entry at {reader.Position}";
                return false;
            }
            reader.Skip(need);
            count++;
        }
        // Pass 2: visit.
        reader.Restart(FormatConstants.FileHeaderSize);
        for (uint i = 0; i < count; i++)
        {
            reader.Ensure(FormatConstants.HintEntryHeaderSize);
            var keyLength = BinaryPrimitives.ReadUInt16LittleEndian(reader.Available[13..]);
            var need = FormatConstants.HintEntryHeaderSize + keyLength;
            if (!reader.Ensure(need))
            {
                throw new IOException($"Hint file '{path}' changed while it was read (entry {i} at {reader.Position}).");
            }
            var span = reader.Available;
            visitor(new HintEntry(span.Slice(FormatConstants.HintEntryHeaderSize, keyLength), (RecordFlags)span[4],
                BinaryPrimitives.ReadInt64LittleEndian(span[5..]), BinaryPrimitives.ReadUInt32LittleEndian(span[19..]),
                BinaryPrimitives.ReadUInt32LittleEndian(span[15..])));
            reader.Skip(need);
        }
        return true;
    }

    /// <summary>Sequential reads of a file through a reused buffer: <see cref="Ensure"/> makes the next bytes contiguous.</summary>
    private sealed class ChunkReader(FileLayer files, Microsoft.Win32.SafeHandles.SafeFileHandle handle, long fileLength)
    {
        private byte[] _buffer = new byte[(int)Math.Min(ReadChunkBytes, Math.Max(fileLength, 64))];
        private int _start;       // first unconsumed byte in the buffer
        private int _end;         // end of the bytes read into the buffer
        private long _bufferAt;   // file offset of _buffer[0]

        /// <summary>File offset of the next unconsumed byte.</summary>
        public long Position => _bufferAt + _start;

        /// <summary>The bytes read and not yet consumed.</summary>
        public ReadOnlySpan<byte> Available => _buffer.AsSpan(_start, _end - _start);

        /// <summary>Reads until at least <paramref name="bytes"/> unconsumed bytes are in the buffer; false at the end of the file.</summary>
        public bool Ensure(int bytes)
        {
            if (_end - _start >= bytes)
            {
                return true;
            }
            if (Position + bytes > fileLength)
            {
                return false;
            }
            if (bytes > _buffer.Length)
            {
                var larger = new byte[Math.Max(bytes, _buffer.Length * 2)];
                _buffer.AsSpan(_start, _end - _start).CopyTo(larger);
                _buffer = larger;
            }
            else
            {
                _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            }
            _bufferAt += _start;
            _end -= _start;
            _start = 0;
            while (_end < bytes)
            {
                var n = files.Read(handle, _buffer.AsSpan(_end), _bufferAt + _end);
                if (n == 0)
                {
                    return false;
                }
                _end += n;
            }
            return true;
        }

        /// <summary>Consumes <paramref name="bytes"/> (already ensured).</summary>
        public void Skip(int bytes) => _start += bytes;

        /// <summary>Starts over at <paramref name="offset"/>.</summary>
        public void Restart(long offset)
        {
            _bufferAt = offset;
            _start = 0;
            _end = 0;
        }
    }
}
