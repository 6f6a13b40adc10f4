using System.Diagnostics;
using Akka.Configuration;
using CrabKv.Actors.Hosting;
using CrabKv.Actors.Partition;
using CrabKv.Actors.Tests.Support;
using CrabKv.Storage.Segments;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// Node-wide budgets: cache, write-back, write buffers and preallocation are configured per
/// node and shared by its partitions (<see cref="CrabKvSettings.PerPartition"/>).
/// </summary>
public sealed class BudgetTests : StoreTestBase
{
    private const long KiB = 1L << 10;
    private const long MiB = 1L << 20;

    private static CrabKvSettings FromOptions(CrabKvOptions options) =>
        CrabKvSettings.Create(ConfigurationFactory.ParseString(options.ToHocon()));

    private static readonly CrabKvOptions Budgets = new()
    {
        CacheMaxEntries = 6400,
        CacheMaxBytes = 64 * MiB,
        WriteBack = true,
        MaxDirtyBytes = 128 * MiB,
        MaxValueBytes = (int)MiB,
        WriteBufferBytes = 512 * KiB,
        SegmentPreallocateBytes = 128 * MiB,
    };

    [Fact]
    public void One_partition_gets_the_whole_budgets()
    {
        var p = FromOptions(Budgets).PerPartition(1);
        Assert.Equal(1, p.BudgetShare);
        Assert.Equal(6400, p.CacheMaxEntries);
        Assert.Equal(64 * MiB, p.CacheMaxBytes);
        Assert.Equal(128 * MiB, p.MaxDirtyBytes);
        Assert.Equal((int)(512 * KiB), p.WriteBufferBytes);
        Assert.Equal(128 * MiB, p.SegmentPreallocateBytes);
        Assert.Equal(64 * MiB, p.ToLogSettings().PreallocateBytes); // at most the segment
    }

    [Fact]
    public void Two_partitions_split_the_budgets_in_halves()
    {
        var p = FromOptions(Budgets).PerPartition(2);
        Assert.Equal(2, p.BudgetShare);
        Assert.Equal(3200, p.CacheMaxEntries);
        Assert.Equal(32 * MiB, p.CacheMaxBytes);
        Assert.Equal(64 * MiB, p.MaxDirtyBytes);
        Assert.Equal((int)(256 * KiB), p.WriteBufferBytes);
        Assert.Equal(64 * MiB, p.SegmentPreallocateBytes);
        Assert.Equal(64 * MiB, p.ToLogSettings().PreallocateBytes);
        Assert.Equal(64 * MiB, p.ToLogSettings().PreallocateLimitBytes);
    }

    [Fact]
    public void Sixty_four_partitions_get_a_sixty_fourth_with_floors()
    {
        var p = FromOptions(Budgets).PerPartition(64);
        Assert.Equal(64, p.BudgetShare);
        Assert.Equal(100, p.CacheMaxEntries);
        Assert.Equal(1 * MiB, p.CacheMaxBytes);
        Assert.Equal(2 * MiB, p.MaxDirtyBytes);
        Assert.Equal((int)(64 * KiB), p.WriteBufferBytes); // 8 KiB share, raised to the 64 KiB floor
        Assert.Equal(2 * MiB, p.SegmentPreallocateBytes);
        Assert.Equal(2 * MiB, p.ToLogSettings().PreallocateBytes); // the step...
        Assert.Equal(64 * MiB, p.ToLogSettings().PreallocateLimitBytes); // ... up to the segment
        // Everything else is the node's.
        var node = FromOptions(Budgets);
        Assert.Equal(node with
        {
            CacheMaxEntries = p.CacheMaxEntries, CacheMaxBytes = p.CacheMaxBytes, MaxDirtyBytes = p.MaxDirtyBytes,
            WriteBufferBytes = p.WriteBufferBytes, SegmentPreallocateBytes = p.SegmentPreallocateBytes, BudgetShare = 64,
        }, p);
    }

    [Fact]
    public void Reference_budgets_for_64_partitions()
    {
        var p = CrabKvSettings.Create(CrabKvSettings.DefaultConfig()).PerPartition(64);
        Assert.Equal(312, p.CacheMaxEntries);
        Assert.Equal(2 * MiB, p.CacheMaxBytes);
        // The share (2 MiB) is raised to one largest write: 16 MiB value + 2 x 4 KiB key + 64.
        Assert.Equal(16 * MiB + 8 * KiB + 64, p.MaxDirtyBytes);
        Assert.Equal((int)(64 * KiB), p.WriteBufferBytes);
        Assert.Equal(2 * MiB, p.ToLogSettings().PreallocateBytes);
    }

