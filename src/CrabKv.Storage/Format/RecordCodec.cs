using System.Buffers;
using System.Buffers.Binary;

namespace CrabKv.Storage.Format;

/// <summary>The fixed-size part of a record (FORMAT.md section 3), already validated.</summary>
public readonly record struct RecordHeader(uint Crc, RecordFlags Flags, long Expiry, int KeyLength, int ValueLength)
{
    /// <summary>Whole record size: header + key + stored value.</summary>
    public int Size => FormatConstants.RecordHeaderSize + KeyLength + ValueLength;

    /// <summary>True for a delete.</summary>
    public bool IsTombstone => (Flags & RecordFlags.Tombstone) != 0;

    /// <summary>True when the stored value is Snappy-compressed.</summary>
    public bool IsCompressed => (Flags & RecordFlags.Compressed) != 0;

    /// <summary>True when the record is a member of a batch.</summary>
    public bool InBatch => (Flags & RecordFlags.InBatch) != 0;

    /// <summary>True when the record closes its batch.</summary>
    public bool IsBatchEnd => (Flags & RecordFlags.BatchEnd) != 0;

    /// <summary>True when the record carries an expiry at or before <paramref name="nowMs"/>.</summary>
    public bool IsExpiredAt(long nowMs) => !Storage.Expiry.IsLiveAt(Expiry, nowMs);
}

/// <summary>Encodes and decodes records. Pure functions over spans; no I/O.</summary>
public static class RecordCodec
{
    private const byte KnownFlags = (byte)(RecordFlags.Tombstone | RecordFlags.Compressed | RecordFlags.InBatch | RecordFlags.BatchEnd);

    /// <summary>Record size for a key and a stored value of the given lengths.</summary>
    public static int SizeOf(int keyLength, int storedValueLength) => FormatConstants.RecordHeaderSize + keyLength + storedValueLength;

    /// <summary>
    /// Writes a record into <paramref name="destination"/> (which must hold
    /// <see cref="SizeOf"/> bytes) and returns its size. The value is written as given:
    /// compression is the caller's choice, announced by <see cref="RecordFlags.Compressed"/>.
    /// </summary>
    public static int Encode(Span<byte> destination, RecordFlags flags, long expiry, ReadOnlySpan<byte> key, ReadOnlySpan<byte> storedValue)
    {
        var size = SizeOf(key.Length, storedValue.Length);
        var d = destination[..size];
        d[4] = (byte)flags;
        BinaryPrimitives.WriteInt64LittleEndian(d[5..], expiry);
        BinaryPrimitives.WriteUInt16LittleEndian(d[13..], (ushort)key.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(d[15..], (uint)storedValue.Length);
        key.CopyTo(d[FormatConstants.RecordHeaderSize..]);
        storedValue.CopyTo(d[(FormatConstants.RecordHeaderSize + key.Length)..]);
        BinaryPrimitives.WriteUInt32LittleEndian(d, Crc32C.Compute(d[4..]));
        return size;
    }

    /// <summary>
    /// Reads and validates a record header: known flag bits, key length 1..65535, value
    /// length within bounds, tombstones without value. Does not check the CRC.
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> source, out RecordHeader header)
    {
        header = default;
        if (source.Length < FormatConstants.RecordHeaderSize)
        {
            return false;
        }
        var flags = source[4];
        if ((flags & ~KnownFlags) != 0)
        {
            return false;
        }
        var keyLength = BinaryPrimitives.ReadUInt16LittleEndian(source[13..]);
        var valueLength = BinaryPrimitives.ReadUInt32LittleEndian(source[15..]);
        if (keyLength == 0 || valueLength > FormatConstants.MaxValueBytes)
        {
            return false;
        }
        var f = (RecordFlags)flags;
        if ((f & RecordFlags.Tombstone) != 0 && ((f & RecordFlags.Compressed) != 0 || valueLength != 0))
        {
            return false;
        }
        if ((f & RecordFlags.BatchEnd) != 0 && (f & RecordFlags.InBatch) == 0)
        {
            return false;
        }
        header = new RecordHeader(BinaryPrimitives.ReadUInt32LittleEndian(source), f,
            BinaryPrimitives.ReadInt64LittleEndian(source[5..]), keyLength, (int)valueLength);
        return true;
    }

    /// <summary>True when <paramref name="record"/> (exactly one whole record) matches its CRC.</summary>
    public static bool Verify(ReadOnlySpan<byte> record, in RecordHeader header) =>
        record.Length == header.Size && Crc32C.Compute(record[4..]) == header.Crc;

    /// <summary>The key bytes of a whole record.</summary>
    public static ReadOnlySpan<byte> KeyOf(ReadOnlySpan<byte> record, in RecordHeader header) =>
        record.Slice(FormatConstants.RecordHeaderSize, header.KeyLength);

    /// <summary>The stored (possibly compressed) value bytes of a whole record.</summary>
    public static ReadOnlySpan<byte> StoredValueOf(ReadOnlySpan<byte> record, in RecordHeader header) =>
        record.Slice(FormatConstants.RecordHeaderSize + header.KeyLength, header.ValueLength);

    /// <summary>The value as the user wrote it: decompressed when the record says so.</summary>
    public static byte[] DecodeValue(ReadOnlySpan<byte> record, in RecordHeader header)
    {
        var stored = StoredValueOf(record, header);
        return header.IsCompressed ? ValueCompression.Decompress(stored) : stored.ToArray();
    }

    /// <summary>
    /// <see cref="DecodeValue"/> written to <paramref name="destination"/> (decompressed if
    /// needed); returns the value's length.
    /// </summary>
    public static int DecodeValueInto(ReadOnlySpan<byte> record, in RecordHeader header, IBufferWriter<byte> destination)
    {
        var stored = StoredValueOf(record, header);
        if (header.IsCompressed)
        {
            return ValueCompression.DecompressInto(stored, destination);
        }
        stored.CopyTo(destination.GetSpan(stored.Length));
        destination.Advance(stored.Length);
        return stored.Length;
    }
}
