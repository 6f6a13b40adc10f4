using Akka.Actor;
using CrabKv.Actors.Diagnostics;
using CrabKv.Actors.Partition;
using CrabKv.Actors.Tests.Support;
using CrabKv.Storage.Files;
using CrabKv.Storage.Tests.TestSupport;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// The <c>CrabKv</c> meter, seen by a <see cref="System.Diagnostics.Metrics.MeterListener"/>
/// and by the OpenTelemetry SDK while a real store runs. The meter is process-wide, so these
/// tests run alone (<see cref="MetricsCollection"/>) and can assert exact counts.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class MetricsTests : StoreTestBase
{
    private const string FsyncPerAck = """
        crabkv.sync-interval = 0
        crabkv.ttl-sweep-interval = 0
        """;

    private const string WriteBack = """
        crabkv.write-back.enabled = on
        crabkv.write-back.flush-interval = 1h
        crabkv.sync-interval = 100ms
        crabkv.ttl-sweep-interval = 0
        """;

    private static (string, string) Kind(string kind) => ("kind", kind);

    [Fact]
    public async Task Operations_errors_fsyncs_and_group_commits_are_recorded()
    {
        using var metrics = new MetricRecorder();
        var store = StartStore(FsyncPerAck);
        var client = await Connect(store);

        for (var i = 0; i < 20; i++)
        {
            await client.PutAsync($"k{i}", $"v{i}");
        }
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal($"v{i}", await client.GetStringAsync($"k{i}"));
        }
        Assert.True(await client.DeleteAsync("k0"));
        Assert.Equal(5, await client.PutBatchAsync([.. Enumerable.Range(0, 5).Select(i => new BatchEntry($"b{i}", Bytes("x")))]));
        // 100 puts sent at once: they may share fsyncs (group commit).
        for (var i = 0; i < 100; i++)
        {
            store.Tell(new Put($"g{i}", Bytes("v"), RequestId: i), TestActor);
        }
        for (var i = 0; i < 100; i++)
        {
            ExpectMsg<PutOk>(Timeout);
        }
        ExpectError(store, new Put("", Bytes("v")), CrabKvErrorCode.EmptyKey);
        ExpectError(store, new Delete(""), CrabKvErrorCode.EmptyKey);
        ExpectError(store, new Get(new string('k', 100_000)), CrabKvErrorCode.KeyTooLarge);

        Assert.Equal(121, metrics.Sum(CrabKvMetrics.OperationsName, Kind("put")));
        Assert.Equal(11, metrics.Sum(CrabKvMetrics.OperationsName, Kind("get")));
        Assert.Equal(2, metrics.Sum(CrabKvMetrics.OperationsName, Kind("delete")));
        Assert.Equal(1, metrics.Sum(CrabKvMetrics.OperationsName, Kind("batch")));
        Assert.Equal(1, metrics.Sum(CrabKvMetrics.ErrorsName, Kind("put"), ("code", "EmptyKey")));
        Assert.Equal(1, metrics.Sum(CrabKvMetrics.ErrorsName, Kind("delete"), ("code", "EmptyKey")));
        Assert.Equal(1, metrics.Sum(CrabKvMetrics.ErrorsName, Kind("get"), ("code", "KeyTooLarge")));
        Assert.Equal(3, metrics.Sum(CrabKvMetrics.ErrorsName));

        // fsync per ack: every acknowledged record was made durable by exactly one timed fsync.
        var groups = metrics.Values(CrabKvMetrics.FsyncRecordsName);
        Assert.Equal(20 + 1 + 5 + 100, groups.Sum());
        Assert.All(groups, g => Assert.InRange(g, 1, 100));
        var fsyncs = metrics.Sum(CrabKvMetrics.FsyncsName);
        var durations = metrics.Values(CrabKvMetrics.FsyncDurationName);
        Assert.Equal(groups.Count, durations.Count);
        Assert.Equal(fsyncs, durations.Count);
        Assert.InRange(fsyncs, 20 + 1 + 1 + 1, 20 + 1 + 1 + 100); // the 22 awaited writes had one each, the 100 at least one
        Assert.All(durations, d => Assert.InRange(d, 0, 60));
        AwaitAssert(() => Assert.Equal(Stats0(store).Fsyncs, (long)fsyncs), Timeout); // the partition learns the count after the replies

        GracefulStop(store);
        Assert.Equal(0, metrics.Sum(CrabKvMetrics.FsyncRecordsName) - groups.Sum()); // nothing left to make durable at the stop
    }

    [Fact]
    public void Failed_writes_and_refusals_while_stopping_are_counted_by_kind_and_code()
    {
        using var metrics = new MetricRecorder();
        using var disk = new FaultyFileLayer(FileLayer.Default);
        var store = StartStore(FsyncPerAck, disk);
        Request<PutOk>(store, new Put("a", Bytes("1")));
        disk.FailEvery(FileOps.Write, WalSegment);

        ExpectError(store, new Put("b", Bytes("2")), CrabKvErrorCode.StoreFailed);  // answered by the WAL writer
        ExpectError(store, new Delete("a"), CrabKvErrorCode.StoreFailed);           // the writer or the read-only partition
        Assert.Equal(Bytes("1"), Request<GetResult>(store, new Get("a")).Value);     // reads still served

        var partition = PartitionRef(store);
        Watch(partition);
        partition.Tell(StopPartition.Instance, TestActor);
        partition.Tell(new Put("c", Bytes("3"), RequestId: 9), TestActor);
        var refused = ExpectMsg<CrabKvError>(Timeout);
        ExpectMsg<PartitionStopped>(Timeout);
        ExpectTerminated(partition, Timeout);

        Assert.Equal(1, metrics.Sum(CrabKvMetrics.ErrorsName, Kind("delete"), ("code", "StoreFailed")));
        Assert.Equal(1, metrics.Sum(CrabKvMetrics.ErrorsName, Kind("put"), ("code", "StoreFailed")));
        Assert.Equal(CrabKvErrorCode.ShuttingDown, refused.Code);
        Assert.Equal(1, metrics.Sum(CrabKvMetrics.ErrorsName, Kind("put"), ("code", "ShuttingDown")));
        Assert.Equal(3, metrics.Sum(CrabKvMetrics.ErrorsName));
        Assert.Equal(3, metrics.Sum(CrabKvMetrics.OperationsName, Kind("put")));
        Assert.Equal(1, metrics.Sum(CrabKvMetrics.FsyncRecordsName)); // only "a" was made durable
    }

    [Fact]
    public async Task Write_back_dirty_bytes_sum_the_live_partitions_of_every_store_and_stopped_ones_leave_nothing()
    {
        using var metrics = new MetricRecorder();
        var liveBefore = DirtyBytesSource.LiveCount;
        Assert.Equal(0, metrics.DirtyBytes());
        using var otherDir = new TempDataDir();
        var first = StartStore(Settings(WriteBack + "\ncrabkv.partitions = 3"));
        var second = CrabKvStore.Start(Sys, otherDir.Settings(WriteBack + "\ncrabkv.partitions = 2"), "other");
        var a = await Connect(first);
        var b = await Connect(second);
        for (var i = 0; i < 30; i++)
        {
            await a.PutAsync($"a{i}", new string('a', 100 + i));
            await b.PutAsync($"b{i}", new string('b', 50));
        }
        Assert.Equal(liveBefore + 5, DirtyBytesSource.LiveCount);

        var firstDirty = Stats(first).Partitions.Sum(p => p.DirtyBytes);
        var secondDirty = Stats(second).Partitions.Sum(p => p.DirtyBytes);
        Assert.True(firstDirty > 30 * 100 && secondDirty > 30 * 50, $"dirty bytes {firstDirty}, {secondDirty}");
        Assert.Equal(firstDirty + secondDirty, metrics.DirtyBytes());

        await a.FlushAsync();
        Assert.Equal(secondDirty, metrics.DirtyBytes());

        Crash(second); // its dirty entries are lost, and so is their count
        Assert.Equal(0, metrics.DirtyBytes());
        Assert.Equal(liveBefore + 3, DirtyBytesSource.LiveCount);

        await a.PutAsync("again", "x");
        Assert.Equal(Stats(first).Partitions.Sum(p => p.DirtyBytes), metrics.DirtyBytes());
        GracefulStop(first);
        Assert.Equal(0, metrics.DirtyBytes());
        Assert.Equal(liveBefore, DirtyBytesSource.LiveCount);
        Assert.True(metrics.Sum(CrabKvMetrics.FsyncsName) >= 1, "the flush and the graceful stop fsync");
    }

    [Fact]
    public async Task Compaction_bytes_and_duration_match_the_reply()
    {
        using var metrics = new MetricRecorder();
        var store = StartStore("""
            crabkv.segment.max-bytes = 4096
            crabkv.segment.write-buffer = 4096
            crabkv.compaction.auto = off
            crabkv.compression.enabled = off
            crabkv.sync-interval = 100ms
            crabkv.ttl-sweep-interval = 0
            """);
        var client = await Connect(store);
        for (var round = 0; round < 5; round++)
        {
            await Task.WhenAll(Enumerable.Range(0, 30).Select(k => client.PutAsync($"key{k}", new string((char)('a' + round), 200))));
        }

        var ok = await client.CompactAsync();

        Assert.True(ok.BytesBefore > ok.BytesAfter && ok.BytesAfter > 0, $"merged {ok.BytesBefore} -> {ok.BytesAfter} bytes");
        Assert.Equal(ok.BytesBefore, metrics.Sum(CrabKvMetrics.CompactionBytesName, ("stage", "before")));
        Assert.Equal(ok.BytesAfter, metrics.Sum(CrabKvMetrics.CompactionBytesName, ("stage", "after")));
        var duration = Assert.Single(metrics.Values(CrabKvMetrics.CompactionDurationName, ("outcome", "ok")));
        Assert.InRange(duration, 0, ok.Duration.TotalSeconds + 5);
        Assert.Empty(metrics.Values(CrabKvMetrics.CompactionDurationName, ("outcome", "failed")));
        Assert.Equal(1, metrics.Sum(CrabKvMetrics.OperationsName, Kind("compact")));
        Assert.Equal(0, metrics.Sum(CrabKvMetrics.ErrorsName));
    }

    [Fact]
    public async Task The_OpenTelemetry_SDK_exports_the_meter()
    {
        var exported = new List<Metric>();
        using (var provider = Sdk.CreateMeterProviderBuilder()
                   .AddMeter(CrabKvMetrics.MeterName)
                   .AddInMemoryExporter(exported)
                   .Build())
        {
            var store = StartStore(WriteBack);
            var client = await Connect(store);
            for (var i = 0; i < 10; i++)
            {
                await client.PutAsync($"k{i}", "v");
            }
            Assert.Equal("v", await client.GetStringAsync("k1"));
            await client.FlushAsync();
            await client.CompactAsync();
            ExpectError(store, new Put("", Bytes("v")), CrabKvErrorCode.EmptyKey);
            await client.PutAsync("dirty", "x");

            Assert.True(provider.ForceFlush(15_000), "the SDK did not flush");

            var names = exported.Select(m => m.Name).ToHashSet();
            foreach (var name in new[]
                     {
                         CrabKvMetrics.OperationsName, CrabKvMetrics.ErrorsName, CrabKvMetrics.FsyncsName, CrabKvMetrics.FsyncDurationName,
                         CrabKvMetrics.FsyncRecordsName, CrabKvMetrics.DirtyBytesName, CrabKvMetrics.CompactionBytesName, CrabKvMetrics.CompactionDurationName,
                     })
            {
                Assert.Contains(name, names);
            }
            Assert.Equal(10 + 1 + 1, SumOf(exported, CrabKvMetrics.OperationsName, ("kind", "put")));
            Assert.Equal(1, SumOf(exported, CrabKvMetrics.ErrorsName, ("code", "EmptyKey")));
            Assert.Equal(Stats0(store).DirtyBytes, SumOf(exported, CrabKvMetrics.DirtyBytesName));
            var fsyncDuration = exported.Last(m => m.Name == CrabKvMetrics.FsyncDurationName);
            Assert.Equal("s", fsyncDuration.Unit);
            Assert.Equal(MetricType.Histogram, fsyncDuration.MetricType);
            GracefulStop(store);
        }
    }

    /// <summary>The last exported value of a sum metric (cumulative), over points with these tags.</summary>
    private static long SumOf(List<Metric> exported, string name, params (string Key, string Value)[] tags)
    {
        var metric = exported.Last(m => m.Name == name);
        long sum = 0;
        foreach (ref readonly var point in metric.GetMetricPoints())
        {
            var pointTags = new List<KeyValuePair<string, object?>>();
            foreach (var tag in point.Tags)
            {
                pointTags.Add(tag);
            }
            if (tags.All(t => pointTags.Any(p => p.Key == t.Key && Equals(p.Value, t.Value))))
            {
                sum += point.GetSumLong();
            }
        }
        return sum;
    }
}
