using Akka.Actor;
using CrabKv.Actors.Internal;
using CrabKv.Actors.Tests.Support;
using CrabKv.Storage.Files;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// Regressions for defects a new user found in the partition (issue 9): keys accepted by the
/// wrong partition, values aliased between callers, duplicate keys in one batch.
/// </summary>
public sealed class PartitionCoreTests : StoreTestBase
{
    private const string Base = "crabkv.sync-interval = 0\ncrabkv.ttl-sweep-interval = 0\ncrabkv.compaction.auto = off\n";
    private const string WriteBack = Base + "crabkv.write-back.enabled = on\ncrabkv.write-back.flush-interval = 1h\n";

    /// <summary>A key that <see cref="KeyPartitioner"/> puts in <paramref name="partition"/> of <paramref name="count"/>.</summary>
    private static string KeyOf(int partition, int count, string prefix = "k")
    {
        for (var i = 0; ; i++)
        {
            var key = $"{prefix}{i}";
            if (KeyPartitioner.PartitionOf(key, count) == partition)
            {
                return key;
            }
        }
    }

    [Fact]
    public void A_partition_refuses_keys_of_another_partition_and_writes_nothing()
    {
        var store = StartStore(Base + "crabkv.partitions = 4\n");
        var p0 = PartitionRef(store, 0);
        var own = KeyOf(0, 4, "own");
        var foreign = KeyOf(1, 4, "foreign");

        var put = ExpectError(p0, new Put(foreign, Bytes("lost"), RequestId: 1), CrabKvErrorCode.InvalidRequest);
        Assert.Equal(1, put.RequestId);
        Assert.Contains("partition 1", put.Message);
        ExpectError(p0, new PutBatch([new BatchEntry(own, Bytes("1")), new BatchEntry(foreign, Bytes("2"))]), CrabKvErrorCode.InvalidRequest);
        ExpectError(p0, new Delete(foreign), CrabKvErrorCode.InvalidRequest);
        ExpectError(p0, new Get(foreign), CrabKvErrorCode.InvalidRequest);

        // The batch wrote nothing, not even its key of partition 0; the store routes correctly.
        Assert.False(Request<GetResult>(store, new Get(own)).Found);
        Assert.False(Request<GetResult>(store, new Get(foreign)).Found);
        Assert.Equal(0, Stats(store).Keys);
        Request<PutOk>(p0, new Put(own, Bytes("mine")));
        Assert.Equal("mine", Text(Request<GetResult>(store, new Get(own)).Value));
        GracefulStop(store);

        // Nothing of the refused writes shows up after a restart either.
        store = StartStore(Base + "crabkv.partitions = 4\n");
        Assert.False(Request<GetResult>(store, new Get(foreign)).Found);
        Assert.Equal(1, Stats(store).Keys);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_returned_value_is_the_callers_own_on_every_read_path(bool writeBack)
    {
        // Paths: write-back buffer (write-back), read from disk then LRU hits (write-through).
        var store = StartStore(writeBack ? WriteBack : Base);
        Request<PutOk>(store, new Put("k", Bytes("original")));
        for (var read = 0; read < 3; read++)
        {
            var value = Request<GetResult>(store, new Get("k")).Value!;
            Assert.Equal("original", Text(value));
            Array.Fill(value, (byte)'X'); // a caller that edits its array must change nothing for later readers
        }
        Request<FlushOk>(store, new Flush());
        for (var read = 0; read < 3; read++)
        {
            var value = Request<GetResult>(store, new Get("k")).Value!;
            Assert.Equal("original", Text(value));
            Array.Fill(value, (byte)'Y');
        }
    }

    [Fact]
    public void A_value_served_while_its_write_is_in_flight_is_the_callers_own()
    {
        using var disk = new FaultyFileLayer(FileLayer.Default);
        var store = StartStore(Base, disk);
        Request<PutOk>(store, new Put("warm", Bytes("up"))); // the partition is open and its first segment written
        disk.HoldNext(FileOps.Write, WalSegment);
        store.Tell(new Put("k", Bytes("in flight"), RequestId: 1), TestActor);
        disk.WaitUntilHeld();
        // The partition answers from its in-flight map while the writer is parked.
        var first = Request<GetResult>(store, new Get("k", RequestId: 2)).Value!;
        Assert.Equal("in flight", Text(first));
        Array.Fill(first, (byte)'X');
        Assert.Equal("in flight", Text(Request<GetResult>(store, new Get("k", RequestId: 3)).Value));
        disk.Release();
        ExpectMsg<PutOk>(p => p.RequestId == 1, Timeout);
        Assert.Equal("in flight", Text(Request<GetResult>(store, new Get("k")).Value));
    }

    [Fact]
    public async Task The_typed_client_copies_what_it_sends()
    {
        var store = StartStore(Base);
        var client = await Connect(store);
        var value = Bytes("sent");
        await client.PutAsync("k", value);
        Array.Fill(value, (byte)'X');
        var entry = Bytes("batched");
        await client.PutBatchAsync([new BatchEntry("b", entry)]);
        Array.Fill(entry, (byte)'X');
        Assert.Equal("sent", await client.GetStringAsync("k"));
        Assert.Equal("batched", await client.GetStringAsync("b"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Duplicate_keys_in_one_batch_the_last_entry_wins_also_after_restart(bool writeBack)
    {
        var hocon = writeBack ? WriteBack : Base;
        var store = StartStore(hocon);
        Request<PutOk>(store, new Put("gone", Bytes("before")));
        Request<PutBatchOk>(store, new PutBatch(
        [
            new BatchEntry("a", Bytes("1")),
            new BatchEntry("gone", Bytes("again")),
            new BatchEntry("a", Bytes("2")),
            BatchEntry.Delete("gone"),
            new BatchEntry("b", Bytes("x")),
            BatchEntry.Delete("b"),
            new BatchEntry("b", Bytes("y")),
            new BatchEntry("a", Bytes("3")),
        ]));
        void Check(IActorRef s)
        {
            Assert.Equal("3", Text(Request<GetResult>(s, new Get("a")).Value));
            Assert.Equal("y", Text(Request<GetResult>(s, new Get("b")).Value));
            Assert.False(Request<GetResult>(s, new Get("gone")).Found);
        }
        Check(store);
        GracefulStop(store);
        store = StartStore(hocon);
        Check(store);
        Assert.Equal(2, Stats(store).Keys);
    }

    [Fact]
    public void StopPartition_is_public_and_stops_one_partition_gracefully()
    {
        var store = StartStore(WriteBack + "crabkv.partitions = 2\n");
        var key = KeyOf(1, 2);
        Request<PutOk>(store, new Put(key, Bytes("buffered"))); // only in the write-back buffer
        var p1 = PartitionRef(store, 1);
        Watch(p1);
        p1.Tell(StopPartition.Instance, TestActor);
        Assert.Equal(1, ExpectMsg<PartitionStopped>(Timeout).Partition);
        ExpectTerminated(p1, Timeout);
        GracefulStop(store);

        // The stop flushed, fsynced and sealed: the value is on disk.
        store = StartStore(Base + "crabkv.partitions = 2\n");
        Assert.Equal("buffered", Text(Request<GetResult>(store, new Get(key)).Value));
    }
}
