using System.Text;
using CrabKv.Storage.Files;
using CrabKv.Storage.Recovery;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>
/// The one-call durable write (<see cref="FileLayer.WriteDurable"/>, <c>pwritev2(RWF_DSYNC)</c>
/// on Linux) that a sync uses inside the zero-filled region an fdatasync already made durable,
/// and the open that presizes its key directory from the hint trailers and reads hints in chunks.
/// </summary>
public sealed class DurableWriteTests : IDisposable
{
    private readonly TempDirectory _dir = new("durable");

    public void Dispose() => _dir.Dispose();

    private static byte[] Value(int i) => Encoding.UTF8.GetBytes($"value {i:D6} " + new string('v', 90));

    private static List<BatchEntry> Batch(int first, int count) =>
        Enumerable.Range(first, count).Select(i => BatchEntry.Put($"key:{i:D6}", Value(i))).ToList();

    [Fact]
    public void OsLayerWriteDurableWritesTheBytesInsideASyncedPreallocatedFile()
    {
        var files = FileLayer.Default;
        var path = _dir.Combine("f");
        using (var h = files.Open(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read))
        {
            files.Write(h, new byte[8192], 0); // zero-filled and synced: size and blocks durable
            files.SyncData(h);
            files.WriteDurable(h, Encoding.UTF8.GetBytes("durable"), 100);
            Assert.Equal(8192, files.GetLength(h));
        }
        var bytes = File.ReadAllBytes(path);
        Assert.Equal("durable", Encoding.UTF8.GetString(bytes, 100, 7));
        Assert.Equal(8192, bytes.Length);
    }

    [Fact]
    public void BatchSyncsAreOneDurableWriteOnceTheZeroFilledRegionAheadIsSynced()
    {
        using var disk = new FaultyFileLayer(FileLayer.Default);
        var options = new StoreOptions { Files = disk, Compression = false };
        var directory = _dir.Combine("store");
        using (var store = EmbeddedStore.Open(directory, options))
        {
            for (var b = 0; b < 50; b++)
            {
                store.PutBatch(Batch(b * 100, 100));
                store.Sync();
            }
            // 50 × ~13 KB = 650 KB: an fdatasync for each 256 KiB zero-fill step (and the first sync), a durable write otherwise.
            Assert.InRange(disk.DurableWrites, 40, 49);
            Assert.Equal("value 004999 " + new string('v', 90), store.GetString("key:004999"));
        }
        using (var reopened = EmbeddedStore.Open(directory, options with { Files = FileLayer.Default }))
        {
            Assert.Equal(5000, reopened.Count);
            Assert.Equal("value 000000 " + new string('v', 90), reopened.GetString("key:000000"));
        }
        Assert.True(Repair.Verify(directory).Clean);
    }

    [Fact]
    public void WithoutPreallocationEverySyncIsAWriteAndAnFdatasync()
    {
        using var disk = new FaultyFileLayer(FileLayer.Default);
        using var store = EmbeddedStore.Open(_dir.Combine("store"), new StoreOptions { Files = disk, PreallocateSegments = false });
        for (var i = 0; i < 20; i++)
        {
            store.Put($"k{i}", "v");
            store.Sync();
        }
        Assert.Equal(0, disk.DurableWrites); // the file grows: its size must go through fdatasync
        Assert.Equal(20, store.Count);
    }

    [Fact]
    public void AFailedDurableWriteIsReportedAndNothingIsAcknowledged()
    {
        using var disk = new FaultyFileLayer(FileLayer.Default);
        var options = new StoreOptions { Files = disk };
        var directory = _dir.Combine("store");
        var store = EmbeddedStore.Open(directory, options);
        store.PutBatch(Batch(0, 100));
        store.Sync(); // write + fdatasync: the zero-filled region ahead is durable now
        store.PutBatch(Batch(100, 100));
        store.Sync();
        Assert.Equal(1, disk.DurableWrites);

        store.PutBatch(Batch(200, 100));
        disk.FailNext(FileOps.DurableWrite);
        var e = Assert.Throws<IOException>(() => store.Sync());
        Assert.StartsWith("Injected DurableWrite", e.Message);
        Assert.Equal(1, disk.FailuresInjected);
        // The store is poisoned: no later write is taken (or acknowledged) on top of an unknown state.
        Assert.Throws<StoreClosedException>(() => store.Put("after", "x"));
        Assert.Throws<StoreClosedException>(() => store.Sync());
        store.SimulateCrash();

        using var reopened = EmbeddedStore.Open(directory, options with { Files = FileLayer.Default });
        Assert.Equal(200, reopened.Count); // the acknowledged batches, not the failed one
        Assert.Null(reopened.GetString("key:000200"));
        Assert.Null(reopened.GetString("after"));
        Assert.NotNull(reopened.GetString("key:000199"));
    }

