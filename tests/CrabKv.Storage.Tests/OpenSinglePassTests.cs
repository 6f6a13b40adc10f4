using System.Text;
using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Segments;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;
using static CrabKv.Storage.Tests.TestSupport.CorruptionHelpers;

namespace CrabKv.Storage.Tests;

/// <summary>
/// Open reads the segments it scans once (FORMAT.md section 8): the active segment in one pass
/// that verifies, indexes and finds the torn tail together, every byte of it read once and in
/// large chunks, and the recovery rules (torn tail, unended batch, zero fill, expiry,
/// tombstones) unchanged.
/// </summary>
public sealed class OpenSinglePassTests : IDisposable
{
    private readonly TempDirectory _dir = new("single-pass");
    private readonly ManualClock _clock = new();

    public void Dispose() => _dir.Dispose();

    private StoreOptions Options(FileLayer? files = null, bool preallocate = false, long maxSegmentBytes = 16 << 20) => new()
    {
        Clock = _clock,
        Files = files ?? FileLayer.Default,
        Compression = false,
        AutoCompact = false,
        MaxSegmentBytes = maxSegmentBytes,
        PreallocateSegments = preallocate,
    };

    private static byte[] Bytes(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Fact]
    public void SegmentsScannedAtOpenAreReadOnceInLargeChunks()
    {
        var expected = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        using (var store = EmbeddedStore.Open(_dir.Path, Options()))
        {
            for (var i = 0; i < 300; i++)
            {
                store.Put($"old-{i:D4}", expected[$"old-{i:D4}"] = Bytes(50 + i % 17, i));
            }
        }
        using (var store = EmbeddedStore.Open(_dir.Path, Options()))
        {
            // About 3.5 MiB of records of uneven sizes: several scan buffers, records cut by their ends.
            for (var i = 0; i < 12_000; i++)
            {
                store.Put($"new-{i:D5}", expected[$"new-{i:D5}"] = Bytes(200 + i % 151, i));
            }
            for (var i = 0; i < 300; i += 3)
            {
                store.Delete($"old-{i:D4}");
                expected.Remove($"old-{i:D4}");
            }
            store.Put("short-lived", "x", TimeSpan.FromMinutes(1));
        }
        _clock.Advance(TimeSpan.FromMinutes(2));
        var sealedOne = SegmentPath(_dir.Path, 1);
        var last = SegmentPath(_dir.Path, 2);
        Assert.Equal(2, SegmentFiles(_dir.Path).Count);
        var lastLength = new FileInfo(last).Length;
        Assert.True(lastLength > 3 << 20, $"the last segment is only {lastLength} bytes");

        var files = new ReadCountingFileLayer();
        using (var store = EmbeddedStore.Open(_dir.Path, Options(files)))
        {
            // Counted before any get reads a record.
            // Once, plus the 32-byte probe of where its first record starts (StoreRecovery.FirstActive).
            Assert.Equal(lastLength + 32, files.BytesRead(last));
            Assert.Equal(new FileInfo(sealedOne).Length, files.BytesRead(sealedOne));
            var calls = files.ReadCalls(last);
            Assert.True(calls <= 2 + lastLength / (512 << 10), $"{calls} reads for a {lastLength}-byte segment: not read in large chunks");

            Assert.Equal(2, store.LastRecovery.SegmentsScanned);
            Assert.Null(store.LastRecovery.TornTail);
            Assert.Equal(lastLength, new FileInfo(last).Length);
            Assert.Equal(expected.Count, store.Count);
            Assert.Null(store.Get("short-lived"));
            foreach (var (key, value) in expected)
            {
                Assert.True(value.AsSpan().SequenceEqual(store.Get(key)), $"'{key}' has the wrong value");
            }
        }
    }

