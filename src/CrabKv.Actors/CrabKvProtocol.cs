// The public message protocol of a CrabKv store. Every request gets exactly one reply:
// its success message, or a CrabKvError with a code and a readable message. Requests carry
// an optional RequestId that the reply echoes, for callers that Tell instead of Ask.
// Messages are immutable: a byte[] sent in a Put or PutBatch belongs to the store from then
// on (the typed client copies it for you); a byte[] received in a GetResult is the caller's.

using Akka.Actor;
using CrabKv.Storage;

namespace CrabKv.Actors;

/// <summary>Marker of every CrabKv message that may cross the network.</summary>
public interface ICrabKvMessage;

/// <summary>A request to a store; its reply echoes <see cref="RequestId"/>.</summary>
public interface ICrabKvRequest : ICrabKvMessage
{
    /// <summary>Caller's correlation id, echoed in the reply (0 when unused).</summary>
    long RequestId { get; }
}

/// <summary>A request about one key: routed to the partition that owns the key.</summary>
public interface IKeyedRequest : ICrabKvRequest
{
    /// <summary>The key.</summary>
    string Key { get; }
}

/// <summary>A reply from a store.</summary>
public interface ICrabKvReply : ICrabKvMessage
{
    /// <summary>The request's id.</summary>
    long RequestId { get; }
}

// ------------------------------------------------------------------ requests

/// <summary>Writes <paramref name="Value"/> under <paramref name="Key"/>; expires after <paramref name="Ttl"/> when given. Reply: <see cref="PutOk"/>.</summary>
public sealed record Put(string Key, byte[] Value, TimeSpan? Ttl = null, long RequestId = 0) : IKeyedRequest;

/// <summary>Reads a key. Reply: <see cref="GetResult"/>.</summary>
public sealed record Get(string Key, long RequestId = 0) : IKeyedRequest;

/// <summary>Deletes a key. Reply: <see cref="DeleteOk"/>.</summary>
public sealed record Delete(string Key, long RequestId = 0) : IKeyedRequest;

/// <summary>
/// Applies puts and deletes atomically: after any crash all are visible or none. On a node
/// with several partitions all keys of a batch must live in one partition (see
/// <c>CrabKvClient.PartitionOf</c>); otherwise the reply is an error and nothing is written.
/// Entries may repeat a key: the last one wins (as in RocksDB's WriteBatch and Redis's MSET),
/// also after a restart. Reply: <see cref="PutBatchOk"/>.
/// </summary>
public sealed record PutBatch(IReadOnlyList<BatchEntry> Entries, long RequestId = 0) : ICrabKvRequest;

/// <summary>Writes buffered (write-back) entries to the log and makes everything acknowledged so far durable. Reply: <see cref="FlushOk"/>.</summary>
public sealed record Flush(long RequestId = 0) : ICrabKvRequest;

/// <summary>Merges sealed segments now. Reply: <see cref="CompactOk"/> when done.</summary>
public sealed record Compact(long RequestId = 0) : ICrabKvRequest;

/// <summary>Compacts, then stops the store gracefully. Reply: <see cref="CompactOk"/> before the stop.</summary>
public sealed record CompactAndShutdown(long RequestId = 0) : ICrabKvRequest;

/// <summary>Asks for counters. Reply: <see cref="StoreStats"/>.</summary>
public sealed record GetStats(long RequestId = 0) : ICrabKvRequest;

// ------------------------------------------------------------------ replies

/// <summary>The put is acknowledged per the durability mode.</summary>
public sealed record PutOk(long RequestId) : ICrabKvReply;

/// <summary>The value of a key, or <c>Found = false</c>.</summary>
public sealed record GetResult(string Key, bool Found, byte[]? Value, long RequestId) : ICrabKvReply;

/// <summary>The delete is acknowledged; <paramref name="Existed"/> tells whether the key was there.</summary>
public sealed record DeleteOk(bool Existed, long RequestId) : ICrabKvReply;

/// <summary>The batch is acknowledged.</summary>
public sealed record PutBatchOk(int Count, long RequestId) : ICrabKvReply;

/// <summary>Buffered writes are in the log and fsynced.</summary>
public sealed record FlushOk(long RequestId) : ICrabKvReply;

/// <summary>Compaction finished; <paramref name="Outcome"/> is summed over partitions.</summary>
public sealed record CompactOk(CompactionOutcome Outcome, long RequestId) : ICrabKvReply
{
    /// <summary>Bytes of the merged segments.</summary>
    public long BytesBefore => Outcome.BytesBefore;

    /// <summary>Bytes written by the merge.</summary>
    public long BytesAfter => Outcome.BytesAfter;

    /// <summary>Segments merged.</summary>
    public int SegmentsMerged => Outcome.SegmentsMerged;

    /// <summary>Longest merge time of a partition.</summary>
    public TimeSpan Duration => Outcome.Duration;
}

/// <summary>
/// Counters of the store (an INFO-like report): one entry per partition, one per node the
/// partitions live on (<see cref="PartitionStats.Node"/> names it), and their sums.
/// <see cref="Summary"/> lists everything as rows for display.
/// </summary>
/// <param name="Partitions">One entry per partition that answered, in partition order.</param>
/// <param name="Nodes">One entry per node (actor system) that answered, in address order.</param>
/// <param name="RequestId">The request's id.</param>
public sealed partial record StoreStats(IReadOnlyList<PartitionStats> Partitions, IReadOnlyList<NodeStats> Nodes, long RequestId) : ICrabKvReply
{
    /// <summary>Stats of partitions without node entries.</summary>
    public StoreStats(IReadOnlyList<PartitionStats> Partitions, long RequestId) : this(Partitions, [], RequestId)
    {
    }

