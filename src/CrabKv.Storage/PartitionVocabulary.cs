using CrabKv.Storage.Compaction;
using CrabKv.Storage.Recovery;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage;

// The words a partition and its callers share, named once: the embedded engine returns
// them and the actor protocol carries them.

/// <summary>
/// One operation of an atomic batch: a put (with an optional TTL) or, with a null value, a
/// delete. Several entries of one batch may name the same key: the last one wins (as in
/// RocksDB's WriteBatch and Redis's MSET), also after a restart.
/// </summary>
public sealed record BatchEntry(string Key, byte[]? Value, TimeSpan? Ttl = null)
{
    /// <summary>A put entry.</summary>
    public static BatchEntry Put(string key, byte[] value, TimeSpan? ttl = null) => new(key, value, ttl);

    /// <summary>A delete entry.</summary>
    public static BatchEntry Delete(string key) => new(key, null);
}

/// <summary>What one compaction (merge of sealed segments) did; summed over partitions by a store.</summary>
/// <param name="SegmentsMerged">Sealed segments merged (the inputs).</param>
/// <param name="SegmentsWritten">Segments the merge wrote (the outputs).</param>
/// <param name="BytesBefore">Bytes of the inputs.</param>
/// <param name="BytesAfter">Bytes of the outputs.</param>
/// <param name="RecordsDropped">Overwritten, deleted and expired records left behind.</param>
/// <param name="Duration">Time the merge took.</param>
public sealed record CompactionOutcome(int SegmentsMerged, int SegmentsWritten, long BytesBefore, long BytesAfter, long RecordsDropped, TimeSpan Duration)
{
    /// <summary>Nothing merged.</summary>
    public static CompactionOutcome None { get; } = new(0, 0, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The outcome of a merge of <paramref name="inputs"/> segments.</summary>
    public static CompactionOutcome Of(int inputs, MergeResult result) =>
        new(inputs, result.Outputs.Count, result.BytesBefore, result.BytesAfter, result.RecordsDropped, result.Duration);

    /// <summary>Sums outcomes (partitions compact in parallel: the duration is the longest).</summary>
    public static CompactionOutcome Sum(IEnumerable<CompactionOutcome> parts)
    {
        var sum = None;
        foreach (var p in parts)
        {
            sum = new CompactionOutcome(sum.SegmentsMerged + p.SegmentsMerged, sum.SegmentsWritten + p.SegmentsWritten,
                sum.BytesBefore + p.BytesBefore, sum.BytesAfter + p.BytesAfter, sum.RecordsDropped + p.RecordsDropped,
                p.Duration > sum.Duration ? p.Duration : sum.Duration);
        }
        return sum;
    }
}

/// <summary>How a partition rebuilt its key directory when it opened (<see cref="RecoveryReport.Mode"/>).</summary>
public enum RecoveryMode : byte
{
    /// <summary>No segment was loaded: a new, empty partition, or one that has not opened (yet).</summary>
    None = 0,

    /// <summary>Every segment was loaded from its hint file (the fast path after a graceful stop).</summary>
    Hints = 1,

    /// <summary>Every segment was scanned record by record (no usable hint file, e.g. after a crash of a one-segment partition).</summary>
    Scan = 2,

    /// <summary>Some segments from hint files, the others scanned (typically the segment that was active at a crash).</summary>
    Mixed = 3,
}

/// <summary>Counters and sizes of one partition (one directory), from the engine or a partition actor.</summary>
public sealed record PartitionStats
{
    /// <summary>Partition number (0 for an embedded store).</summary>
    public int Partition { get; init; }

    /// <summary>Live keys on disk (buffered write-back entries not counted).</summary>
    public int Keys { get; init; }

    /// <summary>Segments, the active one included.</summary>
    public int Segments { get; init; }

    /// <summary>Record bytes in all segments.</summary>
    public long TotalBytes { get; init; }

    /// <summary>Record bytes no key points at any more (what a merge would reclaim).</summary>
    public long StaleBytes { get; init; }

    /// <summary>Bytes held by the key directory.</summary>
    public long KeyDirectoryBytes { get; init; }

    /// <summary>The segment being written.</summary>
    public SegmentId ActiveSegment { get; init; }

    /// <summary>Puts accepted (batch entries counted one by one).</summary>
    public long Puts { get; init; }

    /// <summary>Gets served.</summary>
    public long Gets { get; init; }

    /// <summary>Deletes accepted.</summary>
    public long Deletes { get; init; }

    /// <summary>fsyncs (fdatasync) issued.</summary>
    public long Fsyncs { get; init; }

    /// <summary>Write calls of the WAL (one per group-commit round).</summary>
    public long WalWrites { get; init; }

    /// <summary>Read-cache hits.</summary>
    public long CacheHits { get; init; }

    /// <summary>Read-cache misses.</summary>
    public long CacheMisses { get; init; }

    /// <summary>Bytes in the write-back buffer.</summary>
    public long DirtyBytes { get; init; }

    /// <summary>Keys in the write-back buffer or being flushed.</summary>
    public long DirtyKeys { get; init; }

    /// <summary>Write-back flushes.</summary>
    public long Flushes { get; init; }

    /// <summary>Compactions completed.</summary>
    public long Compactions { get; init; }

    /// <summary>Progress of the running compaction (1 when none runs).</summary>
    public double CompactionProgress { get; init; } = 1;

    /// <summary>The last compaction.</summary>
    public CompactionOutcome LastCompaction { get; init; } = CompactionOutcome.None;

    /// <summary>Keys removed by the TTL sweep.</summary>
    public long ExpiredSwept { get; init; }

    /// <summary>True once a failure made the partition read-only.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>Why it is read-only or unavailable.</summary>
    public string? FailureReason { get; init; }

    /// <summary>
    /// True for the entry of a partition that did not answer a store-wide stats request (its
    /// node away, unreachable, or the partition moving): no figures, <see cref="FailureReason"/>
    /// says why. The other partitions' figures are still reported.
    /// </summary>
    public bool Unavailable { get; init; }

    /// <summary>Record bytes keys still point at: <see cref="TotalBytes"/> minus <see cref="StaleBytes"/>.</summary>
    public long LiveBytes => TotalBytes - StaleBytes;

    /// <summary>
    /// The node the partition lives on: its actor system's address (<c>akka://name</c> on a
    /// single node, <c>akka.tcp://name@host:port</c> in a cluster); null for an embedded store.
    /// Stats of a whole cluster group by it.
    /// </summary>
    public string? Node { get; init; }

    /// <summary>How the partition's key directory was rebuilt when it opened.</summary>
    public RecoveryMode RecoveryMode { get; init; }

    /// <summary>Segments loaded from their hint files when the partition opened.</summary>
    public int SegmentsFromHints { get; init; }

    /// <summary>Segments scanned record by record when the partition opened.</summary>
    public int SegmentsScanned { get; init; }

    /// <summary>Time the recovery (hint loading and scans) took when the partition opened.</summary>
    public TimeSpan RecoveryDuration { get; init; }

    /// <summary>Entries in the read cache.</summary>
    public long CacheEntries { get; init; }

    /// <summary>Value bytes in the read cache.</summary>
    public long CacheBytes { get; init; }

    /// <summary>These stats with the recovery fields of <paramref name="report"/> (unchanged when it is null: the partition has not opened).</summary>
    public PartitionStats WithRecovery(RecoveryReport? report) => report is null ? this : this with
    {
        RecoveryMode = report.Mode,
        SegmentsFromHints = report.SegmentsFromHints,
        SegmentsScanned = report.SegmentsScanned,
        RecoveryDuration = report.Duration,
    };
}