    [Fact]
    public void UnendedBatchFollowedByATornRecordIsCutInTheSamePassThatIndexes()
    {
        using (var store = EmbeddedStore.Open(_dir.Path, Options()))
        {
            store.Put("kept", "v1");
            store.Put("short-lived", "x", TimeSpan.FromMinutes(1));
            store.Put("gone", "soon deleted");
            store.Delete("gone");
            store.PutBatch([BatchEntry.Put("b0", "0"u8.ToArray()), BatchEntry.Put("b1", "1"u8.ToArray())]);
            store.PutBatch([BatchEntry.Put("c0", "0"u8.ToArray()), BatchEntry.Put("kept", "v2 from a torn batch"u8.ToArray()), BatchEntry.Delete("b0")]);
        }
        var seg = SegmentPath(_dir.Path, 1);
        var records = ReadRecords(seg);
        var c0 = records.Single(r => r.Key == "c0");
        var batchEnd = records[^1];
        Assert.Equal("b0", batchEnd.Key);
        // The batch loses its end (the write was torn there) and half a record follows it.
        SetFlagsWithValidChecksum(seg, batchEnd.Offset, (byte)(RecordFlags.InBatch | RecordFlags.Tombstone));
        var partial = Bytes(40, 5);
        partial[0] |= 0x80;
        using (var fs = new FileStream(seg, FileMode.Append, FileAccess.Write))
        {
            fs.Write(partial);
        }
        var tornLength = new FileInfo(seg).Length;
        _clock.Advance(TimeSpan.FromMinutes(2));

        var files = new ReadCountingFileLayer();
        using (var store = EmbeddedStore.Open(_dir.Path, Options(files)))
        {
            Assert.Equal(tornLength, files.BytesRead(seg)); // validated, indexed and the tail examined: one read of each byte
            var torn = store.LastRecovery.TornTail;
            Assert.NotNull(torn);
            Assert.Equal(Path.GetFullPath(seg), torn.Value.Path);
            Assert.Equal(c0.Offset, torn.Value.Offset);
            Assert.Equal(tornLength - c0.Offset, torn.Value.BytesCut);
            Assert.Equal(c0.Offset, new FileInfo(seg).Length);
            AssertRecovered(store);
        }
        using (var again = EmbeddedStore.Open(_dir.Path, Options()))
        {
            Assert.Null(again.LastRecovery.TornTail);
            AssertRecovered(again);
        }

        static void AssertRecovered(EmbeddedStore store)
        {
            Assert.Equal("v1", store.GetString("kept"));    // the unended batch's overwrite is not applied
            Assert.Equal("0", store.GetString("b0"));       // nor its delete
            Assert.Equal("1", store.GetString("b1"));
            Assert.Null(store.GetString("c0"));
            Assert.Null(store.GetString("gone"));           // tombstone
            Assert.Null(store.GetString("short-lived"));    // expired
            Assert.Equal(3, store.Count);
        }
    }

    [Fact]
    public void ZeroTailOfACrashedPreallocatedSegmentIsReadOnceAndCutSilently()
    {
        var options = Options(preallocate: true, maxSegmentBytes: 1 << 20);
        var store = EmbeddedStore.Open(_dir.Path, options);
        for (var i = 0; i < 100; i++)
        {
            store.Put($"k{i:D3}", Bytes(100 + i, i));
        }
        store.PutBatch([BatchEntry.Put("batch-a", "a"u8.ToArray()), BatchEntry.Delete("k000")]);
        store.Flush();
        store.SimulateCrash();
        var seg = SegmentPath(_dir.Path, 1);
        var crashedLength = new FileInfo(seg).Length;
        var lastRecord = ReadRecords(seg)[^1];
        var dataEnd = lastRecord.Offset + lastRecord.Size;
        Assert.True(crashedLength > dataEnd, $"no preallocated tail: {crashedLength} bytes, data ends at {dataEnd}");

        var files = new ReadCountingFileLayer();
        using var reopened = EmbeddedStore.Open(_dir.Path, options with { Files = files });
        Assert.Equal(crashedLength, files.BytesRead(seg));
        Assert.Null(reopened.LastRecovery.TornTail);
        Assert.Equal(dataEnd, new FileInfo(seg).Length);
        Assert.Equal(100, reopened.Count);
        Assert.Null(reopened.Get("k000"));
        Assert.Equal("a", reopened.GetString("batch-a"));
        Assert.True(Bytes(199, 99).AsSpan().SequenceEqual(reopened.Get("k099")));
    }

