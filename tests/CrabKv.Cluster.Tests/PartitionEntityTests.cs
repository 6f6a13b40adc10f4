using Akka.Configuration;
using Akka.DistributedData;
using Akka.TestKit.Xunit2;
using CrabKv.Actors;
using CrabKv.Actors.Transfer;
using CrabKv.Cluster.Handoff;
using CrabKv.Cluster.Sharding;
using CrabKv.Storage.Files;
using Xunit;
using DataGet = Akka.DistributedData.Get;
using Get = CrabKv.Actors.Get;

namespace CrabKv.Cluster.Tests;

/// <summary>
/// One partition entity against a test probe standing in for the DistributedData replicator that
/// holds the holder registry: while it resolves who holds its data, requests wait in its stash up
/// to <c>max-waiting-requests</c>; past the bound they are refused at once with PartitionMoving;
/// once the registry names this node the waiting ones are served, in order. The actor system has
/// the cluster provider but never joins.
/// </summary>
public sealed class PartitionEntityTests : TestKit, IDisposable
{
    private static readonly Config TestConfig = ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.cluster.roles = [crabkv]
        """).WithFallback(CrabKvClusterSettings.FullDefaultConfig());

    private readonly string _root = Path.Combine(Path.GetTempPath(), "crabkv-entity-tests-" + Guid.NewGuid().ToString("N"));

    public PartitionEntityTests() : base(TestConfig)
    {
        Directory.CreateDirectory(_root);
    }

    [Fact]
    public void Requests_wait_while_the_partition_is_resolved_up_to_the_bound_and_past_it_get_PartitionMoving()
    {
        const int partition = 3;
        var cluster = CrabKvClusterSettings.Create(Sys) with { MaxWaitingRequests = 2 };
        var handoff = new HandoffContext("node-x", _root, cluster, TransferSettings.Create(Sys), FileLayer.Default);
        var settings = CrabKvSettings.Create(Sys) with { DataDir = _root, Partitions = cluster.Partitions };
        var directory = DataDirectory.PartitionDirectory(_root, partition);
        Directory.CreateDirectory(directory);
        var keys = Enumerable.Range(0, 10_000).Select(i => $"k{i}").Where(k => KeyPartitioner.PartitionOf(k, cluster.Partitions) == partition).Take(3).ToList();
        var replicator = CreateTestProbe();

        var entity = Sys.ActorOf(PartitionEntity.Props(partition, directory, settings, handoff, replicator.Ref));
        var read = replicator.ExpectMsg<DataGet>();

        // Two requests wait for the registry's answer; the third is over the bound: refused at once.
        entity.Tell(new Get(keys[0], 1), TestActor);
        entity.Tell(new Get(keys[1], 2), TestActor);
        entity.Tell(new Get(keys[2], 3), TestActor);
        var refused = ExpectMsg<CrabKvError>();
        Assert.Equal(CrabKvErrorCode.PartitionMoving, refused.Code);
        Assert.Equal(3, refused.RequestId);
        Assert.Contains("retry", refused.Message);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // the other two still wait

        // No holder anywhere (a new cluster): the entity claims the partition, reads the registry
        // back, finds itself, and serves — the waiting requests are answered in order.
        replicator.Reply(new NotFound(HolderRegistry.Key, read.Request));
        var claim = replicator.ExpectMsg<Update>();
        replicator.Reply(new UpdateSuccess(HolderRegistry.Key, claim.Request));
        var readBack = replicator.ExpectMsg<DataGet>();
        var map = HolderRegistry.SetHolder(LWWDictionary<string, string>.Empty, Akka.Cluster.Cluster.Get(Sys).SelfUniqueAddress, partition, new Holder("node-x", 1));
        replicator.Reply(new GetSuccess(HolderRegistry.Key, readBack.Request, map));
        var first = ExpectMsg<GetResult>(TimeSpan.FromSeconds(30));
        var second = ExpectMsg<GetResult>();
        Assert.Equal([1L, 2L], new[] { first.RequestId, second.RequestId });
        Assert.False(first.Found);

        // Serving now: no bound applies any more.
        entity.Tell(new Put(keys[2], [1, 2, 3], null, 4), TestActor);
        Assert.Equal(4, ExpectMsg<PutOk>(TimeSpan.FromSeconds(30)).RequestId);
    }

    public new void Dispose()
    {
        Shutdown();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
        base.Dispose();
    }
}