    /// <summary>Keys over all partitions.</summary>
    public long Keys => Partitions.Sum(p => (long)p.Keys);

    /// <summary>fsyncs over all partitions.</summary>
    public long Fsyncs => Partitions.Sum(p => p.Fsyncs);

    /// <summary>Puts over all partitions.</summary>
    public long Puts => Partitions.Sum(p => p.Puts);

    /// <summary>Record bytes on disk over all partitions.</summary>
    public long TotalBytes => Partitions.Sum(p => p.TotalBytes);

    /// <summary>Stale record bytes (what compaction would reclaim) over all partitions.</summary>
    public long StaleBytes => Partitions.Sum(p => p.StaleBytes);
}

/// <summary>
/// What one node (one actor system running partitions) reports about itself in
/// <see cref="StoreStats.Nodes"/>: identity, version, uptime, memory and the effective
/// configuration of its partitions.
/// </summary>
public sealed record NodeStats
{
    /// <summary>The node's actor system address, as in <see cref="PartitionStats.Node"/>.</summary>
    public string Node { get; init; } = "";

    /// <summary>The informational version of CrabKv.Actors running on the node.</summary>
    public string Version { get; init; } = "";

    /// <summary>Time since the node's actor system started.</summary>
    public TimeSpan Uptime { get; init; }

    /// <summary>The node's operating-system process id.</summary>
    public int ProcessId { get; init; }

    /// <summary>Physical memory of the node's process (working set / resident set), in bytes.</summary>
    public long WorkingSetBytes { get; init; }

    /// <summary>Bytes the .NET garbage collector counts as allocated on the managed heap.</summary>
    public long GcHeapBytes { get; init; }

    /// <summary>
    /// The effective <c>crabkv</c> settings the node's partitions run with, as key/value strings
    /// (keys as in HOCON; budgets divided among partitions end in <c>-per-partition</c>).
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> Configuration { get; init; } = [];
}

/// <summary>The one error reply.</summary>
public sealed record CrabKvError(CrabKvErrorCode Code, string Message, long RequestId) : ICrabKvReply;

/// <summary>Published on the event stream when a compaction of a partition finishes.</summary>
public sealed record CompactionCompleted(int Partition, CompactionOutcome Outcome) : ICrabKvMessage;

/// <summary>Published on the event stream while a compaction runs.</summary>
public sealed record CompactionProgressed(int Partition, double Fraction) : ICrabKvMessage;

/// <summary>Published on the event stream when a partition fsyncs on its SyncTick timer.</summary>
public sealed record TimerSyncCompleted(int Partition, long Fsyncs) : ICrabKvMessage, INoSerializationVerificationNeeded;

/// <summary>Published on the event stream when a partition fails and turns read-only.</summary>
public sealed record PartitionFailed(int Partition, string Reason) : ICrabKvMessage;

/// <summary>Stops the store gracefully: write-back entries flushed, segments sealed, locks released. Reply: <see cref="ShutdownOk"/>.</summary>
public sealed record Shutdown(long RequestId = 0) : ICrabKvRequest;

/// <summary>The store stopped gracefully.</summary>
public sealed record ShutdownOk(long RequestId) : ICrabKvReply;

/// <summary>
/// Graceful stop of one partition: waits for a running merge, flushes write-back entries,
/// fsyncs and seals the active segment, releases the lock, then stops. Answered with
/// <see cref="PartitionStopped"/>. Send it to a partition actor (a store's <see cref="Shutdown"/>
/// sends it to each); it is the stop message a shard handoff uses.
/// </summary>
public sealed record StopPartition : ICrabKvMessage
{
    /// <summary>The one instance.</summary>
    public static readonly StopPartition Instance = new();
}

/// <summary>The partition flushed and sealed everything and released its lock; it stops right after.</summary>
public sealed record PartitionStopped(int Partition) : ICrabKvMessage;

/// <summary>
/// Several protocol messages in one network message, so one remote hop carries many
/// operations: the keyed requests a cluster node sends to one partition, or the replies that
/// partition sends back. Each message keeps its own <c>RequestId</c>, which correlates the
/// replies (a cluster endpoint gives every request it batches a unique one and restores the
/// caller's on the way back). A partition receiving a batch handles its requests in order.
/// </summary>
public sealed record ProtocolBatch(IReadOnlyList<ICrabKvMessage> Messages) : ICrabKvMessage;

/// <summary>Copies of protocol messages with another <c>RequestId</c>, for code that correlates by it.</summary>
public static class RequestIds
{
    /// <summary>The request or reply <paramref name="message"/> with <paramref name="requestId"/>; null for a message that carries none.</summary>
    public static ICrabKvMessage? With(ICrabKvMessage message, long requestId) => message switch
    {
        Put m => m with { RequestId = requestId },
        Get m => m with { RequestId = requestId },
        Delete m => m with { RequestId = requestId },
        PutBatch m => m with { RequestId = requestId },
        PutOk m => m with { RequestId = requestId },
        GetResult m => m with { RequestId = requestId },
        DeleteOk m => m with { RequestId = requestId },
        PutBatchOk m => m with { RequestId = requestId },
        CrabKvError m => m with { RequestId = requestId },
        Flush m => m with { RequestId = requestId },
        FlushOk m => m with { RequestId = requestId },
        Compact m => m with { RequestId = requestId },
        CompactAndShutdown m => m with { RequestId = requestId },
        CompactOk m => m with { RequestId = requestId },
        GetStats m => m with { RequestId = requestId },
        StoreStats m => m with { RequestId = requestId },
        _ => null,
    };
}
