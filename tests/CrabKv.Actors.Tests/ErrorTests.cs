using Akka.Actor;
using CrabKv.Actors.Client;
using CrabKv.Actors.Internal;
using CrabKv.Actors.Partition;
using CrabKv.Actors.Tests.Support;
using CrabKv.Storage;
using CrabKv.Storage.Caches;
using CrabKv.Storage.Files;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>Every error reply, and that bad input changes nothing.</summary>
public sealed class ErrorTests : StoreTestBase
{
    private const string Base = "crabkv.sync-interval = 0\ncrabkv.ttl-sweep-interval = 0\n";

    /// <summary>A request type the store does not know, but which carries a RequestId.</summary>
    private sealed record Bogus(long RequestId) : ICrabKvRequest;

    [Fact]
    public async Task Empty_key_is_refused_on_every_keyed_request()
    {
        var store = StartStore(Base);
        ExpectError(store, new Put("", Bytes("v"), RequestId: 1), CrabKvErrorCode.EmptyKey);
        ExpectError(store, new Get("", RequestId: 2), CrabKvErrorCode.EmptyKey);
        ExpectError(store, new Delete("", RequestId: 3), CrabKvErrorCode.EmptyKey);
        var batch = ExpectError(store, new PutBatch([new BatchEntry("ok", Bytes("v")), new BatchEntry("", Bytes("v"))], RequestId: 4), CrabKvErrorCode.EmptyKey);
        Assert.Equal(4, batch.RequestId);

        var client = await Connect(store);
        var e = await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("", "v"));
        Assert.Equal(CrabKvErrorCode.EmptyKey, e.Code);
        Assert.Equal(CrabKvErrorCode.EmptyKey, (await Assert.ThrowsAsync<CrabKvRequestException>(() => client.GetAsync(""))).Code);

