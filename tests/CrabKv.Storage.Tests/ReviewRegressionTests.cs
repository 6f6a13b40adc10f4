using System.Text;
using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Recovery;
using CrabKv.Storage.Segments;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;
using static CrabKv.Storage.Tests.TestSupport.CorruptionHelpers;

namespace CrabKv.Storage.Tests;

/// <summary>Regressions for defects found by review of the engine.</summary>
public sealed class ReviewRegressionTests : IDisposable
{
    private readonly TempDirectory _dir = new("review");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void CompactingAnIdleStoreAgainDoesNotBurnSegmentIds()
    {
        Session(_dir.Path, s => s.Put("k", "v"));
        Session(_dir.Path, s => s.Compact());
        var after = SegmentFiles(_dir.Path);
        for (var i = 0; i < 3; i++)
        {
            Session(_dir.Path, s => s.Compact());
        }
        Assert.Equal(after, SegmentFiles(_dir.Path)); // the merge output was not merged into S/2, S/3, …
        Session(_dir.Path, s => Assert.Equal("v", s.GetString("k")));
    }

    [Fact]
    public void SegmentFileWithAnUnreadableNameFailsOpenInsteadOfHidingItsKeys()
    {
        Session(_dir.Path, s => s.Put("k", "v"));
        var data = SegmentFiles(_dir.Path).Single();
        File.Move(data, Path.Combine(_dir.Path, "seg-00000001-1000000.data"));
        Assert.Throws<NotASegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));
    }

    [Fact]
    public void OrphanHintLeftBetweenTheTwoRenamesOfAMergeIsRemovedAtOpen()
    {
        Session(_dir.Path, s => s.Put("k", "v"));
        File.WriteAllBytes(Path.Combine(_dir.Path, "seg-00000001-000001.hint"), [1, 2, 3]);
        Session(_dir.Path, s =>
        {
            Assert.Equal("v", s.GetString("k"));
            s.Compact(); // used to fail: "1/1 exists outside the run"
        });
        Assert.All(Directory.GetFiles(_dir.Path, "*.hint"), h => Assert.True(File.Exists(Path.ChangeExtension(h, ".data"))));
        Session(_dir.Path, s => Assert.Equal("v", s.GetString("k")));
    }

    [Fact]
    public void NewestSegmentWhoseHeaderNeverReachedDiskIsATornCreation()
    {
        Session(_dir.Path, s => s.Put("k", "v"));
        File.WriteAllBytes(Path.Combine(_dir.Path, SegmentId.From(9, 0).DataFileName), new byte[64 * 1024]);
        Session(_dir.Path, s => Assert.Equal("v", s.GetString("k")));
        Assert.False(File.Exists(Path.Combine(_dir.Path, SegmentId.From(9, 0).DataFileName)));
    }

    [Fact]
    public void KeysWithALoneSurrogateAreRefusedInsteadOfCollidingOnDisk()
    {
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Throws<InvalidKeyException>(() => store.Put("a\uD800", "v1"));
        Assert.Throws<InvalidKeyException>(() => store.Get("a\uDBFF"));
        Assert.Equal(0, store.Count);
    }

    [Fact]
    public void ABatchLargerThanASegmentIsRefusedAndWritesNothing()
    {
        using var store = EmbeddedStore.Open(_dir.Path, Small() with { MaxSegmentBytes = 4096, Compression = false });
        var ops = Enumerable.Range(0, 10).Select(i => BatchEntry.Put($"b{i}", new byte[1000])).ToList();
        Assert.Throws<ValueTooLargeException>(() => store.PutBatch(ops));
        Assert.Equal(0, store.Count);
        store.Put("after", "ok");
        Assert.Equal("ok", store.GetString("after"));
    }

    [Fact]
    public void AFailedFsyncPoisonsTheStoreUntilItIsReopened()
    {
        using var faults = new FaultyFileLayer(FileLayer.Default);
        using (var store = EmbeddedStore.Open(_dir.Path, Small() with { Files = faults }))
        {
            store.Put("durable", "1");
            store.Sync();
            store.Put("maybe", "2");
            faults.FailEvery(FileOps.Sync);
            Assert.Throws<IOException>(() => store.Sync());
            faults.Heal();
            // A retried fsync could report pages the OS already dropped as durable: refused.
            Assert.Throws<StoreClosedException>(() => store.Sync());
            Assert.Throws<StoreClosedException>(() => store.Put("x", "3"));
            Assert.Throws<StoreClosedException>(() => store.Get("durable"));
        }
        Session(_dir.Path, s => Assert.Equal("1", s.GetString("durable")));
    }

    [Fact]
    public void RepairNeverTakesARecordImageInsideADamagedValueForARecord()
    {
        // A value holding the bytes of a whole record ("injected" = "phantom"), then damage
        // in that value and in the record after it: the search for the next intact record
        // must start after the damaged record, not inside its value.
        var image = new byte[RecordCodec.SizeOf(8, 7)];
        RecordCodec.Encode(image, RecordFlags.None, 0, "injected"u8, "phantom"u8);
        var value = new byte[64].Concat(image).Concat(new byte[32]).ToArray();
        Session(_dir.Path, s =>
        {
            s.Put("a", "1");
            s.Put("victim", value);
            s.Put("b", "2");
            s.Put("c", "3");
        }, Small() with { Compression = false });
        var data = SegmentFiles(_dir.Path).Single();
        var records = ReadRecords(data);
        FlipByte(data, records.Single(r => r.Key == "victim").ValueOffset + 1);
        FlipByte(data, records.Single(r => r.Key == "b").ValueOffset);

        var report = Repair.Run(_dir.Path);
        Assert.Single(report.Damaged);
        Session(_dir.Path, s =>
        {
            Assert.Null(s.GetString("injected"));
            Assert.Equal("1", s.GetString("a"));
            Assert.Equal("3", s.GetString("c"));
        });
    }
}
