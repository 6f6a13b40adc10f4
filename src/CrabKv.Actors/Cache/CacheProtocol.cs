using Akka.Actor;
using CrabKv.Storage.Caches;
using CrabKv.Storage.Index;
using CrabKv.Storage.Segments;

namespace CrabKv.Actors.Cache;

// Messages between a PartitionActor and its CacheActor (process-local, never serialized).

/// <summary>
/// A Get, forwarded with everything the partition knows: the record's location and an open
/// segment, or the in-flight value, or neither. The cache answers <paramref name="ReplyTo"/>.
/// </summary>
internal sealed record ReadRecord(string Key, byte[] KeyBytes, KeyLocation? Location, Segment? Segment, PendingValue? InFlight, IActorRef ReplyTo, long RequestId);

/// <summary>Write-back: buffer one put (value) or delete (null value). <paramref name="ExistedOnDisk"/> answers a delete when the key is not buffered.</summary>
internal sealed record BufferWrite(string Key, byte[]? Value, long Expiry, bool ExistedOnDisk, IActorRef ReplyTo, long RequestId);

/// <summary>Write-back: buffer a batch; it reaches the log inside one flush, so it stays atomic.</summary>
internal sealed record BufferBatch((string Key, byte[]? Value, long Expiry)[] Entries, IActorRef ReplyTo, long RequestId);

/// <summary>Drain the dirty entries now and send them to the partition as a <see cref="FlushBatch"/>.</summary>
internal sealed record FlushDirty(IActorRef? ReplyTo, long RequestId, bool ForStop = false, bool ForCompact = false);

/// <summary>Cache → partition: dirty entries to write as one atomic batch.</summary>
internal sealed record FlushBatch(long FlushId, KeyValuePair<string, PendingValue>[] Entries, IActorRef? ReplyTo, long RequestId, bool ForStop, bool ForCompact);

/// <summary>Partition → cache: the flush's records are indexed; stop serving them from memory.</summary>
internal sealed record FlushIndexed(long FlushId);

/// <summary>Partition → cache: these segments are merged away; answer <see cref="SegmentsReleased"/> once no earlier read can use them.</summary>
internal sealed record ReleaseSegments(IReadOnlyList<Segment> Segments);

/// <summary>Cache → partition: safe to delete.</summary>
internal sealed record SegmentsReleased(IReadOnlyList<Segment> Segments);

/// <summary>Fill in the cache's counters and reply a one-partition <see cref="StoreStats"/> (with its <paramref name="Node"/>) to <paramref name="ReplyTo"/>.</summary>
internal sealed record CollectStats(PartitionStats Partial, IActorRef ReplyTo, long RequestId, NodeStats Node);

/// <summary>Partition → cache at the end of a graceful stop: answered with <see cref="CacheDrained"/> after every read queued before it.</summary>
internal sealed record DrainCache
{
    public static readonly DrainCache Instance = new();
}

/// <summary>Every read the cache accepted has been answered.</summary>
internal sealed record CacheDrained
{
    public static readonly CacheDrained Instance = new();
}
