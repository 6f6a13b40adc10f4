// The messages CrabKv.Cluster adds to the wire: the partition envelope that addresses one
// partition through the shard region (store-wide requests are fanned out with it), and the
// partition-count check a node runs before it serves. The public protocol itself is
// CrabKv.Actors' (CrabKvProtocol.cs), unchanged.

namespace CrabKv.Cluster;

/// <summary>Marker of every CrabKv.Cluster message that may cross the network; bound to <c>CrabKvClusterSerializer</c> (4243).</summary>
public interface ICrabKvClusterMessage;

/// <summary>
/// Internal. Delivers <paramref name="Message"/> to partition <paramref name="Partition"/> through
/// the shard region: the message extractor takes the shard and entity id from
/// <paramref name="Partition"/> and hands the entity the bare message. Used for the store-wide
/// requests, which address every partition in turn; keyed requests need no envelope.
/// </summary>
internal sealed record PartitionEnvelope(int Partition, object Message) : ICrabKvClusterMessage;

/// <summary>Internal. Asks a node's partition-count check for the cluster's partition count; carries the asker's, for the log.</summary>
internal sealed record PartitionCountQuery(int Partitions) : ICrabKvClusterMessage;

/// <summary>Internal. The answer to <see cref="PartitionCountQuery"/>: the answering node's <c>crabkv.cluster.partitions</c>.</summary>
internal sealed record PartitionCountReply(int Partitions) : ICrabKvClusterMessage;

/// <summary>
/// Internal. New holder → old holder's handoff agent: partition <paramref name="Partition"/> is
/// now held by node <paramref name="NewHolder"/> at <paramref name="Epoch"/> (already written
/// with WriteMajority); delete the local copy unless the registry says this node holds it again.
/// </summary>
internal sealed record DeletePartitionCopy(int Partition, string NewHolder, long Epoch) : ICrabKvClusterMessage;

/// <summary>
/// Internal. A leaving node's drain → a remaining node's endpoint: start partition
/// <paramref name="Partition"/> through your shard region (<c>ShardRegion.StartEntity</c>), so that
/// it is allocated and pulled now. Answered with <see cref="StartPartitionAnswer"/>.
/// </summary>
internal sealed record StartPartition(int Partition) : ICrabKvClusterMessage;

/// <summary>
/// Internal. The answer to <see cref="StartPartition"/>: false when the answering node is shutting
/// down itself (it starts nothing: a region that is stopping would only buffer the request).
/// </summary>
internal sealed record StartPartitionAnswer(bool Accepted) : ICrabKvClusterMessage;