    [Fact]
    public void On_a_small_disk_the_preallocation_budget_is_at_most_a_quarter_of_the_free_space()
    {
        // Found on a 40 MiB disk: 64 partitions x 2 MiB filled it before the first write, and
        // partitions could not even write their LOCK files.
        var node = CrabKvSettings.Create(CrabKvSettings.DefaultConfig());
        var fitted = node.FitPreallocation(40 * MiB, out var note);
        Assert.Equal(10 * MiB, fitted.SegmentPreallocateBytes);
        Assert.Contains("lowered from 128 MiB to 10 MiB, a quarter of the 40 MiB free", note);
        Assert.Equal(0, fitted.PerPartition(64).SegmentPreallocateBytes); // 160 KiB a partition: below one step, none
        Assert.Equal(5 * MiB, fitted.PerPartition(2).SegmentPreallocateBytes);
        Assert.Equal(node with { SegmentPreallocateBytes = 10 * MiB }, fitted); // nothing else changes

        // Enough room: unchanged, no note; nothing below zero.
        Assert.Same(node, node.FitPreallocation(512 * MiB, out var none));
        Assert.Null(none);
        Assert.Equal(0, node.FitPreallocation(-1, out _).SegmentPreallocateBytes);
        // Free space of an existing directory, or of its nearest existing parent.
        Assert.True(CrabKvSettings.FreeBytesAt(Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString("N"), "not-yet")) > 0);
    }

    [Fact]
    public void Floors_and_rounding()
    {
        var tiny = FromOptions(new CrabKvOptions
        {
            CacheMaxEntries = 10, CacheMaxBytes = 1000, MaxDirtyBytes = 8 * KiB, MaxValueBytes = 100, MaxKeyBytes = 100,
            WriteBufferBytes = 16 * KiB, SegmentPreallocateBytes = 10 * MiB,
        });
        var p = tiny.PerPartition(64);
        Assert.Equal(1, p.CacheMaxEntries); // at least one entry while the cache is on
        Assert.Equal(15, p.CacheMaxBytes);
        Assert.Equal(8 * KiB, p.MaxDirtyBytes); // the 64 KiB floor never passes the budget
        Assert.Equal((int)(16 * KiB), p.WriteBufferBytes); // nor does the buffer floor
        Assert.Equal(0, p.SegmentPreallocateBytes); // 160 KiB share < 256 KiB zero-fill step: off
        Assert.False(p.ToLogSettings().Preallocate);
        Assert.Equal(0, p.ToLogSettings().PreallocateBytes);

        var rounded = tiny.PerPartition(3); // 10 MiB / 3 = 3.33 MiB -> 3.25 MiB (13 x 256 KiB)
        Assert.Equal(13 * SegmentWriter.ZeroFillStep, rounded.SegmentPreallocateBytes);

        // A 16 KiB share is raised to the 64 KiB floor (here above one largest write).
        var dirtyFloor = FromOptions(new CrabKvOptions { MaxDirtyBytes = 1 * MiB, MaxValueBytes = 1000, MaxKeyBytes = 100 }).PerPartition(64);
        Assert.Equal(64 * KiB, dirtyFloor.MaxDirtyBytes);

        var off = FromOptions(new CrabKvOptions { CacheMaxEntries = 0, SegmentPreallocateBytes = 0 }).PerPartition(2);
        Assert.Equal(0, off.CacheMaxEntries);
        Assert.Equal(0, off.ToLogSettings().PreallocateBytes);

        Assert.Throws<InvalidOperationException>(() => p.PerPartition(2)); // never divided twice
        Assert.Throws<ArgumentOutOfRangeException>(() => tiny.PerPartition(0));
    }

    [Fact]
    public void Each_of_64_partitions_runs_with_its_share_and_preallocates_only_it()
    {
        var store = StartStore("""
            crabkv.partitions = 64
            crabkv.sync-interval = 0
            crabkv.ttl-sweep-interval = 0
            crabkv.cache.max-entries = 6400
            crabkv.cache.max-bytes = 64 MiB
            crabkv.write-back.enabled = on
            crabkv.write-back.max-dirty-bytes = 128 MiB
            crabkv.limits.max-value-bytes = 1 MiB
            crabkv.segment.write-buffer = 512 KiB
            crabkv.segment.preallocate = 128 MiB
            """);
        // Every partition open (64 opens, each with fsyncs: on a shared disk this has taken 14 s).
        store.Tell(new GetStats(), TestActor);
        Assert.Equal(64, ExpectMsg<StoreStats>(TimeSpan.FromSeconds(90)).Partitions.Count);
        for (var i = 0; i < 64; i++)
        {
            var limits = Request<PartitionLimits>(PartitionRef(store, i), new GetPartitionLimits());
            Assert.Equal(new PartitionLimits(100, 1 * MiB, 2 * MiB, (int)(64 * KiB), 2 * MiB, 64), limits);
        }
        // Every partition's active segment reserves one 2 MiB step on disk, not the 64 MiB segment.
        var segments = Directory.GetFiles(Dir.Path, "*.data", SearchOption.AllDirectories);
        Assert.Equal(64, segments.Length);
        if (OperatingSystem.IsLinux())
        {
            var allocated = AllocatedKiB(Dir.Path) * KiB;
            Assert.InRange(allocated, 64 * 2 * MiB, 64 * 2 * MiB + 4 * MiB);
        }
    }

    [Fact]
    public void A_two_partition_store_gives_each_half()
    {
        var store = StartStore("crabkv.partitions = 2\ncrabkv.ttl-sweep-interval = 0\n");
        var limits = Request<PartitionLimits>(PartitionRef(store, 1), new GetPartitionLimits());
        Assert.Equal(new PartitionLimits(10_000, 64 * MiB, null, (int)(256 * KiB), 64 * MiB, 2), limits);
    }

    /// <summary>Disk blocks allocated under <paramref name="path"/> (du -sk), not the apparent size.</summary>
    internal static long AllocatedKiB(string path)
    {
        using var du = Process.Start(new ProcessStartInfo("du", ["-sk", path]) { RedirectStandardOutput = true })!;
        var output = du.StandardOutput.ReadToEnd();
        du.WaitForExit();
        return long.Parse(output.Split('\t', ' ')[0], System.Globalization.CultureInfo.InvariantCulture);
    }
}
