using System.Buffers.Binary;
using System.Text;
using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Segments;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>FORMAT.md sections 1–3 and 5, byte by byte: checksum, record codec, header, file names.</summary>
public sealed class FormatTests
{
    /// <summary>Bitwise CRC-32C (reflected polynomial 0x82F63B78), independent of the engine's.</summary>
    private static uint ReferenceCrc32C(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var i = 0; i < 8; i++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
            }
        }
        return ~crc;
    }

    [Fact]
    public void Crc32CKnownVector()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        Assert.Equal(0xE3069283u, ReferenceCrc32C("123456789"u8));
        Assert.Equal(0u, Crc32C.Compute([]));
        // iSCSI test vectors (RFC 3720, B.4): 32 zero bytes, 32 0xFF bytes.
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(new byte[32]));
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
    }

    [Fact]
    public void Crc32CMatchesReferenceForEveryLengthAndAppendIsIncremental()
    {
        var rng = new Random(42);
        var data = new byte[300];
        rng.NextBytes(data);
        for (var n = 0; n <= data.Length; n++)
        {
            Assert.Equal(ReferenceCrc32C(data.AsSpan(0, n)), Crc32C.Compute(data.AsSpan(0, n)));
        }
        for (var split = 0; split <= 40; split++)
        {
            var running = Crc32C.Append(0xFFFFFFFFu, data.AsSpan(0, split));
            running = Crc32C.Append(running, data.AsSpan(split, 40 - split));
            Assert.Equal(Crc32C.Compute(data.AsSpan(0, 40)), ~running);
        }
    }

    [Fact]
    public void WorkedExampleFromSection3()
    {
        // Put("a", "hi"), no expiry, no compression.
        var record = new byte[RecordCodec.SizeOf(1, 2)];
        Assert.Equal(22, RecordCodec.Encode(record, RecordFlags.None, 0, "a"u8, "hi"u8));

        byte[] afterCrc = [0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x61, 0x68, 0x69];
        Assert.Equal(afterCrc, record[4..]);
        Assert.Equal(18, afterCrc.Length); // the CRC covers the 18 bytes from flags to the end
        Assert.Equal(ReferenceCrc32C(afterCrc), BinaryPrimitives.ReadUInt32LittleEndian(record));

        Assert.True(RecordCodec.TryReadHeader(record, out var h));
        Assert.Equal(new RecordHeader(BinaryPrimitives.ReadUInt32LittleEndian(record), RecordFlags.None, 0, 1, 2), h);
        Assert.Equal(22, h.Size);
        Assert.True(RecordCodec.Verify(record, h));
        Assert.Equal("a"u8.ToArray(), RecordCodec.KeyOf(record, h).ToArray());
        Assert.Equal("hi"u8.ToArray(), RecordCodec.DecodeValue(record, h));
    }

    [Fact]
    public void RecordFieldsAreLittleEndianAtTheirOffsets()
    {
        var key = "key"u8;
        var value = new byte[300];
        var record = new byte[RecordCodec.SizeOf(key.Length, value.Length)];
        RecordCodec.Encode(record, RecordFlags.InBatch | RecordFlags.BatchEnd, 0x0102030405060708, key, value);

        Assert.Equal(0x0C, record[4]);
        Assert.Equal([0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01], record[5..13]);
        Assert.Equal([0x03, 0x00], record[13..15]);
        Assert.Equal([0x2C, 0x01, 0x00, 0x00], record[15..19]);
        Assert.Equal(key.ToArray(), record[19..22]);
        Assert.Equal(Crc32C.Compute(record.AsSpan(4)), BinaryPrimitives.ReadUInt32LittleEndian(record));
        Assert.Equal(19 + 3 + 300, RecordCodec.SizeOf(3, 300));
    }

    [Fact]
    public void EveryFlippedBitIsCaughtByVerify()
    {
        var record = new byte[RecordCodec.SizeOf(5, 20)];
        RecordCodec.Encode(record, RecordFlags.None, 1234, "hello"u8, Encoding.ASCII.GetBytes("twenty bytes of text"));
        for (var i = 0; i < record.Length * 8; i++)
        {
            var copy = (byte[])record.Clone();
            copy[i / 8] ^= (byte)(1 << (i % 8));
            var ok = RecordCodec.TryReadHeader(copy, out var h) && copy.Length >= h.Size && RecordCodec.Verify(copy.AsSpan(0, h.Size), h);
            Assert.False(ok, $"bit {i} flipped and the record still verifies");
        }
    }

    private static byte[] Header(byte flags, ushort keyLength, uint valueLength)
    {
        var h = new byte[FormatConstants.RecordHeaderSize];
        h[4] = flags;
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(13), keyLength);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(15), valueLength);
        return h;
    }

    [Theory]
    [InlineData(0x00, 1, 0u, true)]
    [InlineData(0x00, 65535, 0u, true)]
    [InlineData(0x00, 1, 268435456u, true)]        // 256 MiB: the bound itself
    [InlineData(0x00, 1, 268435457u, false)]       // beyond 256 MiB
    [InlineData(0x00, 0, 5u, false)]               // keyLen 0
    [InlineData(0x10, 1, 5u, false)]               // unknown flag bits
    [InlineData(0x20, 1, 5u, false)]
    [InlineData(0x40, 1, 5u, false)]
    [InlineData(0x80, 1, 5u, false)]
    [InlineData(0x01, 1, 0u, true)]                // tombstone
    [InlineData(0x01, 1, 1u, false)]               // tombstone with a value
    [InlineData(0x03, 1, 0u, false)]               // tombstone + compressed
    [InlineData(0x02, 1, 5u, true)]                // compressed
    [InlineData(0x04, 1, 5u, true)]                // InBatch
    [InlineData(0x0C, 1, 5u, true)]                // InBatch | BatchEnd
    [InlineData(0x0D, 1, 0u, true)]                // a tombstone closing a batch
    [InlineData(0x08, 1, 5u, false)]               // BatchEnd alone
    public void ReaderRejectsHeadersOutsideTheRules(byte flags, int keyLength, uint valueLength, bool valid)
    {
        Assert.Equal(valid, RecordCodec.TryReadHeader(Header(flags, (ushort)keyLength, valueLength), out var h));
        if (valid)
        {
            Assert.Equal(FormatConstants.RecordHeaderSize + keyLength + (long)valueLength, h.Size);
        }
    }

    [Fact]
    public void ShortInputIsNotAHeaderAndWrongLengthDoesNotVerify()
    {
        Assert.False(RecordCodec.TryReadHeader(new byte[18], out _));
        var record = new byte[22];
        RecordCodec.Encode(record, RecordFlags.None, 0, "a"u8, "hi"u8);
        Assert.True(RecordCodec.TryReadHeader(record, out var h));
        Assert.False(RecordCodec.Verify(record.AsSpan(0, 21), h));
        var longer = new byte[23];
        record.CopyTo(longer, 0);
        Assert.False(RecordCodec.Verify(longer, h));
    }

    [Fact]
    public void CompressedRecordDecodesThroughTheFlag()
    {
        var plain = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("{\"k\":\"value\"},", 50)));
        var packed = ValueCompression.TryCompress(plain, 0)!;
        var record = new byte[RecordCodec.SizeOf(1, packed.Length)];
        RecordCodec.Encode(record, RecordFlags.Compressed, 0, "c"u8, packed);
        Assert.True(RecordCodec.TryReadHeader(record, out var h));
        Assert.True(h.IsCompressed);
        Assert.Equal(packed, RecordCodec.StoredValueOf(record, h).ToArray());
        Assert.Equal(plain, RecordCodec.DecodeValue(record, h));
    }

    [Fact]
    public void RecordHeaderExpiryRule()
    {
        var h = new RecordHeader(0, RecordFlags.None, 1000, 1, 1);
        Assert.False(h.IsExpiredAt(999));
        Assert.True(h.IsExpiredAt(1000));
        Assert.False((h with { Expiry = 0 }).IsExpiredAt(long.MaxValue));
    }

    // ------------------------------------------------------------------ section 2

    [Fact]
    public void FileHeaderLayout()
    {
        var header = new byte[FormatConstants.FileHeaderSize];
        var id = SegmentId.From(3, 2);
        FileHeader.Write(header, FormatConstants.SegmentMagic, id);

        Assert.Equal(16, FormatConstants.FileHeaderSize);
        Assert.Equal("CKVS"u8.ToArray(), header[..4]);
        Assert.Equal(1, header[4]);
        Assert.Equal([0, 0, 0], header[5..8]);
        Assert.Equal(id.Value, BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(8)));
        FileHeader.Validate(header, FormatConstants.SegmentMagic, id, "x");

        FileHeader.Write(header, FormatConstants.HintMagic, id);
        Assert.Equal("CKVH"u8.ToArray(), header[..4]);
        Assert.Throws<NotASegmentException>(() => FileHeader.Validate(header, FormatConstants.SegmentMagic, id, "x"));
        Assert.Throws<NotASegmentException>(() => FileHeader.Validate(header, FormatConstants.HintMagic, SegmentId.From(3, 3), "x"));
        Assert.Throws<NotASegmentException>(() => FileHeader.Validate(header.AsSpan(0, 15), FormatConstants.HintMagic, id, "x"));
    }

    [Fact]
    public void NewSegmentFileStartsWithItsHeader()
    {
        using var dir = new TempDirectory();
        var id = SegmentId.From(7, 0);
        using (var w = SegmentWriter.Create(FileLayer.Default, dir.Path, id, 4096, 0))
        {
            w.Append(RecordFlags.None, 0, "a"u8, "hi"u8);
        }
        var bytes = File.ReadAllBytes(Path.Combine(dir.Path, "seg-00000007-000000.data"));
        Assert.Equal(16 + 22, bytes.Length);
        Assert.Equal("CKVS"u8.ToArray(), bytes[..4]);
        Assert.Equal(SegmentId.From(7, 0).Value, BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(8)));
        Assert.Equal([0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x61, 0x68, 0x69], bytes[20..]);
    }

    // ------------------------------------------------------------------ section 1

    [Fact]
    public void SegmentIdIsSequenceShiftedTwentyBitsOrSub()
    {
        var id = SegmentId.From(5, 3);
        Assert.Equal((5UL << 20) | 3, id.Value);
        Assert.Equal(5u, id.Sequence);
        Assert.Equal(3, id.Sub);
        Assert.Equal("5/3", id.ToString());
        Assert.Equal(FormatConstants.MaxSub, SegmentId.From(1, FormatConstants.MaxSub).Sub);
        Assert.Equal(FormatConstants.MaxSequence, SegmentId.From(FormatConstants.MaxSequence, 0).Sequence);
    }

    [Fact]
    public void SegmentIdsThatTheFileNameCannotSpellAreRefused()
    {
        // A 7-digit sub used to be accepted: its file was then ignored at open, with its keys.
        Assert.Throws<InvalidOperationException>(() => SegmentId.From(1, FormatConstants.MaxSub + 1));
        Assert.Throws<InvalidOperationException>(() => SegmentId.From(FormatConstants.MaxSequence + 1, 0));
        var name = SegmentId.From(FormatConstants.MaxSequence, FormatConstants.MaxSub).DataFileName;
        Assert.True(SegmentId.TryParseFileName(name, out var back, out _));
        Assert.Equal(FormatConstants.MaxSub, back.Sub);
    }

    [Theory]
    [InlineData(1u, 0, "seg-00000001-000000.data", "seg-00000001-000000.hint")]
    [InlineData(12345678u, 999999, "seg-12345678-999999.data", "seg-12345678-999999.hint")]
    [InlineData(2u, 1, "seg-00000002-000001.data", "seg-00000002-000001.hint")]
    public void SegmentFileNamesSpellBothPartsInDecimal(uint sequence, int sub, string data, string hint)
    {
        var id = SegmentId.From(sequence, sub);
        Assert.Equal(data, id.DataFileName);
        Assert.Equal(hint, id.HintFileName);
        Assert.True(SegmentId.TryParseFileName(data, out var parsed, out var isHint));
        Assert.Equal(id, parsed);
        Assert.False(isHint);
        Assert.True(SegmentId.TryParseFileName(hint, out parsed, out isHint));
        Assert.Equal(id, parsed);
        Assert.True(isHint);
    }

    [Theory]
    [InlineData("seg-1-0.data")]
    [InlineData("seg-00000001-000000.dat")]
    [InlineData("seg-00000001-000000.data.tmp")]
    [InlineData("seg-00000001-000000.data.repair.tmp")]
    [InlineData("seg-0000000a-000000.data")]
    [InlineData("seg-+0000001-000000.data")]
    [InlineData("seg- 0000001-000000.data")]
    [InlineData("seg-00000001_000000.data")]
    [InlineData("SEG-00000001-000000.data")]
    [InlineData("seg-000000001-00000.data")]
    [InlineData("LOCK")]
    [InlineData("")]
    public void OtherFileNamesAreNotSegments(string name)
    {
        Assert.False(SegmentId.TryParseFileName(name, out _, out _));
    }

    [Fact]
    public void SegmentIdsOrderMergeOutputsBetweenTheirInputsAndLaterSegments()
    {
        var ids = new[] { SegmentId.From(3, 0), SegmentId.From(2, 0), SegmentId.From(3, 2), SegmentId.From(4, 0), SegmentId.From(3, 1), SegmentId.From(2, FormatConstants.MaxSub) };
        var sorted = ids.Order().ToList();
        Assert.Equal([SegmentId.From(2, 0), SegmentId.From(2, FormatConstants.MaxSub), SegmentId.From(3, 0), SegmentId.From(3, 1), SegmentId.From(3, 2), SegmentId.From(4, 0)], sorted);
        // File names sort the same way as ids (fixed width, zero padded).
        Assert.Equal(sorted.Select(i => i.DataFileName), sorted.Select(i => i.DataFileName).Order(StringComparer.Ordinal));
    }

    // ------------------------------------------------------------------ section 5

    [Fact]
    public void HintFileLayoutAndVerification()
    {
        using var dir = new TempDirectory();
        var id = SegmentId.From(4, 1);
        var builder = new HintFile.Builder(id);
        builder.Add("a"u8, RecordFlags.None, 0, 16, 22);
        builder.Add("bb"u8, RecordFlags.Tombstone, 77, 38, 21);
        var path = builder.Complete(FileLayer.Default, dir.Path, dataLength: 59);

        Assert.Equal(Path.Combine(dir.Path, "seg-00000004-000001.hint"), path);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(16 + (23 + 1) + (23 + 2) + 13, bytes.Length);
        Assert.Equal("CKVH"u8.ToArray(), bytes[..4]);
        var trailer = bytes.AsSpan(bytes.Length - 13);
        Assert.Equal(0xFF, trailer[4]);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(trailer[5..]));
        Assert.Equal(59u, BinaryPrimitives.ReadUInt32LittleEndian(trailer[9..]));
        Assert.Equal(Crc32C.Compute(trailer[4..]), BinaryPrimitives.ReadUInt32LittleEndian(trailer));
        // First entry: crc flags expiry keyLen recordSize recordOffset key.
        var e = bytes.AsSpan(16, 24);
        Assert.Equal(22u, BinaryPrimitives.ReadUInt32LittleEndian(e[15..]));
        Assert.Equal(16u, BinaryPrimitives.ReadUInt32LittleEndian(e[19..]));
        Assert.Equal((byte)'a', e[23]);

        var seen = new List<(string, RecordFlags, long, uint, uint)>();
        Assert.True(HintFile.TryLoad(FileLayer.Default, path, id, 59, (in HintEntry h) => seen.Add((Encoding.UTF8.GetString(h.Key), h.Flags, h.Expiry, h.Offset, h.Size)), out _));
        Assert.Equal([("a", RecordFlags.None, 0L, 16u, 22u), ("bb", RecordFlags.Tombstone, 77L, 38u, 21u)], seen);

        // Wrong data length, wrong id, any flipped byte: not used, nothing visited.
        Assert.False(HintFile.TryLoad(FileLayer.Default, path, id, 60, (in HintEntry _) => Assert.Fail("visited"), out var why));
        Assert.NotNull(why);
        Assert.False(HintFile.TryLoad(FileLayer.Default, path, SegmentId.From(4, 2), 59, (in HintEntry _) => Assert.Fail("visited"), out _));
        for (var i = 0; i < bytes.Length; i++)
        {
            if (i is >= 5 and < 8)
            {
                continue; // reserved header bytes are ignored
            }
            var copy = (byte[])bytes.Clone();
            copy[i] ^= 0x40;
            File.WriteAllBytes(path, copy);
            Assert.False(HintFile.TryLoad(FileLayer.Default, path, id, 59, (in HintEntry _) => Assert.Fail($"visited with byte {i} flipped"), out _), $"byte {i}");
        }
        File.WriteAllBytes(path, bytes[..^1]);
        Assert.False(HintFile.TryLoad(FileLayer.Default, path, id, 59, (in HintEntry _) => Assert.Fail("visited"), out _));
        File.Delete(path);
        Assert.False(HintFile.TryLoad(FileLayer.Default, path, id, 59, (in HintEntry _) => { }, out why));
        Assert.Equal("no hint file", why);
    }
}
