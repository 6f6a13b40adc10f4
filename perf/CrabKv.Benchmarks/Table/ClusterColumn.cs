using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Cluster;

namespace CrabKv.Benchmarks.Table;

/// <summary>
/// "cluster N": a two-node cluster on 127.0.0.1 (both kv nodes in this process, OS-chosen
/// ports, <see cref="Partitions"/> partitions spread over them by sharding), started once per
/// store setting (rows are measured grouped by setting, so three clusters per run); N callers on node A through <see cref="CrabKvClient"/>
/// connected to A's endpoint, so about half of the requests cross the loopback to node B.
/// Bytes on disk are the growth of the record bytes of every partition's segments (the stats)
/// over the row. The nodes log nothing (their stop is abrupt and noisy); a failed request fails
/// its cell.
/// </summary>
internal sealed class ClusterColumn(int callers) : StoreColumn
{
    /// <summary>Cluster partitions (shards) over the two nodes.</summary>
    public const int Partitions = 8;

    /// <inheritdoc />
    public override string Name => $"cluster {callers}";

    /// <inheritdoc />
    protected override bool ReuseAcrossRows => true;

    /// <inheritdoc />
    protected override async Task<IStoreUnderTest> StartAsync(string directory, TableRow row, TableOptions options)
    {
        var a = ActorSystem.Create("crabkv-table", Node(Path.Combine(directory, "a"), row));
        var b = ActorSystem.Create("crabkv-table", Node(Path.Combine(directory, "b"), row));
        var cluster = new TwoNodes(a, b);
        try
        {
            var nodeA = CrabKvCluster.Start(a);
            CrabKvCluster.Start(b);
            var seed = Akka.Cluster.Cluster.Get(a).SelfAddress;
            Akka.Cluster.Cluster.Get(a).Join(seed);
            Akka.Cluster.Cluster.Get(b).Join(seed);
            await nodeA.Ready.WaitAsync(TimeSpan.FromMinutes(2));
            cluster.Client = await CrabKvClient.ConnectAsync(nodeA.Endpoint, TimeSpan.FromSeconds(30));
            await WaitForAllPartitionsAsync(cluster.Client);
            return cluster;
        }
        catch
        {
            await cluster.StopAsync();
            throw;
        }
    }

    /// <inheritdoc />
    protected override Task<Measured> DriveAsync(IStoreUnderTest store, TableRow row, RowOps ops, long first, long maxOps, TimeSpan maxTime,
        IProgress<double>? progress, CancellationToken cancellationToken, Task? stopWhen) =>
        CallerLoops.RunAsync(callers, first, maxOps, maxTime, i => ops.Call(store.Client, i), progress, cancellationToken, stopWhen);

    private static Config Node(string dataDir, TableRow row) => ConfigurationFactory.ParseString($"""
        akka.loglevel = OFF
        akka.stdout-loglevel = OFF
        akka.coordinated-shutdown.run-by-actor-system-terminate = off
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.cluster.roles = [crabkv]
        akka.cluster.min-nr-of-members = 2
        akka.coordinated-shutdown.exit-clr = off
        crabkv.data-dir = "{dataDir}"
        crabkv.cluster.partitions = {Partitions}
        {RowHocon(row)}
        """).WithFallback(CrabKvClusterSettings.FullDefaultConfig());

    /// <summary>Every partition answers GetStats (they open lazily as shards are allocated).</summary>
    private static async Task WaitForAllPartitionsAsync(CrabKvClient client)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if ((await client.GetStatsAsync(TimeSpan.FromSeconds(5))).Partitions.Count == Partitions)
                {
                    return;
                }
            }
            catch (Exception e) when (e is TimeoutException or CrabKvRequestException)
            {
                // Still forming: ask again.
            }
        }
        throw new TimeoutException($"The two-node cluster did not open its {Partitions} partitions within 2 minutes.");
    }

    /// <summary>The two nodes of one row.</summary>
    private sealed class TwoNodes(ActorSystem a, ActorSystem b) : IStoreUnderTest
    {
        public CrabKvClient Client { get; set; } = null!;

        public int BatchPartitions => Partitions;

        public async Task<long> DiskBytesAsync()
        {
            await Client.FlushAsync(TimeSpan.FromSeconds(60));
            return (await Client.GetStatsAsync(TimeSpan.FromSeconds(60))).Partitions.Sum(p => p.TotalBytes);
        }

        /// <summary>
        /// Terminates both systems without the graceful leave (no handoff of partitions to a
        /// node that is stopping too: that waits out the leave-drain timeout); returns 0, the
        /// column measures its bytes with <see cref="DiskBytesAsync"/>.
        /// </summary>
        public async Task<long> StopAsync()
        {
            await Task.WhenAll(b.Terminate(), a.Terminate()).WaitAsync(TimeSpan.FromMinutes(2));
            return 0;
        }
    }
}