    [Fact]
    public void AHintBesideTheActiveSegmentIsIgnoredAndSaidSo()
    {
        using (var store = EmbeddedStore.Open(_dir.Path, Options()))
        {
            store.Put("a", "1");
            store.Put("b", "2");
            store.Compact(); // seg 1 becomes merge output 1/1 with a hint
            store.Put("a", "3");
        }
        var active = SegmentPath(_dir.Path, 2);
        var mergeHint = Path.ChangeExtension(SegmentPath(_dir.Path, 1, 1), ".hint");
        Assert.True(File.Exists(active) && File.Exists(mergeHint), "expected merge output 1/1 with its hint and writer segment 2");
        File.Copy(mergeHint, Path.ChangeExtension(active, ".hint")); // never written by the engine: a stray file

        var messages = new List<string>();
        using var reopened = EmbeddedStore.Open(_dir.Path, Options() with { Log = messages.Add });
        Assert.Contains(messages, m => m.Contains("beside the active segment", StringComparison.Ordinal));
        Assert.Equal(1, reopened.LastRecovery.SegmentsFromHints);
        Assert.Equal(1, reopened.LastRecovery.SegmentsScanned);
        Assert.Equal("3", reopened.GetString("a"));
        Assert.Equal("2", reopened.GetString("b"));
    }

    [Fact]
    public void ScannerReadsEachByteOnceWhenRecordsCrossItsBufferAndOneOutgrowsIt()
    {
        using (var store = EmbeddedStore.Open(_dir.Path, Options()))
        {
            for (var i = 0; i < 60; i++)
            {
                store.Put($"k{i:D2}", Bytes(i == 30 ? 5000 : 37 + i * 7, i));
            }
        }
        var seg = SegmentPath(_dir.Path, 1);
        var onDisk = ReadRecords(seg);
        Assert.Equal(60, onDisk.Count);
        var files = new ReadCountingFileLayer();
        using var segment = Segment.OpenSealed(files, SegmentId.From(1, 0), seg);
        var scanner = new SegmentScanner(segment, segment.Length, bufferBytes: 1024);
        var seen = new List<(long Offset, string Key)>();
        for (var n = 0; n <= onDisk.Count && scanner.Next() == ScanStatus.Record; n++)
        {
            seen.Add((scanner.RecordOffset, Encoding.UTF8.GetString(RecordCodec.KeyOf(scanner.Record, scanner.Header))));
        }
        Assert.Equal(segment.Length, scanner.Position);
        Assert.Equal(onDisk.Select(r => (r.Offset, r.Key)), seen);
        Assert.Equal(segment.Length, files.BytesRead(seg)); // header once, then every record byte once
    }

    [Theory]
    [InlineData(10, -1, true)]     // fewer bytes than a record header, all zero
    [InlineData(10, 9, false)]     // ... one of them not
    [InlineData(10, 0, false)]     // ... the very first not
    [InlineData(9000, -1, true)]   // several chunks of zeros
    [InlineData(9000, 8999, false)]
    [InlineData(9000, 4500, false)]
    public void FindNextValidRecordTellsAZeroTailFromOneWithData(int tailBytes, int nonZeroAt, bool zeroTail)
    {
        using (var store = EmbeddedStore.Open(_dir.Path, Options()))
        {
            store.Put("a", "first");
            store.Put("b", "second");
        }
        var seg = SegmentPath(_dir.Path, 1);
        var dataEnd = new FileInfo(seg).Length;
        var tail = new byte[tailBytes];
        if (nonZeroAt >= 0)
        {
            tail[nonZeroAt] = 0x80;
        }
        using (var fs = new FileStream(seg, FileMode.Append, FileAccess.Write))
        {
            fs.Write(tail);
        }
        using var segment = Segment.OpenSealed(FileLayer.Default, SegmentId.From(1, 0), seg);
        var scanner = new SegmentScanner(segment, segment.Length, bufferBytes: 4096);
        var records = 0;
        for (; records <= 2 && scanner.Next() == ScanStatus.Record; records++)
        {
        }
        Assert.Equal(2, records);
        Assert.Equal(dataEnd, scanner.Position);
        Assert.Equal(-1, scanner.FindNextValidRecord(scanner.Position, out var foundZeroTail));
        Assert.Equal(zeroTail, foundZeroTail);
    }
}
