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
    private volatile LWWDictionary<string, string>? _registry;
    private IActorRef? _watcher;
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
        // The registry is read from a local subscription, not asked per allocation: the
        // coordinator allocates from the answer's allocations, and a slow answer would let
        // every pending shard see the same (empty) allocations and land on one region.
        _watcher?.Tell(PoisonPill.Instance);
        _watcher = system.ActorOf(Props.Create(() => new RegistryWatcher(this)));
    }

    public Task<IActorRef> AllocateShard(IActorRef requester, string shardId, IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations)
    {
        bool moving;
        lock (_rebalancing)
        {
            moving = _rebalancing.Remove(shardId);
        }
        var holderRegion = moving ? null : HolderRegion(shardId, currentShardAllocations);
        return holderRegion is not null
            ? Task.FromResult(holderRegion)
            : _leastShards.AllocateShard(requester, shardId, currentShardAllocations);
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

    private IActorRef? HolderRegion(string shardId, IImmutableDictionary<IActorRef, IImmutableList<string>> current)
    {
        var map = _registry;
        if (map is null || _cluster is null || !int.TryParse(shardId, NumberStyles.None, CultureInfo.InvariantCulture, out var partition))
        {
            return null;
        }
        var holder = HolderRegistry.HolderOf(map, partition);
        var address = holder is null ? null : HolderRegistry.AddressOf(map, holder.Value.NodeId);
        if (address is null || !HolderRegistry.IsReachable(_cluster, address))
        {
            return null;
        }
        var self = _cluster.SelfAddress;
        return current.Keys.FirstOrDefault(r => (r.Path.Address.HasGlobalScope ? r.Path.Address : self).Equals(address));
    }

    /// <summary>Keeps the strategy's copy of the holder registry current (the local replica, by subscription).</summary>
    private sealed class RegistryWatcher : ReceiveActor
    {
        public RegistryWatcher(PartitionAllocationStrategy owner)
        {
            var replicator = DistributedData.Get(Context.System).Replicator;
            replicator.Tell(Dsl.Subscribe(HolderRegistry.Key, Self));
            Receive<Changed>(c => owner._registry = c.Get(HolderRegistry.Key));
        }
    }
}
