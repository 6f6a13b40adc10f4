using Akka.Actor;
using CrabKv.Actors.Partition;
using CrabKv.Actors.Tests.Support;
using CrabKv.Storage.Files;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// Regressions for defects found by review: concurrent merges, compaction and stop on
/// failure paths, and children that die. Every request still gets exactly one reply, a stop
/// always completes, and a deleted key never comes back.
/// </summary>
public sealed class FailurePathTests : StoreTestBase
{
    private const string EagerAutoCompaction =
        "crabkv.compaction.auto = on\ncrabkv.compaction.stale-ratio = 0.1\ncrabkv.compaction.min-total-bytes = 0\n" +
        "crabkv.compression.enabled = off\ncrabkv.ttl-sweep-interval = 0\n";

    [Fact]
    public void Deleted_key_stays_deleted_when_Compact_races_an_automatic_merge()
    {
        // The roll of a Compact seals a segment whose stale bytes also start an automatic
        // merge: both merges used to run, and the tombstone of "k" was dropped by one while
        // the other's output still held the old "k".
        var store = StartStore(EagerAutoCompaction);
        Request<PutOk>(store, new Put("k", Bytes("v")));
        for (var i = 0; i < 10; i++)
        {
            Request<PutOk>(store, new Put("j", Bytes(new string('x', 200) + i)));
        }
        GracefulStop(store);

        store = StartStore(EagerAutoCompaction);
        Assert.True(Request<DeleteOk>(store, new Delete("k")).Existed);
        Request<CompactOk>(store, new Compact());
        Assert.False(Request<GetResult>(store, new Get("k")).Found);
        GracefulStop(store);

        store = StartStore(EagerAutoCompaction);
        Assert.False(Request<GetResult>(store, new Get("k")).Found);
        Assert.Equal(Bytes(new string('x', 200) + 9), Request<GetResult>(store, new Get("j")).Value);
        Request<CompactOk>(store, new Compact());
        GracefulStop(store);

        store = StartStore(EagerAutoCompaction);
        Assert.False(Request<GetResult>(store, new Get("k")).Found);
        GracefulStop(store);
    }

    [Fact]
    public void Compact_is_answered_when_the_write_before_its_roll_fails_and_stop_completes()
    {
        using var disk = new FaultyFileLayer(FileLayer.Default);
        var store = StartStore("crabkv.compaction.auto = off", disk);
        Request<PutOk>(store, new Put("a", Bytes("1")));
        var partition = PartitionRef(store);
        disk.FailEvery(FileOps.Write, WalSegment);
        partition.Tell(new Put("b", Bytes("2"), RequestId: 1), TestActor);
        partition.Tell(new Compact(RequestId: 2), TestActor);
        var replies = new[] { ExpectMsg<CrabKvError>(Timeout), ExpectMsg<CrabKvError>(Timeout) };
        Assert.All(replies, r => Assert.Equal(CrabKvErrorCode.StoreFailed, r.Code));
        Assert.Equal([1L, 2L], replies.Select(r => r.RequestId).Order());
        Assert.Equal(Bytes("1"), Request<GetResult>(store, new Get("a")).Value); // reads still served
        GracefulStop(store);
    }

    [Fact]
    public void Compact_arriving_after_the_stop_began_is_answered_ShuttingDown()
    {
        var store = StartStore("crabkv.compaction.auto = off");
        Request<PutOk>(store, new Put("a", Bytes("1")));
        var partition = PartitionRef(store);
        Watch(partition);
        partition.Tell(StopPartition.Instance, TestActor);
        partition.Tell(new Compact(RequestId: 9), TestActor);
        var error = ExpectMsg<CrabKvError>(Timeout);
        Assert.Equal(CrabKvErrorCode.ShuttingDown, error.Code);
        Assert.Equal(9, error.RequestId);
        ExpectMsg<PartitionStopped>(Timeout);
        ExpectTerminated(partition, Timeout);
    }

    [Fact]
    public async Task Writer_that_dies_fails_the_partition_cleanly_and_stop_still_completes()
    {
        var store = StartStore("crabkv.compaction.auto = off");
        Request<PutOk>(store, new Put("x", Bytes("0")));
        var partition = PartitionRef(store);
        var writer = await Sys.ActorSelection(partition.Path / "wal").ResolveOne(Timeout);
        var failed = SubscribeProbe<PartitionFailed>();
        Sys.Stop(writer);
        failed.ExpectMsg<PartitionFailed>(Timeout);

        Assert.Equal(CrabKvErrorCode.StoreFailed, ExpectError(store, new Put("a", Bytes("1")), CrabKvErrorCode.StoreFailed).Code);
        ExpectError(store, new Compact(), CrabKvErrorCode.StoreFailed);
        Assert.Equal(Bytes("0"), Request<GetResult>(store, new Get("x")).Value);
        Assert.True(Stats0(store).ReadOnly);
        GracefulStop(store);

        store = StartStore("crabkv.compaction.auto = off"); // the lock was released
        Assert.Equal(Bytes("0"), Request<GetResult>(store, new Get("x")).Value);
        GracefulStop(store);
    }