    [Fact]
    public void DurablyWrittenBatchesSurviveAPowerCutAndUnsyncedBytesDoNot()
    {
        var power = new PowerLossFileLayer(FileLayer.Default);
        var options = new StoreOptions { Files = power, Compression = false };
        var directory = _dir.Combine("store");
        var store = EmbeddedStore.Open(directory, options);
        for (var b = 0; b < 10; b++)
        {
            store.PutBatch(Batch(b * 100, 100));
            store.Sync(); // the first a write + fdatasync, the rest durable writes (modelled as durable for their range only)
        }
        // Handed to the OS, not synced: the next sync must not be a range-only durable write,
        // or this batch would be lost under the one after it (open would refuse a gap before a valid record).
        store.PutBatch(Batch(1000, 100));
        store.Flush();
        store.PutBatch(Batch(1100, 100));
        store.Sync();
        store.PutBatch(Batch(1200, 100));
        store.Flush(); // never synced
        store.SimulateCrash();

        power.CutPower();

        using (var reopened = EmbeddedStore.Open(directory, options with { Files = FileLayer.Default }))
        {
            Assert.Equal(1200, reopened.Count);
            Assert.Equal("value 001050 " + new string('v', 90), reopened.GetString("key:001050"));
            Assert.Null(reopened.GetString("key:001200"));
        }
        Assert.True(Repair.Verify(directory).Clean);
    }

    [Fact]
    public void OpenPresizesTheKeyDirectoryFromTheHintTrailersAndReadsHintsInChunks()
    {
        var directory = _dir.Combine("store");
        const int keys = 60_000; // hint entries of 23 + 24 bytes: 2.8 MB, several 1 MiB chunks
        using (var store = EmbeddedStore.Open(directory, new StoreOptions { AutoCompact = false, Compression = false }))
        {
            for (var i = 0; i < keys; i += 1000)
            {
                store.PutBatch(Enumerable.Range(i, 1000).Select(k => BatchEntry.Put($"a-longer-key:{k:D10}", Value(k))).ToList());
            }
            store.Put("a-longer-key:0000000007", "overwritten");
            store.Compact();
        }
        Assert.Contains(Directory.GetFiles(directory, "*.hint"), f => new FileInfo(f).Length > 2 * (1 << 20));
        using (var reopened = EmbeddedStore.Open(directory))
        {
            Assert.Equal(keys, reopened.Count);
            Assert.Equal(0, reopened.LastRecovery.SegmentsScanned);
            Assert.True(reopened.LastRecovery.SegmentsFromHints > 0);
            Assert.Equal(keys, reopened.LastRecovery.PresizedKeys);
            Assert.Equal("overwritten", reopened.GetString("a-longer-key:0000000007"));
            Assert.Equal("value 059999 " + new string('v', 90), reopened.GetString("a-longer-key:0000059999"));
        }
    }

    [Fact]
    public void AHintDamagedPastItsFirstChunkIsIgnoredWholeAndTheSegmentScanned()
    {
        var directory = _dir.Combine("store");
        const int keys = 40_000;
        using (var store = EmbeddedStore.Open(directory, new StoreOptions { AutoCompact = false, Compression = false }))
        {
            for (var i = 0; i < keys; i += 1000)
            {
                store.PutBatch(Enumerable.Range(i, 1000).Select(k => BatchEntry.Put($"a-longer-key:{k:D10}", Value(k))).ToList());
            }
            store.Compact();
        }
        var hint = Directory.GetFiles(directory, "*.hint").OrderByDescending(f => new FileInfo(f).Length).First();
        Assert.True(new FileInfo(hint).Length > (1 << 20) + 4096);
        CorruptionHelpers.FlipByte(hint, (1 << 20) + 4000, 0x01); // inside an entry of the second chunk
        using var reopened = EmbeddedStore.Open(directory);
        Assert.Equal(keys, reopened.Count);
        Assert.True(reopened.LastRecovery.SegmentsScanned > 0);
        Assert.Contains(reopened.LastRecovery.Messages, m => m.Contains("Ignoring hint", StringComparison.Ordinal));
        Assert.Equal("value 039999 " + new string('v', 90), reopened.GetString("a-longer-key:0000039999"));
    }

    [Fact]
    public void ADamagedHintTrailerPresizesNothingAndOpenStillScans()
    {
        var directory = _dir.Combine("store");
        using (var store = EmbeddedStore.Open(directory, new StoreOptions { AutoCompact = false }))
        {
            for (var i = 0; i < 3000; i++)
            {
                store.Put($"k{i}", Value(i));
            }
            store.Compact();
        }
        foreach (var hint in Directory.GetFiles(directory, "*.hint"))
        {
            CorruptionHelpers.FlipByte(hint, new FileInfo(hint).Length - 5, 0xFF); // the trailer's entry count
        }
        using var reopened = EmbeddedStore.Open(directory);
        Assert.Equal(0, reopened.LastRecovery.PresizedKeys);
        Assert.Equal(3000, reopened.Count);
        Assert.Equal(0, reopened.LastRecovery.SegmentsFromHints);
    }
}
