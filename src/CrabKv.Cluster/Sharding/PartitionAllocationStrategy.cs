using System.Collections.Immutable;
using System.Globalization;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.DistributedData;
using CrabKv.Cluster.Handoff;

namespace CrabKv.Cluster.Sharding;

/// <summary>
/// Internal. Allocates a partition to the region of the node that holds its data (the holder
/// registry, read from the coordinator node's local replica) when that node is a reachable member
/// with a region; otherwise to the region with the fewest partitions (Akka's least-shard strategy).
/// Rebalances only when <c>crabkv.cluster.rebalance</c> is on, by least-shard rounds of at most
/// <c>max-simultaneous-moves</c> partitions, one round at a time (the strategy starts no round while
/// one is in progress). A partition picked for rebalancing is allocated by least-shard, not to its
/// holder (which it is leaving); its new owner pulls the data before serving (PartitionEntity).
/// </summary>
internal sealed class PartitionAllocationStrategy : IActorSystemDependentAllocationStrategy
{
    private static readonly Task<IImmutableSet<string>> NoRebalance = Task.FromResult<IImmutableSet<string>>(ImmutableHashSet<string>.Empty);

    private readonly IShardAllocationStrategy _leastShards;
    private readonly bool _rebalance;
    private readonly HashSet<string> _rebalancing = new(StringComparer.Ordinal);
    private IActorRef? _replicator;
    private Akka.Cluster.Cluster? _cluster;

    public PartitionAllocationStrategy(bool rebalance, int maxSimultaneousMoves = 2)
    {
        // relativeLimit 1.0: only the absolute limit bounds a round.
        _leastShards = ShardAllocationStrategy.LeastShardAllocationStrategy(Math.Max(1, maxSimultaneousMoves), 1.0);
        _rebalance = rebalance;
    }

    public void Start(ActorSystem system)
    {
        if (_leastShards is IActorSystemDependentAllocationStrategy s)
        {
            s.Start(system);
        }
        _cluster = Akka.Cluster.Cluster.Get(system);
        _replicator = DistributedData.Get(system).Replicator;
    }

    public async Task<IActorRef> AllocateShard(IActorRef requester, string shardId, IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations)
    {
        bool moving;
        lock (_rebalancing)
        {
            moving = _rebalancing.Remove(shardId);
        }
        if (!moving)
        {
            var holderRegion = await HolderRegionAsync(shardId, currentShardAllocations).ConfigureAwait(false);
            if (holderRegion is not null)
            {
                return holderRegion;
            }
        }
        return await _leastShards.AllocateShard(requester, shardId, currentShardAllocations).ConfigureAwait(false);
    }

    public async Task<IImmutableSet<string>> Rebalance(IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations, IImmutableSet<string> rebalanceInProgress)
    {
        if (!_rebalance)
        {
            return await NoRebalance.ConfigureAwait(false);
        }
        var picked = await _leastShards.Rebalance(currentShardAllocations, rebalanceInProgress).ConfigureAwait(false);
        lock (_rebalancing)
        {
            _rebalancing.UnionWith(picked);
        }
        return picked;
    }

    private async Task<IActorRef?> HolderRegionAsync(string shardId, IImmutableDictionary<IActorRef, IImmutableList<string>> current)
    {
        if (_replicator is null || _cluster is null || !int.TryParse(shardId, NumberStyles.None, CultureInfo.InvariantCulture, out var partition))
        {
            return null;
        }
        try
        {
            var response = await _replicator.Ask<IGetResponse>(Dsl.Get(HolderRegistry.Key, ReadLocal.Instance), TimeSpan.FromSeconds(3)).ConfigureAwait(false);
            var map = response is GetSuccess s ? s.Get(HolderRegistry.Key) : null;
            var holder = HolderRegistry.HolderOf(map, partition);
            var address = holder is null ? null : HolderRegistry.AddressOf(map, holder.Value.NodeId);
            if (address is null || !HolderRegistry.IsReachable(_cluster, address))
            {
                return null;
            }
            var self = _cluster.SelfAddress;
            return current.Keys.FirstOrDefault(r => (r.Path.Address.HasGlobalScope ? r.Path.Address : self).Equals(address));
        }
        catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
        {
            return null;
        }
    }
}
