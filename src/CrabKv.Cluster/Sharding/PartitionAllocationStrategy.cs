using System.Collections.Immutable;
using Akka.Actor;
using Akka.Cluster.Sharding;

namespace CrabKv.Cluster.Sharding;

/// <summary>
/// Internal. Allocates a partition to the region with the fewest (Akka's least-shard strategy)
/// and rebalances only when <c>crabkv.cluster.rebalance</c> is on: until partitions move with
/// their data, a rebalanced partition would be opened from an empty directory on its new node.
/// The place where "prefer the node that holds the data" goes.
/// </summary>
internal sealed class PartitionAllocationStrategy : IActorSystemDependentAllocationStrategy
{
    private static readonly Task<IImmutableSet<string>> NoRebalance = Task.FromResult<IImmutableSet<string>>(ImmutableHashSet<string>.Empty);

    private readonly IShardAllocationStrategy _leastShards;
    private readonly bool _rebalance;

    public PartitionAllocationStrategy(bool rebalance, int absoluteLimit = 20, double relativeLimit = 0.1)
    {
        _leastShards = ShardAllocationStrategy.LeastShardAllocationStrategy(absoluteLimit, relativeLimit);
        _rebalance = rebalance;
    }

    public void Start(ActorSystem system)
    {
        if (_leastShards is IActorSystemDependentAllocationStrategy s)
        {
            s.Start(system);
        }
    }

    public Task<IActorRef> AllocateShard(IActorRef requester, string shardId, IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations) =>
        _leastShards.AllocateShard(requester, shardId, currentShardAllocations);

    public Task<IImmutableSet<string>> Rebalance(IImmutableDictionary<IActorRef, IImmutableList<string>> currentShardAllocations, IImmutableSet<string> rebalanceInProgress) =>
        _rebalance ? _leastShards.Rebalance(currentShardAllocations, rebalanceInProgress) : NoRebalance;
}
