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

    /// <summary>
    /// Verifies a whole hint file and then visits its entries. Returns false, visiting
    /// nothing, when the file is missing, damaged, or does not match a data segment of
    /// <paramref name="dataLength"/> bytes; the caller then scans the data segment.
    /// </summary>
    public static bool TryLoad(FileLayer files, string path, SegmentId id, long dataLength, HintVisitor visitor, out string? whyNot)
    {
        whyNot = null;
        if (!files.FileExists(path))
        {
            whyNot = "no hint file";
            return false;
        }
        var bytes = ReadAll(files, path);
        try
        {
            FileHeader.Validate(bytes, FormatConstants.HintMagic, id, path);
        }
        catch (NotASegmentException e)
        {
            whyNot = e.Message;
            return false;
        }
        // Pass 1: verify everything, so a bad hint changes nothing.
        var pos = FormatConstants.FileHeaderSize;
        uint count = 0;
        while (true)
        {
            if (bytes.Length - pos < FormatConstants.HintTrailerSize)
            {
                whyNot = "hint file ends without its trailer";
                return false;
            }
            var span = bytes.AsSpan(pos);
            if (span[4] == FormatConstants.HintTrailerFlags)
            {
                var t = span[..FormatConstants.HintTrailerSize];
                if (Crc32C.Compute(t[4..]) != BinaryPrimitives.ReadUInt32LittleEndian(t)
                    || BinaryPrimitives.ReadUInt32LittleEndian(t[5..]) != count
                    || BinaryPrimitives.ReadUInt32LittleEndian(t[9..]) != (uint)dataLength
                    || pos + FormatConstants.HintTrailerSize != bytes.Length)
                {
                    whyNot = "hint trailer does not match its entries or its data segment";
                    return false;
                }
                break;
            }
            if (span.Length < FormatConstants.HintEntryHeaderSize)
            {
                whyNot = $"partial hint entry at {pos}";
                return false;
            }
            var keyLength = BinaryPrimitives.ReadUInt16LittleEndian(span[13..]);
            var need = FormatConstants.HintEntryHeaderSize + keyLength;
            if (keyLength == 0 || span.Length < need
                || Crc32C.Compute(span[4..need]) != BinaryPrimitives.ReadUInt32LittleEndian(span))
            {
                whyNot = $"bad hint entry at {pos}";
                return false;
            }
            pos += need;
            count++;
        }
        // Pass 2: visit.
        pos = FormatConstants.FileHeaderSize;
        for (uint i = 0; i < count; i++)
        {
            var span = bytes.AsSpan(pos);
            var keyLength = BinaryPrimitives.ReadUInt16LittleEndian(span[13..]);
            visitor(new HintEntry(span.Slice(FormatConstants.HintEntryHeaderSize, keyLength), (RecordFlags)span[4],
                BinaryPrimitives.ReadInt64LittleEndian(span[5..]), BinaryPrimitives.ReadUInt32LittleEndian(span[19..]),
                BinaryPrimitives.ReadUInt32LittleEndian(span[15..])));
            pos += FormatConstants.HintEntryHeaderSize + keyLength;
        }
        return true;
    }

    private static byte[] ReadAll(FileLayer files, string path)
    {
        using var h = files.Open(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        var length = files.GetLength(h);
        if (length > Array.MaxLength)
        {
            throw new IOException($"Hint file '{path}' is too large ({length} bytes).");
        }
        var bytes = new byte[length];
        var total = 0;
        while (total < bytes.Length)
        {
            var n = files.Read(h, bytes.AsSpan(total), total);
            if (n == 0)
            {
                break;
            }
            total += n;
        }
        return total == bytes.Length ? bytes : bytes[..total];
    }
}
