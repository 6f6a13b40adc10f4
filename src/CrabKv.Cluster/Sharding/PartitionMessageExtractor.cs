using System.Globalization;
using Akka.Cluster.Sharding;
using CrabKv.Actors;

namespace CrabKv.Cluster.Sharding;

/// <summary>
/// Internal. Shard id = entity id = partition number (invariant decimal), by the public
/// <see cref="KeyPartitioner"/> contract over the cluster's partition count, so a key lands
/// on the same partition as on a single node with that count. Not
/// <c>HashCodeMessageExtractor</c>, which hashes entity ids its own way.
/// </summary>
/// <remarks>
/// Keyed requests go to their key's partition, a <see cref="PartitionEnvelope"/> to its
/// partition (the entity gets the bare message); the region itself routes
/// <c>ShardRegion.StartEntity</c> by <see cref="ShardId(string, object?)"/> (shard id = entity id).
/// A batch goes to the partition of its keys; one whose keys span partitions (or that has no
/// usable key) goes to partition 0, which refuses it with the precise error — the endpoint
/// refuses such batches before they reach the region, this only covers raw sends to the region.
/// </remarks>
internal sealed class PartitionMessageExtractor : IMessageExtractor
{
    private readonly string[] _ids;

    public PartitionMessageExtractor(int partitions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        _ids = Enumerable.Range(0, partitions).Select(p => p.ToString(CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>The partition count.</summary>
    public int Partitions => _ids.Length;

    /// <summary>The entity (= shard) id of <paramref name="partition"/>.</summary>
    public string IdOf(int partition) => _ids[partition];

    /// <summary>The partition of an entity id, or -1 when it names none.</summary>
    public int PartitionOf(string? entityId) =>
        int.TryParse(entityId, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p < _ids.Length && _ids[p] == entityId ? p : -1;

    public string? EntityId(object message) => message switch
    {
        IKeyedRequest k => _ids[KeyPartitioner.PartitionOf(k.Key, _ids.Length)],
        PartitionEnvelope e => e.Partition >= 0 && e.Partition < _ids.Length ? _ids[e.Partition] : null,
        PutBatch b => _ids[BatchPartition(b)],
        _ => null,
    };

    public object? EntityMessage(object message) => message is PartitionEnvelope e ? e.Message : message;

    [Obsolete("Use ShardId(string, object?) instead.")]
    public string? ShardId(object message) => EntityId(message);

    public string ShardId(string entityId, object? messageHint = null) => entityId;

    private int BatchPartition(PutBatch b) =>
        b.Entries is { Count: > 0 } entries && entries.All(e => e is not null && !string.IsNullOrEmpty(e.Key))
        && KeyPartitioner.TryPartitionOfBatch(entries.Select(e => e.Key), _ids.Length, out var p)
            ? p
            : 0;
}
