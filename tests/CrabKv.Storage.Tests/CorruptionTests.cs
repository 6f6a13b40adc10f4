using System.Buffers.Binary;
using System.Text;
using CrabKv.Storage.Format;
using CrabKv.Storage.Segments;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;
using static CrabKv.Storage.Tests.TestSupport.CorruptionHelpers;

namespace CrabKv.Storage.Tests;

/// <summary>FORMAT.md sections 2, 3, 4 and 8 (rules 3 and 4): damage outside a torn tail is reported, never guessed around.</summary>
public sealed class CorruptionTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// Three sessions: seg 1 (k000..k039), seg 2 (m000..m039 and new versions of k000..k009),
    /// seg 3 (n000..n009). Seg 1 and seg 2 are sealed; seg 3 is the newest ("active" at open).
    /// Returns the expected contents.
    /// </summary>
    internal static Dictionary<string, string> WriteThreeSegments(string dir)
    {
        var model = new Dictionary<string, string>();
        Session(dir, s =>
        {
            for (var i = 0; i < 40; i++)
            {
                var k = $"k{i:D3}";
                s.Put(k, model[k] = ValueOf(k, 1));
            }
        });
        Session(dir, s =>
        {
            for (var i = 0; i < 40; i++)
            {
                var k = $"m{i:D3}";
                s.Put(k, model[k] = ValueOf(k, 1));
            }
            for (var i = 0; i < 10; i++)
            {
                var k = $"k{i:D3}";
                s.Put(k, model[k] = ValueOf(k, 2));
            }
        });
        Session(dir, s =>
        {
            for (var i = 0; i < 10; i++)
            {
                var k = $"n{i:D3}";
                s.Put(k, model[k] = ValueOf(k, 1));
            }
        });
        Assert.Equal(3, SegmentFiles(dir).Count);
        return model;
    }

    private static DiskRecord RecordOf(string segmentPath, string key) => ReadRecords(segmentPath).Single(r => r.Key == key);

    private void AssertOpenFailsWithCorruption(string segmentPath, long offset, string? reasonFragment = null)
    {
        var before = Snapshot(_dir.Path);
        var e = Assert.Throws<CorruptSegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));
        Assert.Equal(segmentPath, e.Path);
        Assert.Equal(offset, e.Offset);
        Assert.Contains(segmentPath, e.Message);
        if (reasonFragment is not null)
        {
            Assert.Contains(reasonFragment, e.Message);
        }
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    [Theory]
    [InlineData(0)]   // crc
    [InlineData(4)]   // flags
    [InlineData(5)]   // expiry
    [InlineData(13)]  // keyLen
    [InlineData(15)]  // valueLen, low byte
    [InlineData(18)]  // valueLen, high byte (beyond 256 MiB)
    [InlineData(19)]  // key
    [InlineData(-1)]  // last byte of the value
    public void ChecksumMismatchInSealedSegmentNamesFileAndOffset(int byteInRecord)
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 2);
        var rec = RecordOf(seg, "m020");
        FlipByte(seg, rec.Offset + (byteInRecord >= 0 ? byteInRecord : rec.Size - 1));

        AssertOpenFailsWithCorruption(seg, rec.Offset);
    }

    [Fact]
    public void ChecksumMismatchInOldestSealedSegmentNamesFileAndOffset()
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 1);
        var rec = RecordOf(seg, "k039");
        FlipByte(seg, rec.ValueOffset + 3, 0x01);

        AssertOpenFailsWithCorruption(seg, rec.Offset, "checksum mismatch");
    }

    [Fact]
    public void FailedOpenReleasesTheLock()
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 1);
        FlipByte(seg, RecordOf(seg, "k001").ValueOffset);
        Assert.Throws<CorruptSegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));

        // A second attempt gets the same answer, not StoreLockedException.
        Assert.Throws<CorruptSegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));
    }

    [Fact]
    public void DamageInActiveSegmentFollowedByValidRecordIsCorruption()
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 3);
        var rec = RecordOf(seg, "n002");
        FlipByte(seg, rec.ValueOffset);

        AssertOpenFailsWithCorruption(seg, rec.Offset, "followed by a valid record");
    }

    [Fact]
    public void DamagedLastRecordOfActiveSegmentIsTornTailAndIsCut()
    {
        var model = WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 3);
        var rec = RecordOf(seg, "n009");
        FlipByte(seg, rec.ValueOffset);

        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal((seg, rec.Offset, (long)rec.Size), store.LastRecovery.TornTail);
        Assert.Equal(rec.Offset, new FileInfo(seg).Length);
        Assert.Null(store.GetString("n009"));
        foreach (var (k, v) in model.Where(kv => kv.Key != "n009"))
        {
            Assert.Equal(v, store.GetString(k));
        }
    }

    [Fact]
    public void TrailingPartialRecordInSealedSegmentIsCorruption()
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 2);
        var last = ReadRecords(seg)[^1];
        ShrinkFile(seg, 5);

        AssertOpenFailsWithCorruption(seg, last.Offset);
    }

    [Fact]
    public void TrailingPartialRecordHeaderInSealedSegmentIsCorruption()
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 1);
        var last = ReadRecords(seg)[^1];
        ShrinkFile(seg, last.Size - 7); // 7 bytes of the header remain

        AssertOpenFailsWithCorruption(seg, last.Offset, "partial record header");
    }

    [Theory]
    [InlineData(0x10)] // unknown flag bit
    [InlineData(0x80)] // unknown flag bit
    [InlineData(0x01)] // tombstone with a value
    [InlineData(0x03)] // tombstone and compressed
    [InlineData(0x08)] // BatchEnd without InBatch
    public void RecordWithInvalidHeaderButValidChecksumIsCorruption(byte flags)
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 2);
        var rec = RecordOf(seg, "m010");
        SetFlagsWithValidChecksum(seg, rec.Offset, flags);

        AssertOpenFailsWithCorruption(seg, rec.Offset, "invalid record header");
    }

    [Fact]
    public void ZeroKeyLengthWithValidChecksumIsCorruption()
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 1);
        var rec = RecordOf(seg, "k020");
        WriteBytes(seg, rec.Offset + 13, [0, 0]);
        FixChecksum(seg, rec.Offset);

        AssertOpenFailsWithCorruption(seg, rec.Offset, "invalid record header");
    }

    [Fact]
    public void ValueLengthPastEndOfSealedSegmentIsCorruption()
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 2);
        var rec = ReadRecords(seg)[^2];
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(len, 1 << 20);
        WriteBytes(seg, rec.Offset + 15, len);

        AssertOpenFailsWithCorruption(seg, rec.Offset, "runs past the end");
    }

    /// <summary>A batch of three (b0 b1 b2) written between plain records of seg 1, then two more sessions.</summary>
    private List<DiskRecord> WriteBatchInSealedSegment(bool batchIsLast)
    {
        Session(_dir.Path, s =>
        {
            s.Put("before", "x");
            s.PutBatch([BatchEntry.Put("b0", "0"u8.ToArray()), BatchEntry.Put("b1", "1"u8.ToArray()), BatchEntry.Put("b2", "2"u8.ToArray())]);
            if (!batchIsLast)
            {
                s.Put("after", "y");
            }
        });
        Session(_dir.Path, s => s.Put("later", "z"));
        var records = ReadRecords(SegmentPath(_dir.Path, 1));
        Assert.Equal(RecordFlags.InBatch, records.Single(r => r.Key == "b0").Flags);
        Assert.Equal(RecordFlags.InBatch | RecordFlags.BatchEnd, records.Single(r => r.Key == "b2").Flags);
        return records;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void UnendedBatchInSealedSegmentIsCorruptionAtBatchStart(bool batchIsLast)
    {
        var records = WriteBatchInSealedSegment(batchIsLast);
        var seg = SegmentPath(_dir.Path, 1);
        var end = records.Single(r => r.Key == "b2");
        SetFlagsWithValidChecksum(seg, end.Offset, (byte)RecordFlags.InBatch);

        AssertOpenFailsWithCorruption(seg, records.Single(r => r.Key == "b0").Offset, "batch without its end record");
    }

    [Fact]
    public void PlainRecordAfterUnendedBatchInActiveSegmentIsCorruption()
    {
        Session(_dir.Path, s =>
        {
            s.Put("before", "x");
            s.PutBatch([BatchEntry.Put("b0", "0"u8.ToArray()), BatchEntry.Put("b1", "1"u8.ToArray())]);
            s.Put("after", "y");
        });
        var seg = SegmentPath(_dir.Path, 1);
        var records = ReadRecords(seg);
        SetFlagsWithValidChecksum(seg, records.Single(r => r.Key == "b1").Offset, (byte)RecordFlags.InBatch);

        // Seg 1 is the newest segment, but a plain record after the unended batch is not a torn tail.
        AssertOpenFailsWithCorruption(seg, records.Single(r => r.Key == "b0").Offset, "batch without its end record");
    }

    [Fact]
    public void UnendedBatchAtEndOfActiveSegmentIsTornTailCutAtBatchStart()
    {
        Session(_dir.Path, s =>
        {
            s.Put("before", "x");
            s.PutBatch([BatchEntry.Put("b0", "0"u8.ToArray()), BatchEntry.Put("b1", "1"u8.ToArray())]);
        });
        var seg = SegmentPath(_dir.Path, 1);
        var records = ReadRecords(seg);
        var b0 = records.Single(r => r.Key == "b0");
        SetFlagsWithValidChecksum(seg, records.Single(r => r.Key == "b1").Offset, (byte)RecordFlags.InBatch);

        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal(b0.Offset, store.LastRecovery.TornTail!.Value.Offset);
        Assert.Equal(b0.Offset, new FileInfo(seg).Length);
        Assert.Equal("x", store.GetString("before"));
        Assert.Null(store.Get("b0"));
        Assert.Null(store.Get("b1"));
    }

    // ------------------------------------------------------------- section 2: headers

    [Theory]
    [InlineData(1u)]
    [InlineData(2u)]
    [InlineData(3u)]
    public void WrongMagicIsNotASegmentAndNothingChanges(uint sequence)
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, sequence);
        WriteBytes(seg, 0, "XKVS"u8);
        var before = Snapshot(_dir.Path);

        var e = Assert.Throws<NotASegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));

        Assert.Equal(seg, e.Path);
        Assert.Contains("magic", e.Message);
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    [Fact]
    public void HintMagicInDataFileIsNotASegment()
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 2);
        WriteBytes(seg, 0, "CKVH"u8);
        var before = Snapshot(_dir.Path);

        var e = Assert.Throws<NotASegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));

        Assert.Equal(seg, e.Path);
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(9u)]
    public void ForeignFileNamedLikeSegmentIsNotASegment(uint sequence)
    {
        WriteThreeSegments(_dir.Path);
        var path = SegmentPath(_dir.Path, sequence, sub: 7);
        File.WriteAllText(path, "this is a text file that only looks like a segment by its name\n");
        var before = Snapshot(_dir.Path);

        var e = Assert.Throws<NotASegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));

        Assert.Equal(path, e.Path);
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    [Fact]
    public void RenamedSegmentWhoseHeaderNamesAnotherIdIsNotASegment()
    {
        WriteThreeSegments(_dir.Path);
        var renamed = SegmentPath(_dir.Path, 2, sub: 5);
        File.Move(SegmentPath(_dir.Path, 2), renamed);
        var before = Snapshot(_dir.Path);

        var e = Assert.Throws<NotASegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));

        Assert.Equal(renamed, e.Path);
        Assert.Contains("header names segment 2/0", e.Message);
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    [Fact]
    public void HeaderNamingDifferentSegmentIdIsNotASegment()
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 1);
        Span<byte> id = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(id, SegmentId.From(2, 0).Value);
        WriteBytes(seg, 8, id);
        var before = Snapshot(_dir.Path);

        var e = Assert.Throws<NotASegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));

        Assert.Equal(seg, e.Path);
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(255)]
    public void UnknownVersionByteIsNotASegment(byte version)
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 2);
        WriteBytes(seg, 4, [version]);
        var before = Snapshot(_dir.Path);

        var e = Assert.Throws<NotASegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));

        Assert.Equal(seg, e.Path);
        Assert.Contains($"version {version}", e.Message);
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    [Fact]
    public void ReservedHeaderBytesAreIgnoredByVersion1Readers()
    {
        var model = WriteThreeSegments(_dir.Path);
        foreach (var seg in SegmentFiles(_dir.Path))
        {
            WriteBytes(seg, 5, [0xAB, 0xCD, 0xEF]);
        }

        using var store = EmbeddedStore.Open(_dir.Path, Small());
        foreach (var (k, v) in model)
        {
            Assert.Equal(v, store.GetString(k));
        }
    }

    [Fact]
    public void SealedSegmentShorterThanHeaderIsNotASegment()
    {
        WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 1);
        ShrinkFile(seg, new FileInfo(seg).Length - 10);
        var before = Snapshot(_dir.Path);

        var e = Assert.Throws<NotASegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));

        Assert.Equal(seg, e.Path);
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    [Fact]
    public void ActiveSegmentShorterThanHeaderIsATornCreationAndIsDeleted()
    {
        var model = WriteThreeSegments(_dir.Path);
        var torn = SegmentPath(_dir.Path, 4);
        File.WriteAllBytes(torn, "CKVS\u0001"u8.ToArray());

        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.False(File.Exists(torn));
        Assert.Equal(model.Count, store.Count);
    }

    // ------------------------------------------------------------- section 5: hints

    /// <summary>Three sessions, a compaction (output 3/1 with its hint), then one more session (seg 4/0) so the merge output is not the newest segment.</summary>
    private Dictionary<string, string> WriteAndCompact(out string mergeOutput, bool laterSession = true)
    {
        var model = WriteThreeSegments(_dir.Path);
        using (var store = EmbeddedStore.Open(_dir.Path, Small()))
        {
            store.Compact();
        }
        mergeOutput = SegmentPath(_dir.Path, 3, 1);
        Assert.True(File.Exists(mergeOutput));
        Assert.True(File.Exists(Path.ChangeExtension(mergeOutput, ".hint")));
        if (laterSession)
        {
            Session(_dir.Path, s => s.Put("later", model["later"] = "z"));
            Assert.True(File.Exists(SegmentPath(_dir.Path, 4)));
        }
        return model;
    }

    [Fact]
    public void DamagedHintIsIgnoredAndDataSegmentIsScanned()
    {
        var model = WriteAndCompact(out var data);
        var hint = Path.ChangeExtension(data, ".hint");
        FlipByte(hint, FormatConstants.FileHeaderSize + 30);

        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal(0, store.LastRecovery.SegmentsFromHints);
        Assert.Contains(store.LastRecovery.Messages, m => m.Contains("Ignoring hint"));
        foreach (var (k, v) in model)
        {
            Assert.Equal(v, store.GetString(k));
        }
    }

    [Fact]
    public void HintWhoseDataLengthDoesNotMatchIsIgnored()
    {
        var model = WriteAndCompact(out var data);
        var last = ReadRecords(data)[^1];
        ShrinkFile(data, last.Size); // a whole record gone: the data still scans cleanly

        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal(0, store.LastRecovery.SegmentsFromHints);
        Assert.Null(store.GetString(last.Key));
        Assert.Equal(model.Count - 1, store.Count);
    }

    [Fact]
    public void DataDamageBehindValidHintIsCaughtOnRead()
    {
        var model = WriteAndCompact(out var data);
        var rec = RecordOf(data, "m005");
        FlipByte(data, rec.ValueOffset + 1, 0x20);

        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal(1, store.LastRecovery.SegmentsFromHints);
        var e = Assert.Throws<CorruptSegmentException>(() => store.Get("m005"));
        Assert.Equal(data, e.Path);
        Assert.Equal(rec.Offset, e.Offset);
        foreach (var (k, v) in model.Where(kv => kv.Key != "m005"))
        {
            Assert.Equal(v, store.GetString(k));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DamagedLastRecordOfNewestMergeOutputIsCorruptionNotTornTail(bool deleteHint)
    {
        // A merge output is written as *.tmp, fsynced and renamed (FORMAT.md section 7): it can
        // never hold a torn write, so even as the newest segment it is never cut (rule 4 is for
        // the writer's segment); damage in it is corruption (rule 3), found by the scan or, when
        // its hint is used, by the read.
        var model = WriteAndCompact(out var data, laterSession: false);
        Assert.Single(SegmentFiles(_dir.Path)); // the empty active segment was not kept: 3/1 is the newest
        var last = ReadRecords(data)[^1];
        FlipByte(data, last.ValueOffset);
        var length = new FileInfo(data).Length;
        if (deleteHint)
        {
            File.Delete(Path.ChangeExtension(data, ".hint"));
            AssertOpenFailsWithCorruption(data, last.Offset);
            return;
        }

        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Null(store.LastRecovery.TornTail);
        Assert.Equal(length, new FileInfo(data).Length);
        var e = Assert.Throws<CorruptSegmentException>(() => store.Get(last.Key));
        Assert.Equal(data, e.Path);
        Assert.Equal(last.Offset, e.Offset);
        foreach (var (k, v) in model.Where(kv => kv.Key != last.Key))
        {
            Assert.Equal(v, store.GetString(k));
        }
    }

    [Fact]
    public void CompressedValueThatDoesNotDecompressIsReportedAsCorruptSegment()
    {
        Session(_dir.Path, s => s.Put("plain", "this value was never snappy-compressed, whatever the flag says"));
        Session(_dir.Path, s => s.Put("other", "o"));
        var seg = SegmentPath(_dir.Path, 1);
        var rec = RecordOf(seg, "plain");
        SetFlagsWithValidChecksum(seg, rec.Offset, (byte)RecordFlags.Compressed);

        using var store = EmbeddedStore.Open(_dir.Path, Small()); // the record verifies: open accepts it
        var e = Assert.Throws<CorruptSegmentException>(() => store.Get("plain"));
        Assert.Equal(seg, e.Path);
        Assert.Equal(rec.Offset, e.Offset);
        Assert.Equal("o", store.GetString("other"));
    }

    [Fact]
    public void RecordAtWrongKeyForItsLocationIsCaughtOnRead()
    {
        // A valid record whose key differs from what the hint says lives there.
        var model = WriteAndCompact(out var data);
        var rec = RecordOf(data, "m007");
        WriteBytes(data, rec.Offset + FormatConstants.RecordHeaderSize, Encoding.UTF8.GetBytes("m008"));
        FixChecksum(data, rec.Offset);

        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal(1, store.LastRecovery.SegmentsFromHints);
        var e = Assert.Throws<CorruptSegmentException>(() => store.Get("m007"));
        Assert.Equal(rec.Offset, e.Offset);
        Assert.Equal(model["m006"], store.GetString("m006"));
    }
}
