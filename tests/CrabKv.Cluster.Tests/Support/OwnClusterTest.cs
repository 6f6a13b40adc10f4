using Akka.Actor;
using Akka.Configuration;
using Xunit;

namespace CrabKv.Cluster.Tests.Support;

/// <summary>
/// Base of the test classes that form their own small clusters (handoff, move metrics): kv nodes
/// on 127.0.0.1 with ports from the OS and data directories under one temporary root, every actor
/// system terminated and the root deleted at the end.
/// </summary>
public abstract class OwnClusterTest : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "crabkv-cluster-tests-" + Guid.NewGuid().ToString("N"));

    /// <summary>Every actor system started by this test, in order.</summary>
    protected List<ActorSystem> Systems { get; } = new();

    /// <summary>The data directory of node <paramref name="node"/> under the test's root.</summary>
    protected string Dir(string node) => Path.Combine(_root, node);

    /// <summary>Whether <paramref name="node"/> has segments of <paramref name="partition"/> on its disk.</summary>
    protected bool HasSegments(string node, int partition)
    {
        var dir = DataDirectory.PartitionDirectory(Dir(node), partition);
        return Directory.Exists(dir) && Directory.EnumerateFiles(dir, "seg-*.data").Any();
    }

    /// <summary>
    /// Starts a kv node on <see cref="Dir"/>(<paramref name="node"/>) with <paramref name="config"/>
    /// over the fixture's node configuration, and joins <paramref name="seed"/> (itself when null).
    /// </summary>
    protected (ActorSystem System, CrabKvClusterNode Node) StartNode(string node, Config config, Address? seed)
    {
        var system = ActorSystem.Create("crabkv-test", config.WithFallback(ClusterFixture.NodeConfig(Dir(node))));
        Systems.Add(system);
        var started = CrabKvCluster.Start(system);
        var cluster = Akka.Cluster.Cluster.Get(system);
        cluster.Join(seed ?? cluster.SelfAddress);
        return (system, started);
    }

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_root);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await Task.WhenAll(Systems.Select(s => s.Terminate())).WaitAsync(TimeSpan.FromSeconds(120));
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // A file still closing; the OS temp cleaner takes it.
        }
    }
}
