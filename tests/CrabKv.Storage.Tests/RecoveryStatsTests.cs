using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>
/// What a store reports about its last open (RecoveryReport.Mode and Duration, the recovery
/// fields of PartitionStats) and its sizes (live bytes, read-cache entries and bytes).
/// </summary>
public sealed class RecoveryStatsTests : IDisposable
{
    private readonly TempDirectory _dir = new("recovery-stats");

    public void Dispose() => _dir.Dispose();

    private static StoreOptions Options => new()
    {
        MaxSegmentBytes = 16 << 10,
        PreallocateSegments = false,
        Compression = false,
    };

    private static void PutAll(EmbeddedStore store, int count, string prefix)
    {
        for (var i = 0; i < count; i++)
        {
            store.Put($"{prefix}{i}", new byte[300]);
        }
    }

    [Fact]
    public void A_new_store_recovered_nothing_and_reports_its_sizes_and_cache()
    {
        // Positional reads: the only ones the read cache keeps (a mapped read is not cached).
        using var store = EmbeddedStore.Open(_dir.Path, Options with { Files = new PositionalReadLayer() });
        Assert.Equal(RecoveryMode.None, store.LastRecovery.Mode);
        PutAll(store, 10, "k");
        PutAll(store, 4, "k");
        store.Sync(); // out of the write buffer: the get reads the file
        Assert.NotNull(store.Get("k7"));

        var stats = store.GetStats();
        Assert.Equal(RecoveryMode.None, stats.RecoveryMode);
        Assert.Null(stats.Node);
        Assert.Equal(10, stats.Keys);
        Assert.True(stats.StaleBytes >= 4 * 300);
        Assert.Equal(stats.TotalBytes - stats.StaleBytes, stats.LiveBytes);
        Assert.True(stats.LiveBytes >= 10 * 300);
        Assert.Equal(1, stats.CacheEntries);
        Assert.True(stats.CacheBytes >= 300);
    }

    [Fact]
    public void Reopen_reports_hints_then_mixed_then_scan_with_segment_counts_and_duration()
    {
        using (var store = EmbeddedStore.Open(_dir.Path, Options))
        {
            PutAll(store, 200, "a"); // several 16 KiB segments
            Assert.True(store.Compact().SegmentsMerged >= 2);
        }
        int fromHintFiles;
        using (var store = EmbeddedStore.Open(_dir.Path, Options))
        {
            var stats = store.GetStats();
            Assert.Equal(RecoveryMode.Hints, stats.RecoveryMode);
            Assert.Equal(store.LastRecovery.SegmentsFromHints, stats.SegmentsFromHints);
            Assert.True(stats.SegmentsFromHints >= 1);
            Assert.Equal(0, stats.SegmentsScanned);
            Assert.True(stats.RecoveryDuration > TimeSpan.Zero);
            Assert.Equal(store.LastRecovery.Duration, stats.RecoveryDuration);
            fromHintFiles = stats.SegmentsFromHints;
            PutAll(store, 5, "b"); // the active segment has no hint file
        }
        using (var store = EmbeddedStore.Open(_dir.Path, Options))
        {
            var stats = store.GetStats();
            Assert.Equal(RecoveryMode.Mixed, stats.RecoveryMode);
            Assert.Equal(fromHintFiles, stats.SegmentsFromHints);
            Assert.Equal(1, stats.SegmentsScanned);
            Assert.Equal(205, stats.Keys);
        }
        foreach (var hint in Directory.GetFiles(_dir.Path, "*.hint"))
        {
            File.Delete(hint);
        }
        using (var store = EmbeddedStore.Open(_dir.Path, Options))
        {
            var stats = store.GetStats();
            Assert.Equal(RecoveryMode.Scan, stats.RecoveryMode);
            Assert.Equal(0, stats.SegmentsFromHints);
            Assert.Equal(fromHintFiles + 1, stats.SegmentsScanned);
            Assert.Equal(205, stats.Keys);
        }
    }
}