    [Theory]
    [InlineData("writer")]
    [InlineData("compactor")]
    public async Task CompactAndShutdown_stops_the_store_even_when_the_compaction_is_impossible(string child)
    {
        // The store waits for every partition to stop after a CompactAndShutdown: a partition
        // that cannot compact (read-only after its writer died, or without a compactor) answers
        // with an error and still stops.
        var store = StartStore("crabkv.compaction.auto = off");
        Request<PutOk>(store, new Put("x", Bytes("0")));
        var partition = PartitionRef(store);
        var victim = await Sys.ActorSelection(partition.Path / (child == "writer" ? "wal" : "compactor")).ResolveOne(Timeout);
        Watch(victim);
        Sys.Stop(victim);
        ExpectTerminated(victim, Timeout);
        AwaitAssert(() => ExpectError(store, new Compact(), CrabKvErrorCode.StoreFailed), Timeout); // the partition knows

        Watch(store);
        store.Tell(new CompactAndShutdown(RequestId: 7), TestActor);
        var error = ExpectMsg<CrabKvError>(Timeout);
        Assert.Equal(7, error.RequestId);
        Assert.Equal(CrabKvErrorCode.StoreFailed, error.Code);
        ExpectTerminated(store, Timeout);
    }

    [Fact]
    public async Task Compactor_that_dies_stops_compaction_only()
    {
        var store = StartStore("crabkv.compaction.auto = off");
        Request<PutOk>(store, new Put("before", Bytes("0"))); // the partition (and its children) exist
        var partition = PartitionRef(store);
        var compactor = await Sys.ActorSelection(partition.Path / "compactor").ResolveOne(Timeout);
        Watch(compactor);
        Sys.Stop(compactor);
        ExpectTerminated(compactor, Timeout);

        // The partition learns of it through Terminated; from then on Compact is refused.
        AwaitAssert(() => ExpectError(store, new Compact(), CrabKvErrorCode.StoreFailed), Timeout);
        Request<PutOk>(store, new Put("a", Bytes("1")));
        Assert.Equal(Bytes("1"), Request<GetResult>(store, new Get("a")).Value);
        Assert.False(Stats0(store).ReadOnly);
        GracefulStop(store);
    }

    [Fact]
    public void Stats_and_flush_of_every_partition_are_gathered_once_each()
    {
        var store = StartStore("crabkv.partitions = 3\ncrabkv.compaction.auto = off");
        for (var i = 0; i < 30; i++)
        {
            Request<PutOk>(store, new Put($"k{i}", Bytes("v")));
        }
        Request<FlushOk>(store, new Flush(5));
        var stats = Request<StoreStats>(store, new GetStats(6));
        Assert.Equal([0, 1, 2], stats.Partitions.Select(p => p.Partition));
        Assert.Equal(30, stats.Keys);
        GracefulStop(store);
    }

    [Fact]
    public void Key_with_a_lone_surrogate_is_refused()
    {
        var store = StartStore();
        ExpectError(store, new Put("a\uD800", Bytes("v")), CrabKvErrorCode.InvalidRequest);
        ExpectError(store, new Get("a\uDBFF"), CrabKvErrorCode.InvalidRequest);
        GracefulStop(store);
    }

    [Fact]
    public void Batch_larger_than_a_segment_is_refused_and_writes_nothing()
    {
        var store = StartStore("crabkv.segment.max-bytes = 4096\ncrabkv.compression.enabled = off");
        var entries = Enumerable.Range(0, 10).Select(i => new BatchEntry($"b{i}", new byte[1000])).ToList();
        ExpectError(store, new PutBatch(entries), CrabKvErrorCode.ValueTooLarge);
        Assert.False(Request<GetResult>(store, new Get("b0")).Found);
        GracefulStop(store);
    }

    [Fact]
    public void Compacting_an_idle_store_again_does_not_burn_segment_ids()
    {
        var store = StartStore("crabkv.compaction.auto = off");
        Request<PutOk>(store, new Put("k", Bytes("v")));
        Request<CompactOk>(store, new Compact());
        var files = SegmentFiles().Select(f => f.Name).Where(n => n.EndsWith(".data", StringComparison.Ordinal)).ToList();
        for (var i = 0; i < 3; i++)
        {
            Request<CompactOk>(store, new Compact());
        }
        // No new segment appeared (merged inputs may still be on their way out, deleted asynchronously).
        Assert.Empty(SegmentFiles().Select(f => f.Name).Where(n => n.EndsWith(".data", StringComparison.Ordinal)).Except(files));
        Assert.Equal(Bytes("v"), Request<GetResult>(store, new Get("k")).Value);
        GracefulStop(store);
    }
}
