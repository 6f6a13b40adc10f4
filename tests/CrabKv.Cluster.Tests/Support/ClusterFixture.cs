using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster;
using Akka.Configuration;
using CrabKv.Actors;
using Xunit;

namespace CrabKv.Cluster.Tests.Support;

/// <summary>
/// Three kv nodes (role crabkv, each with its own data directory) and one client-only node
/// (a shard-region proxy), four ActorSystems in this process on 127.0.0.1 with ports from the
/// OS, all joined to the first node's actual address; the cluster forms when all four have joined
/// (<c>akka.cluster.min-nr-of-members = 4</c>), so the first allocation spreads the partitions
/// evenly over the three kv nodes. Shared by
/// the tests of a class (xunit class fixture); shut down and its directories deleted in Dispose.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    /// <summary>Partitions of the test cluster: few, so that the three nodes start quickly, several per node.</summary>
    public const int Partitions = 12;

    /// <summary>Generous on two shared cores.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "crabkv-cluster-tests-" + Guid.NewGuid().ToString("N"));

    public List<ActorSystem> KvSystems { get; } = new();

    public List<CrabKvClusterNode> KvNodes { get; } = new();

    public ActorSystem ClientSystem { get; private set; } = null!;

    public CrabKvClusterNode ClientNode { get; private set; } = null!;

    public Address SeedAddress { get; private set; } = null!;

    private readonly List<ActorSystem> _extra = new();

    /// <summary>The configuration of a test node; <paramref name="dataDir"/> null for a client-only node.</summary>
    public static Config NodeConfig(string? dataDir, int partitions = Partitions) => ConfigurationFactory.ParseString($$"""
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.cluster.roles = {{(dataDir is null ? "[]" : "[crabkv]")}}
        akka.cluster.min-nr-of-members = 4
        akka.coordinated-shutdown.exit-clr = off
        akka.actor.serializers.json = "CrabKv.Cluster.Tests.Support.RecordingJsonSerializer, CrabKv.Cluster.Tests"
        crabkv.cluster.partitions = {{partitions}}
        crabkv.data-dir = "{{(dataDir ?? "unused").Replace("\\", "\\\\", StringComparison.Ordinal)}}"
        crabkv.limits.max-value-bytes = 64 KiB
        crabkv.segment.max-bytes = 1 MiB
        crabkv.cache.max-bytes = 1 MiB
        crabkv.write-back.max-dirty-bytes = 1 MiB
        crabkv.segment.preallocate = 3 MiB
        crabkv.io-dispatcher-config.dedicated-thread-pool.thread-count = 2
        crabkv.compaction-dispatcher-config.dedicated-thread-pool.thread-count = 1
        {{FileLogger.Hocon}}
        """).WithFallback(CrabKvClusterSettings.FullDefaultConfig());

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Root);
        for (var i = 0; i < 3; i++)
        {
            var system = ActorSystem.Create("crabkv-test", NodeConfig(Path.Combine(Root, $"node-{i}")));
            KvSystems.Add(system);
            KvNodes.Add(CrabKvCluster.Start(system));
        }
        ClientSystem = ActorSystem.Create("crabkv-test", NodeConfig(null));
        ClientNode = CrabKvCluster.Start(ClientSystem);

        SeedAddress = Akka.Cluster.Cluster.Get(KvSystems[0]).SelfAddress;
        foreach (var system in KvSystems.Append(ClientSystem))
        {
            Akka.Cluster.Cluster.Get(system).Join(SeedAddress);
        }
        await Task.WhenAll(KvNodes.Append(ClientNode).Select(n => n.Ready)).WaitAsync(Patience);
        await WaitUntil(() => Akka.Cluster.Cluster.Get(KvSystems[0]).State.Members.Count(m => m.Status == MemberStatus.Up) == 4, "four members Up");
        // Every partition opened somewhere: GetStats fans out to all of them and waits for each.
        await WaitUntil(async () =>
        {
            var stats = await ClientNode.Endpoint.Ask<object>(new GetStats(), TimeSpan.FromSeconds(20));
            return stats is StoreStats s && s.Partitions.Count == Partitions && !s.Partitions.Any(p => p.Unavailable);
        }, "every partition answering GetStats");
    }

    /// <summary>Starts one more node of this test class (shut down with the fixture).</summary>
    public ActorSystem StartExtraNode(Config config)
    {
        var system = ActorSystem.Create("crabkv-test", config);
        _extra.Add(system);
        return system;
    }

    /// <summary>The shard (= partition) ids hosted by each kv node's region.</summary>
    public async Task<IReadOnlyList<ImmutableHashSet<string>>> ShardsPerNodeAsync()
    {
        var result = new List<ImmutableHashSet<string>>();
        foreach (var node in KvNodes)
        {
            var region = await node.Ready;
            var state = await region.Ask<Akka.Cluster.Sharding.CurrentShardRegionState>(Akka.Cluster.Sharding.GetShardRegionState.Instance, TimeSpan.FromSeconds(20));
            result.Add(state.Shards.Select(s => s.ShardId).ToImmutableHashSet());
        }
        return result;
    }

    public static async Task WaitUntil(Func<bool> condition, string what) => await WaitUntil(() => Task.FromResult(condition()), what);

    /// <summary>
    /// A bounded poll, TestKit's AwaitAssert outside a TestKit (the fixture has none): checks
    /// <paramref name="condition"/> every 200 ms until it holds or <see cref="Patience"/> ends.
    /// </summary>
    public static async Task WaitUntil(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        Exception? last = null;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (Exception e)
            {
                last = e;
            }
            await poll.WaitForNextTickAsync();
        }
        throw new TimeoutException($"Waited {Patience} for {what}.", last);
    }

    public async Task DisposeAsync()
    {
        // Cluster shutdown logs a "Disassociated" error: expected, not a failure.
        var all = KvSystems.Append(ClientSystem).Concat(_extra).Where(s => s is not null).ToList();
        await Task.WhenAll(all.Select(s => s.Terminate())).WaitAsync(TimeSpan.FromSeconds(120));
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: the OS cleans its temp directory.
        }
    }
}