        Assert.Null(await client.GetStringAsync("ok")); // the batch wrote nothing
        Assert.Equal(0, Stats0(store).Keys);
    }

    [Fact]
    public async Task Key_too_large_counts_utf8_bytes()
    {
        var store = StartStore(Base + "crabkv.limits.max-key-bytes = 16\n");
        var client = await Connect(store);
        await client.PutAsync(new string('k', 16), "at the limit");
        var error = ExpectError(store, new Put(new string('k', 17), Bytes("v"), RequestId: 7), CrabKvErrorCode.KeyTooLarge);
        Assert.Equal(7, error.RequestId);
        Assert.Contains("max-key-bytes", error.Message);
        // 9 characters, 18 bytes of UTF-8.
        ExpectError(store, new Put(new string('é', 9), Bytes("v")), CrabKvErrorCode.KeyTooLarge);
        ExpectError(store, new Get(new string('k', 17)), CrabKvErrorCode.KeyTooLarge);
        ExpectError(store, new Delete(new string('k', 17)), CrabKvErrorCode.KeyTooLarge);
        ExpectError(store, new PutBatch([new BatchEntry("a", Bytes("1")), new BatchEntry(new string('k', 17), Bytes("2"))]), CrabKvErrorCode.KeyTooLarge);

        var e = await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync(new string('x', 100), "v"));
        Assert.Equal(CrabKvErrorCode.KeyTooLarge, e.Code);
        Assert.Null(await client.GetStringAsync("a"));
        Assert.Equal(1, Stats0(store).Keys);
    }

    [Fact]
    public async Task Value_too_large_is_refused_and_writes_nothing()
    {
        var store = StartStore(Base + "crabkv.limits.max-value-bytes = 1024\n");
        var client = await Connect(store);
        await client.PutAsync("fits", new byte[1024]);
        var error = ExpectError(store, new Put("big", new byte[1025], RequestId: 3), CrabKvErrorCode.ValueTooLarge);
        Assert.Contains("max-value-bytes", error.Message);
        ExpectError(store, new PutBatch([new BatchEntry("a", Bytes("1")), new BatchEntry("b", new byte[2000])]), CrabKvErrorCode.ValueTooLarge);

        var e = await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("big", new byte[4096]));
        Assert.Equal(CrabKvErrorCode.ValueTooLarge, e.Code);
        Assert.Null(await client.GetAsync("big"));
        Assert.Null(await client.GetAsync("a"));
        Assert.Equal(1024, (await client.GetAsync("fits"))!.Length);
    }

    [Fact]
    public async Task Bad_ttl_null_value_and_empty_batch_are_invalid_requests()
    {
        var store = StartStore(Base);
        ExpectError(store, new Put("k", Bytes("v"), TimeSpan.FromSeconds(-1), RequestId: 1), CrabKvErrorCode.InvalidRequest);
        ExpectError(store, new Put("k", Bytes("v"), TimeSpan.Zero), CrabKvErrorCode.InvalidRequest);
        ExpectError(store, new Put("k", null!), CrabKvErrorCode.InvalidRequest);
        ExpectError(store, new PutBatch([]), CrabKvErrorCode.InvalidRequest);
        ExpectError(store, new PutBatch([new BatchEntry("a", Bytes("1")), new BatchEntry("k", Bytes("v"), TimeSpan.FromMilliseconds(-5))]), CrabKvErrorCode.InvalidRequest);

        var client = await Connect(store);
        var e = await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("k", "v", ttl: TimeSpan.FromMilliseconds(-1)));
        Assert.Equal(CrabKvErrorCode.InvalidRequest, e.Code);
        Assert.Null(await client.GetAsync("k"));
        Assert.Null(await client.GetAsync("a"));
        Assert.Equal(0, Stats0(store).Puts);
    }

    [Fact]
    public async Task Batch_across_partitions_is_refused_and_writes_nothing()
    {
        var store = StartStore(Base + "crabkv.partitions = 2\n");
        var a = "key-0";
        var b = Enumerable.Range(1, 100).Select(i => $"key-{i}").First(k => KeyPartitioner.PartitionOf(k, 2) != KeyPartitioner.PartitionOf(a, 2));
        var error = ExpectError(store, new PutBatch([new BatchEntry(a, Bytes("1")), new BatchEntry(b, Bytes("2"))], RequestId: 5), CrabKvErrorCode.InvalidRequest);
        Assert.Equal(5, error.RequestId);
        Assert.Contains("partition", error.Message);

        var client = await Connect(store);
        Assert.Equal(2, client.Partitions);
        var e = await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutBatchAsync([new BatchEntry(a, Bytes("1")), BatchEntry.Delete(b)]));
        Assert.Equal(CrabKvErrorCode.InvalidRequest, e.Code);
        Assert.Null(await client.GetAsync(a));
        Assert.Null(await client.GetAsync(b));
        Assert.Equal(0, Stats(store).Keys);

        // Keys of one partition are fine.
        var c = Enumerable.Range(101, 100).Select(i => $"key-{i}").First(k => client.PartitionOf(k) == client.PartitionOf(a));
        Assert.Equal(2, await client.PutBatchAsync([new BatchEntry(a, Bytes("1")), new BatchEntry(c, Bytes("3"))]));
        Assert.Equal("3", await client.GetStringAsync(c));
    }

    [Fact]
    public void Unknown_messages_get_an_UnknownMessage_reply()
    {
        var store = StartStore(Base);
        var error = ExpectError(store, "hello", CrabKvErrorCode.UnknownMessage);
        Assert.Equal(0, error.RequestId);
        Assert.Contains("String", error.Message);
        Assert.Equal(9, ExpectError(store, new Bogus(9), CrabKvErrorCode.UnknownMessage).RequestId);
        // Sent to a partition directly too.
        var partition = PartitionRef(store);
        Assert.Equal(11, ExpectError(partition, new Bogus(11), CrabKvErrorCode.UnknownMessage).RequestId);
        Request<PutOk>(store, new Put("still", Bytes("works")));
    }

    [Fact]
    public async Task Requests_after_shutdown_time_out_because_the_store_is_gone()
    {
        // Documented behaviour: once ShutdownOk is sent the store actor stops; later requests
        // go to dead letters and get no reply at all, so the client reports a TimeoutException.
        // (ShuttingDown is the answer while the stop is under way: see the next test.)
        var store = StartStore(Base);
        var client = await Connect(store);
        await client.PutAsync("a", "1");
        GracefulStop(store);

        store.Tell(new Get("a", RequestId: 1), TestActor);
        ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        var shortClient = new CrabKvClient(store, TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAsync<TimeoutException>(() => shortClient.GetAsync("a"));
        await Assert.ThrowsAsync<TimeoutException>(() => client.GetAsync("a", timeout: TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public void Requests_during_a_partition_stop_get_ShuttingDown()
    {
        using var disk = new FaultyFileLayer(FileLayer.Default);
        var store = StartStore(Base, disk);
        Request<PutOk>(store, new Put("a", Bytes("1")));
        var partition = PartitionRef(store);
        Watch(partition);

        // Park the writer on a write so the partition cannot finish stopping yet.
        disk.HoldNext(FileOps.Write, WalSegment);
        partition.Tell(new Put("in-flight", Bytes("2"), RequestId: 1), TestActor);
        disk.WaitUntilHeld();
        partition.Tell(StopPartition.Instance, TestActor);
        partition.Tell(new Put("late", Bytes("3"), RequestId: 2), TestActor);
        partition.Tell(new Delete("a", RequestId: 3), TestActor);
        partition.Tell(new PutBatch([new BatchEntry("late2", Bytes("4"))], RequestId: 4), TestActor);
        partition.Tell(new Get("a", RequestId: 5), TestActor);
        Assert.Equal(CrabKvErrorCode.ShuttingDown, ExpectMsg<CrabKvError>(e => e.RequestId == 2, Timeout).Code);
        Assert.Equal(CrabKvErrorCode.ShuttingDown, ExpectMsg<CrabKvError>(e => e.RequestId == 3, Timeout).Code);
        Assert.Equal(CrabKvErrorCode.ShuttingDown, ExpectMsg<CrabKvError>(e => e.RequestId == 4, Timeout).Code);
        Assert.Equal("1", Text(ExpectMsg<GetResult>(g => g.RequestId == 5, Timeout).Value)); // reads are still served

        disk.Release();
        ExpectMsg<PutOk>(p => p.RequestId == 1, Timeout); // accepted before the stop: written and acknowledged
        ExpectMsg<PartitionStopped>(Timeout);
        ExpectTerminated(partition, Timeout);

        // The store knows the partition is gone once it has seen its Terminated.
        AwaitAssert(() => Assert.Empty(Stats(store).Partitions), Timeout, TimeSpan.FromMilliseconds(20));
        ExpectError(store, new Put("b", Bytes("2")), CrabKvErrorCode.ShuttingDown);
        ExpectError(store, new Get("a"), CrabKvErrorCode.ShuttingDown);
        ExpectError(store, new Flush(), CrabKvErrorCode.ShuttingDown);
        ExpectError(store, new Compact(), CrabKvErrorCode.ShuttingDown);
    }

    [Fact]
    public async Task Reads_accepted_before_a_graceful_shutdown_are_all_answered()
    {
        // Large values and no LRU make each read in the CacheActor slower than its forwarding
        // by the partition, so reads queue up in the cache when Shutdown arrives.
        const int keys = 60, reads = 2000;
        var store = StartStore("crabkv.cache.max-entries = 0\ncrabkv.compression.enabled = off\ncrabkv.sync-interval = 100ms\n");
        var client = await Connect(store);
        await Task.WhenAll(Enumerable.Range(0, keys).Select(i => client.PutAsync($"k{i}", new byte[100_000])));
        for (var i = 0; i < reads; i++)
        {
            store.Tell(new Get($"k{i % keys}", i), TestActor);
        }
        Watch(store);
        store.Tell(new Shutdown(-1), TestActor);
        var answered = 0;
        var shutdownOk = false;
        for (var i = 0; i < reads + 2; i++) // bounded: every Get, ShutdownOk, Terminated
        {
            var m = ReceiveOne(TimeSpan.FromSeconds(3));
            if (m is null or Terminated)
            {
                break;
            }
            answered += m is GetResult ? 1 : 0;
            shutdownOk |= m is ShutdownOk;
        }
        Assert.True(shutdownOk);
        Assert.Equal(reads, answered); // observed: a few hundred to ~1200 of 2000
    }

    public static TheoryData<string, FileOps> FailureModes => new()
    {
        { "crabkv.sync-interval = 0\n", FileOps.Sync },
        { "crabkv.sync-interval = 0\n", FileOps.Write },
        // The group commit's one-call durable write (pwritev2 RWF_DSYNC): "before" was synced
        // by write + fdatasync, which made the zero-filled region ahead durable, so the failing
        // put's round is a durable write and nothing else.
        { "crabkv.sync-interval = 0\n", FileOps.DurableWrite },
        { "crabkv.sync-interval = 100ms\n", FileOps.Write },
    };

    [Theory]
    [MemberData(nameof(FailureModes))]
    public async Task Io_failure_turns_the_partition_read_only(string mode, FileOps op)
    {
        var failed = SubscribeProbe<PartitionFailed>();
        using var disk = new FaultyFileLayer(FileLayer.Default);
        var store = StartStore(mode + "crabkv.ttl-sweep-interval = 0\n", disk);
        var client = await Connect(store);
        await client.PutAsync("before", "safe");

        disk.FailEvery(op, WalSegment);
        var first = await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("failing", "x"));
        Assert.Equal(CrabKvErrorCode.StoreFailed, first.Code);
        Assert.Contains("Injected", first.Message);
        var evt = failed.ExpectMsg<PartitionFailed>(Timeout);
        Assert.Equal(0, evt.Partition);
        Assert.Contains("Injected", evt.Reason);

        // Later writes fail even though the fault is gone: the partition stays read-only until reopened.
        disk.Heal();
        ExpectError(store, new Put("later", Bytes("y"), RequestId: 2), CrabKvErrorCode.StoreFailed);
        ExpectError(store, new Delete("before"), CrabKvErrorCode.StoreFailed);
        ExpectError(store, new PutBatch([new BatchEntry("b1", Bytes("1"))]), CrabKvErrorCode.StoreFailed);
        ExpectError(store, new Flush(), CrabKvErrorCode.StoreFailed);
        ExpectError(store, new Compact(), CrabKvErrorCode.StoreFailed);
        Assert.Equal(CrabKvErrorCode.StoreFailed, (await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("later2", "z"))).Code);

        // Reads are still served: acknowledged data, and nothing of the failed writes.
        Assert.Equal("safe", await client.GetStringAsync("before"));
        Assert.Null(await client.GetStringAsync("failing"));
        Assert.Null(await client.GetStringAsync("later"));
        var stats = Stats0(store);
        Assert.True(stats.ReadOnly);
        Assert.Contains("Injected", stats.FailureReason);
        failed.ExpectNoMsg(TimeSpan.FromMilliseconds(100)); // published once

        // A graceful stop still works, and reopening the directory (fault gone) serves writes again.
        GracefulStop(store);
        var reopened = await Connect(StartStore(mode));
        Assert.Equal("safe", await reopened.GetStringAsync("before"));
        await reopened.PutAsync("after", "ok");
        Assert.Equal("ok", await reopened.GetStringAsync("after"));
    }

    [Fact]
    public async Task Io_failure_of_a_write_back_flush_turns_the_partition_read_only()
    {
        var failed = SubscribeProbe<PartitionFailed>();
        using var disk = new FaultyFileLayer(FileLayer.Default);
        var store = StartStore("crabkv.write-back.enabled = on\ncrabkv.write-back.flush-interval = 1h\ncrabkv.write-back.max-dirty-bytes = 4096\ncrabkv.sync-interval = 0\n", disk);
        var client = await Connect(store);
        await client.PutAsync("a", "1");
        await client.FlushAsync();

        // The size trigger (half of max-dirty-bytes) starts a flush whose fsync fails: two puts
        // of 1,072 bytes each (WriteBackBuffer.CostOf) pass 2,048. A third put would race the
        // failure (refused once the partition is read-only), so there is none.
        disk.FailEvery(FileOps.Sync, WalSegment);
        for (var i = 0; i < 2; i++)
        {
            await client.PutAsync($"big{i}", new byte[1000]);
        }
        Assert.True(2 * WriteBackBuffer.CostOf("big0", new byte[1000]) >= 4096 / 2);
        Assert.Contains("Injected", failed.ExpectMsg<PartitionFailed>(Timeout).Reason);

        Assert.Equal(CrabKvErrorCode.StoreFailed, (await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("c", "3"))).Code);
        Assert.Equal(CrabKvErrorCode.StoreFailed, (await Assert.ThrowsAsync<CrabKvRequestException>(() => client.FlushAsync())).Code);
        Assert.Equal("1", await client.GetStringAsync("a"));
        Assert.Null(await client.GetStringAsync("c"));
        Assert.True(Stats0(store).ReadOnly);
    }

    public static TheoryData<string, FileOps> FlushFailureModes => new()
    {
        { "crabkv.write-back.enabled = on\ncrabkv.write-back.flush-interval = 1h\ncrabkv.sync-interval = 0\n", FileOps.Sync },
        { "crabkv.write-back.enabled = on\ncrabkv.write-back.flush-interval = 1h\ncrabkv.sync-interval = 0\n", FileOps.Write },
        { "crabkv.sync-interval = 1h\n", FileOps.Sync },
    };

    [Theory]
    [MemberData(nameof(FlushFailureModes))]
    public async Task Flush_that_fails_is_answered_with_StoreFailed(string mode, FileOps op)
    {
        var failed = SubscribeProbe<PartitionFailed>();
        using var disk = new FaultyFileLayer(FileLayer.Default);
        var store = StartStore(mode, disk);
        var client = await Connect(store);
        await client.PutAsync("a", "1"); // buffered (write-back) or written but not yet fsynced (1h interval)
        disk.FailEvery(op, WalSegment);
        // Observed: TimeoutException after 3 s instead of the error reply.
        var e = await Assert.ThrowsAsync<CrabKvRequestException>(() => client.FlushAsync(timeout: TimeSpan.FromSeconds(3)));
        Assert.Equal(CrabKvErrorCode.StoreFailed, e.Code);
        failed.ExpectMsg<PartitionFailed>(Timeout);
        Assert.True(Stats0(store).ReadOnly);
    }

    [Fact]
    public void Reopening_with_another_partition_count_is_refused()
    {
        var store = StartStore(Base + "crabkv.partitions = 1\n");
        GracefulStop(store);
        var e = Assert.Throws<CrabKvConfigurationException>(() => CrabKvStore.Start(Sys, Settings(Base + "crabkv.partitions = 2\n"), "crabkv-other"));
        Assert.Equal("partitions", e.Key);
        Assert.Contains("crabkv.partitions = 1", e.Message);
        // The marker is untouched: the original count still opens.
        Assert.Equal("1", File.ReadAllText(Path.Combine(Dir.Path, CrabKvStore.PartitionsFileName)).Trim());
        Request<PutOk>(StartStore(Base), new Put("k", Bytes("v")));
    }

    [Fact]
    public async Task A_directory_locked_by_a_running_store_is_refused_as_a_whole_naming_the_holder()
    {
        var first = StartStore(Base);
        var client = await Connect(first);
        await client.PutAsync("k", "v");

        // Same directory, another actor name: refused before any partition actor exists.
        // Observed before: the second store started, and its partitions failed one by one.
        var e = Assert.Throws<StoreLockedException>(() => StartStore(Base));
        Assert.Contains($"pid {Environment.ProcessId} on {Environment.MachineName} since ", e.Message);
        Assert.Equal(Dir.Path, e.Directory);

        // The running store is unaffected; once it stops, the directory opens again.
        Assert.Equal("v", await client.GetStringAsync("k"));
        await client.PutAsync("k2", "v2");
        GracefulStop(first);
        var again = await Connect(StartStore(Base));
        Assert.Equal("v2", await again.GetStringAsync("k2"));
    }
}
