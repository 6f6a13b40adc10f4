using Akka.Actor;
using CrabKv.Actors.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace CrabKv.Actors.Tests;

/// <summary>
/// The INFO-like stats of a real store: per-partition sizes, recovery mode and node; one
/// <see cref="NodeStats"/> per node with version, uptime, memory and the effective configuration;
/// the rows <see cref="StoreStats.Summary"/> gives the CLI.
/// </summary>
public sealed class StatsTests(ITestOutputHelper output) : StoreTestBase(output)
{
    private readonly ITestOutputHelper _output = output;

    private string NodeAddress => ((ExtendedActorSystem)Sys).Provider.DefaultAddress.ToString();

    private void PutAll(IActorRef store, int count, string prefix = "k", int valueBytes = 100)
    {
        var random = new Random(count);
        for (var i = 0; i < count; i++)
        {
            var value = new byte[valueBytes]; // random: compression (on by default) leaves it its size
            random.NextBytes(value);
            Request<PutOk>(store, new Put($"{prefix}{i}", value, null, i));
        }
    }

    [Fact]
    public void Stats_after_puts_report_keys_bytes_node_and_one_node_entry()
    {
        var store = StartStore("crabkv.partitions = 2");
        PutAll(store, 20);
        PutAll(store, 5); // overwrites: their first versions are stale now
        Assert.True(Request<GetResult>(store, new Get("k3")).Found);

        var stats = Stats(store);
        Assert.Equal([0, 1], stats.Partitions.Select(p => p.Partition));
        Assert.Equal(20, stats.Keys);
        Assert.All(stats.Partitions, p =>
        {
            Assert.Equal(NodeAddress, p.Node);
            Assert.Equal(RecoveryMode.None, p.RecoveryMode); // a new directory: nothing to load
            Assert.Equal(p.TotalBytes - p.StaleBytes, p.LiveBytes);
        });
        Assert.True(stats.TotalBytes > 25 * 100, $"only {stats.TotalBytes} bytes on disk for 25 puts of 100 bytes");
        Assert.True(stats.StaleBytes >= 5 * 100, $"only {stats.StaleBytes} stale bytes after 5 overwrites of 100 bytes");
        Assert.Equal(1, stats.Partitions.Sum(p => p.Gets));
        if (OperatingSystem.IsLinux()) // k3 was read in place through the segment's mapping: no LRU copy (MappedReadTests covers the cache's stats)
        {
            Assert.Equal(0, stats.Partitions.Sum(p => p.CacheEntries));
            Assert.Equal(0, stats.Partitions.Sum(p => p.CacheBytes));
        }

        var node = Assert.Single(stats.Nodes);
        Assert.Equal(NodeAddress, node.Node);
        Assert.False(string.IsNullOrWhiteSpace(node.Version));
        Assert.InRange(node.Uptime, TimeSpan.FromTicks(1), TimeSpan.FromHours(1));
        Assert.Equal(Environment.ProcessId, node.ProcessId);
        Assert.True(node.WorkingSetBytes > 0);
        Assert.True(node.GcHeapBytes > 0);
        var config = node.Configuration.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal("2", config["partitions"]);
        Assert.Equal("0", config["sync-interval"]);
        Assert.Equal("off", config["write-back.enabled"]);
        Assert.Equal("on", config["compression.enabled"]);
        Assert.Equal((20000 / 2).ToString(), config["cache.max-entries-per-partition"]);
        Assert.Equal((64L << 20).ToString(), config["segment.max-bytes"]);
    }

