namespace CrabKv.Storage.Format;

/// <summary>
/// The numbers of the on-disk format. Specified in <c>src/CrabKv.Storage/FORMAT.md</c>;
/// update <see cref="Version"/> whenever the header, record, batch framing, hint layout,
/// checksum or compression format change (FORMAT.md, "What forces a version bump").
/// </summary>
public static class FormatConstants
{
    /// <summary>Format version written in every segment and hint header.</summary>
    public const byte Version = 1;

    /// <summary>ASCII "CKVS", read little-endian.</summary>
    public const uint SegmentMagic = 'C' | ('K' << 8) | ('V' << 16) | ('S' << 24);

    /// <summary>ASCII "CKVH", read little-endian.</summary>
    public const uint HintMagic = 'C' | ('K' << 8) | ('V' << 16) | ('H' << 24);

    /// <summary>Header: magic 4 + version 1 + reserved 3 + segment id 8 bytes.</summary>
    public const int FileHeaderSize = 4 + 1 + 3 + 8;

    /// <summary>Record header: crc 4 + flags 1 + expiry 8 + keyLen 2 + valueLen 4 bytes.</summary>
    public const int RecordHeaderSize = 4 + 1 + 8 + 2 + 4;

    /// <summary>Hint entry header: crc 4 + flags 1 + expiry 8 + keyLen 2 + size 4 + offset 4 bytes.</summary>
    public const int HintEntryHeaderSize = 4 + 1 + 8 + 2 + 4 + 4;

    /// <summary>Hint trailer: crc 4 + 0xFF 1 + entryCount 4 + dataLength 4 bytes.</summary>
    public const int HintTrailerSize = 4 + 1 + 4 + 4;

    /// <summary>Flags byte of the hint trailer.</summary>
    public const byte HintTrailerFlags = 0xFF;

    /// <summary>Largest key the format can hold (the u16 length field).</summary>
    public const int MaxKeyBytes = ushort.MaxValue;

    /// <summary>Largest stored value the format accepts: 256 MiB.</summary>
    public const int MaxValueBytes = 256 * 1024 * 1024;

    /// <summary>Largest segment: offsets in hint files are u32 and stay below 2 GiB.</summary>
    public const long MaxSegmentBytes = int.MaxValue;

    /// <summary>Bits of the segment id that hold the sub number of a merge output.</summary>
    public const int SubBits = 20;

    /// <summary>Largest sub number: the file name spells it with 6 digits (FORMAT.md section 1).</summary>
    public const int MaxSub = 999_999;

    /// <summary>Largest sequence number: the file name spells it with 8 digits.</summary>
    public const uint MaxSequence = 99_999_999;
}

/// <summary>Record flag bits (FORMAT.md section 3).</summary>
[Flags]
public enum RecordFlags : byte
{
    /// <summary>A plain, uncompressed put outside a batch.</summary>
    None = 0x00,
    /// <summary>The key was deleted here; no value.</summary>
    Tombstone = 0x01,
    /// <summary>The stored value is Snappy-compressed.</summary>
    Compressed = 0x02,
    /// <summary>The record belongs to a batch.</summary>
    InBatch = 0x04,
    /// <summary>The record is the last member of its batch.</summary>
    BatchEnd = 0x08,
}
