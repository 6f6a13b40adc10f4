using Akka.Actor;
using CrabKv.Actors.Client;
using CrabKv.Actors.Tests.Support;
using CrabKv.Storage;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// The store on its data directory (one lock for the whole directory, the recorded partition
/// count) and the client on any endpoint (no partition refs in the protocol).
/// </summary>
public sealed class DataDirectoryWiringTests : StoreTestBase
{
    private const string Base = "crabkv.sync-interval = 0\ncrabkv.ttl-sweep-interval = 0\n";

    /// <summary>
    /// Stands in for a shard region or proxy: forwards the public protocol to the store and
    /// ignores anything else, never answering it (as a region without an extractor would).
    /// </summary>
    private sealed class ProtocolForwarder : ReceiveActor
    {
        public ProtocolForwarder(IActorRef store)
        {
            Receive<IKeyedRequest>(m => store.Forward(m));
            Receive<PutBatch>(m => store.Forward(m));
            Receive<Flush>(m => store.Forward(m));
            Receive<Compact>(m => store.Forward(m));
            Receive<GetStats>(m => store.Forward(m));
        }
    }

    [Fact]
    public async Task A_client_on_a_forwarding_endpoint_works_like_one_on_the_store()
    {
        var store = StartStore(Base + "crabkv.partitions = 3\n");
        var endpoint = Sys.ActorOf(Props.Create(() => new ProtocolForwarder(store)), "region");
        var client = await CrabKvClient.ConnectAsync(endpoint, Timeout);
        Assert.Equal(0, client.Partitions); // everything goes through the endpoint

        await client.PutAsync("k", "v");
        Assert.Equal("v", await client.GetStringAsync("k"));
        Assert.True(await client.DeleteAsync("k"));
        Assert.False(await client.DeleteAsync("k"));
        Assert.Null(await client.GetAsync("k"));

        var keys = Enumerable.Range(0, 200).Select(i => $"key-{i}").Where(k => KeyPartitioner.PartitionOf(k, 3) == 1).Take(5).ToList();
        Assert.Equal(5, await client.PutBatchAsync(keys.Select(k => new BatchEntry(k, Bytes(k))).ToList()));
        foreach (var k in keys)
        {
            Assert.Equal(k, await client.GetStringAsync(k));
        }
        var cross = Enumerable.Range(0, 200).Select(i => $"key-{i}").First(k => KeyPartitioner.PartitionOf(k, 3) != 1);
        var e = await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutBatchAsync([new BatchEntry(keys[0], Bytes("x")), new BatchEntry(cross, Bytes("y"))]));
        Assert.Equal(CrabKvErrorCode.InvalidRequest, e.Code);
        Assert.Equal(KeyPartitioner.CrossPartitionBatchMessage(3), e.Message);

        await client.FlushAsync();
        var stats = await client.GetStatsAsync();
        Assert.Equal(3, stats.Partitions.Count);
        Assert.Equal(5, stats.Keys);
    }

    [Fact]
    public async Task A_client_on_the_local_store_routes_to_its_partitions()
    {
        var store = StartStore(Base + "crabkv.partitions = 3\n");
        var client = await Connect(store);
        Assert.Equal(3, client.Partitions);
        await client.PutAsync("k", "v");
        Assert.Equal("v", await client.GetStringAsync("k"));
        Assert.Same(PartitionRef(store, 2), PartitionRef(store, 2));

        GracefulStop(store);
        Assert.Null(Internal.LocalStores.PartitionsOf(store)); // a stopped store leaves the registry
    }

    [Fact]
    public void Partitions_0_opens_a_directory_with_its_recorded_count()
    {
        var first = StartStore(Base + "crabkv.partitions = 3\n");
        Request<PutOk>(first, new Put("k", Bytes("v")));
        GracefulStop(first);

        // "One per core" is 2 here, or whatever another machine has: the directory says 3.
        var settings = Settings(Base + "crabkv.partitions = 0\n");
        Assert.Equal(0, settings.ConfiguredPartitions);
        var store = CrabKvStore.Start(Sys, settings, "crabkv-zero", out var resolved);
        Assert.Equal(3, resolved.Partitions);
        Assert.Equal(0, resolved.ConfiguredPartitions);
        Assert.Equal(3, Stats(store).Partitions.Count);
        Assert.Equal("v", Text(Request<GetResult>(store, new Get("k")).Value));
    }

    [Fact]
    public void An_explicit_count_is_explicit_even_when_set_in_code()
    {
        var settings = Settings(Base + "crabkv.partitions = 0\n") with { Partitions = 2 };
        Assert.Equal(2, settings.ConfiguredPartitions);
        GracefulStop(CrabKvStore.Start(Sys, settings, "crabkv-two"));
        var e = Assert.Throws<CrabKvConfigurationException>(() => CrabKvStore.Start(Sys, settings with { Partitions = 3 }, "crabkv-three"));
        Assert.Equal("partitions", e.Key);
        Assert.Contains("is 3", e.Message);
        Assert.Contains("created with 2 partitions", e.Message);
    }

    [Fact]
    public void A_damaged_PARTITIONS_file_is_rebuilt_at_start()
    {
        GracefulStop(StartStore(Base + "crabkv.partitions = 2\n"));
        File.WriteAllText(Path.Combine(Dir.Path, DataDirectory.PartitionsFileName), ""); // as after a power cut before the fix
        var store = StartStore(Base + "crabkv.partitions = 2\n");
        Assert.Equal(2, Stats(store).Partitions.Count);
        Assert.Equal("2", File.ReadAllText(Path.Combine(Dir.Path, DataDirectory.PartitionsFileName)).Trim());
    }

    [Fact]
    public void A_start_that_fails_releases_the_data_directory()
    {
        var probe = CreateTestProbe();
        Sys.ActorOf(Props.Create(() => new ProtocolForwarder(probe.Ref)), "taken");
        Assert.Throws<InvalidActorNameException>(() => CrabKvStore.Start(Sys, Settings(Base), "taken"));
        Request<PutOk>(StartStore(Base), new Put("k", Bytes("v")));
    }

    [Fact]
    public void The_whole_directory_is_locked_while_the_store_runs_and_released_when_it_stops()
    {
        var store = StartStore(Base);
        var e = Assert.Throws<StoreLockedException>(() => DataDirectory.Open(Dir.Path, 0, 1));
        Assert.StartsWith($"pid {Environment.ProcessId} on ", e.Holder);
        Crash(store); // even without the graceful path
        DataDirectory.Open(Dir.Path, 0, 1).Dispose();
    }
}