    [Fact]
    public void Summary_rows_cover_the_store_each_node_and_each_partition()
    {
        var store = StartStore("crabkv.partitions = 2\ncrabkv.sync-interval = 250ms\ncrabkv.write-back.enabled = on");
        PutAll(store, 10);
        Request<FlushOk>(store, new Flush(1));
        var stats = Stats(store);
        var rows = stats.Summary();
        string Value(string section, string name) =>
            Assert.Single(rows, r => r.Section == section && r.Name == name).Value;

        Assert.Equal("10", Value(StoreStats.StoreSection, "keys"));
        Assert.Equal("1", Value(StoreStats.StoreSection, "nodes"));
        Assert.Equal("2", Value(StoreStats.StoreSection, "partitions"));
        Assert.Equal(stats.TotalBytes.ToString(), Value(StoreStats.StoreSection, "total-bytes"));
        var node = StoreStats.NodeSection(NodeAddress);
        Assert.Equal("0,1", Value(node, "partitions"));
        Assert.Equal("250ms", Value(node, "config.sync-interval"));
        Assert.Equal("on", Value(node, "config.write-back.enabled"));
        Assert.False(string.IsNullOrEmpty(Value(node, "version")));
        Assert.Equal("none", Value(StoreStats.PartitionSection(1), "recovery-mode"));
        Assert.Equal(NodeAddress, Value(StoreStats.PartitionSection(1), "node"));
        Assert.Equal("ok", Value(StoreStats.PartitionSection(0), "state"));

        var text = stats.ToInfoText();
        _output.WriteLine(text);
        Assert.StartsWith("# store\n", text);
        Assert.Contains($"\n# {node}\n", text);
        Assert.Contains("\n# partition 1\n", text);
    }

    [Fact]
    public void Recovery_mode_is_hints_after_a_compaction_mixed_with_newer_writes_and_scan_without_hints()
    {
        var store = StartStore();
        PutAll(store, 30);
        Assert.True(Request<CompactOk>(store, new Compact(1)).SegmentsMerged >= 1); // seals the active segment; the merge output gets a hint
        GracefulStop(store);

        store = StartStore();
        var fromHints = Stats0(store);
        Assert.Equal(30, fromHints.Keys);
        Assert.Equal(RecoveryMode.Hints, fromHints.RecoveryMode);
        Assert.True(fromHints.SegmentsFromHints >= 1);
        Assert.Equal(0, fromHints.SegmentsScanned);
        Assert.True(fromHints.RecoveryDuration > TimeSpan.Zero);
        PutAll(store, 10, prefix: "newer"); // the active segment: no hint file
        GracefulStop(store);

        store = StartStore();
        var mixed = Stats0(store);
        Assert.Equal(40, mixed.Keys);
        Assert.Equal(RecoveryMode.Mixed, mixed.RecoveryMode);
        Assert.Equal(fromHints.SegmentsFromHints, mixed.SegmentsFromHints);
        Assert.Equal(1, mixed.SegmentsScanned);
        GracefulStop(store);

        var hints = Directory.GetFiles(Storage.DataDirectory.PartitionDirectory(Dir.Path, 0), "*.hint");
        Assert.NotEmpty(hints);
        foreach (var hint in hints)
        {
            File.Delete(hint);
        }
        store = StartStore();
        var fromScan = Stats0(store);
        Assert.Equal(40, fromScan.Keys);
        Assert.Equal(RecoveryMode.Scan, fromScan.RecoveryMode);
        Assert.Equal(0, fromScan.SegmentsFromHints);
        Assert.Equal(mixed.SegmentsFromHints + mixed.SegmentsScanned, fromScan.SegmentsScanned);
        Assert.Equal(mixed.TotalBytes, fromScan.TotalBytes);
        Assert.Equal("scan", Assert.Single(Stats(store).Summary(), r => r.Section == StoreStats.PartitionSection(0) && r.Name == "recovery-mode").Value);
    }

    [Fact]
    public void Merge_keeps_one_entry_per_node_and_orders_partitions()
    {
        var a1 = new NodeStats { Node = "akka.tcp://s@127.0.0.1:2", Uptime = TimeSpan.FromSeconds(5) };
        var a2 = a1 with { Uptime = TimeSpan.FromSeconds(6) };
        var b = new NodeStats { Node = "akka.tcp://s@127.0.0.1:1", Uptime = TimeSpan.FromSeconds(1) };
        var merged = StoreStats.Merge(
        [
            new StoreStats([new PartitionStats { Partition = 2, Node = a1.Node }], [a1], 1),
            new StoreStats([new PartitionStats { Partition = 0, Node = b.Node }], [b], 2),
            new StoreStats([new PartitionStats { Partition = 1, Node = a2.Node }], [a2], 3),
        ], 9);
        Assert.Equal(9, merged.RequestId);
        Assert.Equal([0, 1, 2], merged.Partitions.Select(p => p.Partition));
        Assert.Equal([b, a2], merged.Nodes);
        Assert.Equal([1, 2], merged.PartitionsByNode()[a1.Node].Select(p => p.Partition));
    }
}
