using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Actors.Diagnostics;
using CrabKv.Cluster.Tests.Support;
using Xunit;

namespace CrabKv.Cluster.Tests;

/// <summary>
/// The <c>crabkv.partition.moves</c> instrument: a second node joins with rebalancing on, some
/// partitions move to it with their data; both nodes run in this process, so the meter sees the
/// pulls (<c>direction=in</c>) and the deletions of the handed-off copies (<c>direction=out</c>).
/// Runs in the handoff collection (alone, not in parallel with other clusters).
/// </summary>
[Collection(HandoffCollection.Name)]
public sealed class MetricsTests : OwnClusterTest
{
    private CrabKvClusterNode Start(string name, Address? seed) => StartNode(name, ConfigurationFactory.ParseString("""
        akka.cluster.min-nr-of-members = 1
        akka.cluster.sharding.rebalance-interval = 2s
        crabkv.cluster.ensure-partitions-interval = 2s
        crabkv.cluster.handoff-retry-interval = 500ms
        crabkv.cluster.rebalance = on
        """), seed).Node;

    [Fact]
    public async Task Partition_moves_are_counted_in_and_out()
    {
        var moves = new ConcurrentQueue<(string Direction, string Outcome)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == CrabKvMetrics.MeterName && instrument.Name == CrabKvMetrics.PartitionMovesName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string direction = "", outcome = "";
            foreach (var t in tags)
            {
                direction = t.Key == "direction" ? (string)t.Value! : direction;
                outcome = t.Key == "outcome" ? (string)t.Value! : outcome;
            }
            for (var i = 0; i < value; i++)
            {
                moves.Enqueue((direction, outcome));
            }
        });
        listener.Start();

        var nodeA = Start("a", null);
        await nodeA.Ready.WaitAsync(ClusterFixture.Patience);
        await ClusterFixture.WaitUntil(async () =>
            await nodeA.Endpoint.Ask<object>(new GetStats(), TimeSpan.FromSeconds(20)) is StoreStats s && s.Partitions.Count == ClusterFixture.Partitions && !s.Partitions.Any(p => p.Unavailable),
            "every partition answering on the first node");
        for (var p = 0; p < ClusterFixture.Partitions; p++)
        {
            var key = Enumerable.Range(0, 10_000).Select(i => $"m:{i}").First(k => KeyPartitioner.PartitionOf(k, ClusterFixture.Partitions) == p);
            await ClusterFixture.WaitUntil(async () =>
                await nodeA.Endpoint.Ask<object>(new Put(key, Encoding.UTF8.GetBytes("v")), TimeSpan.FromSeconds(10)) is PutOk,
                $"a put into partition {p}");
        }
        Assert.Empty(moves);

        var nodeB = Start("b", Akka.Cluster.Cluster.Get(Systems[0]).SelfAddress);
        var region = await nodeB.Ready.WaitAsync(ClusterFixture.Patience);
        ISet<int> onB = new HashSet<int>();
        await ClusterFixture.WaitUntil(async () =>
        {
            var state = await region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, TimeSpan.FromSeconds(20));
            onB = state.Shards.Select(s => int.Parse(s.ShardId)).ToHashSet();
            return onB.Count >= 1 && onB.All(p => HasSegments("b", p) && !HasSegments("a", p));
        }, "partitions moved to the second node, their old copies deleted");

        int Count(string direction) => moves.Count(m => m == (direction, "completed"));
        await ClusterFixture.WaitUntil(() => Count("in") >= onB.Count && Count("out") >= onB.Count,
            $"a completed move in and out per partition now on the new node ({onB.Count})");
        var snapshot = moves.ToList();
        Assert.All(snapshot, m => Assert.Contains(m.Direction, new[] { "in", "out" }));
    }
}
