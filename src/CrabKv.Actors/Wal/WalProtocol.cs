using Akka.Actor;
using CrabKv.Storage.Index;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Recovery;
using CrabKv.Storage.Segments;

namespace CrabKv.Actors.Wal;

// Messages between a PartitionActor and its WalWriterActor. Internal: they never cross
// the network (segments and key directories are process-local objects).

/// <summary>
/// Appends records as one unit: one record, or a batch framed all-or-none
/// (<paramref name="IsBatch"/>). Values are raw: the writer compresses (<see cref="ActiveLog"/>).
/// On success the writer sends <paramref name="Reply"/> to <paramref name="ReplyTo"/> itself,
/// and the partition gets the locations in a <see cref="WalAcks"/>.
/// </summary>
internal sealed record WalAppend(long Seq, LogRecord[] Records, bool IsBatch, IActorRef? ReplyTo, object? Reply);

/// <summary>Where the records of one <see cref="WalAppend"/> landed, in order: one segment, an offset and a size per record.</summary>
internal readonly record struct WalAppended(long Seq, SegmentId Segment, uint[] Offsets, uint[] Sizes);

/// <summary>Acknowledgements of every append of one write round, in order.</summary>
internal sealed record WalAcks(WalAppended[] Items, long Fsyncs, long Writes);

/// <summary>Writes and fsyncs everything so far, then sends <paramref name="Reply"/> to <paramref name="ReplyTo"/>.</summary>
internal sealed record WalSync(IActorRef ReplyTo, object Reply);

/// <summary>Seals the active segment now (Compact wants it merged); answered with <see cref="SegmentSealed"/> (or nothing when empty) then <see cref="WalRolled"/>.</summary>
internal sealed record WalRoll
{
    public static readonly WalRoll Instance = new();
}

/// <summary>Answer to <see cref="WalRoll"/>, after the <see cref="SegmentSealed"/> it caused.</summary>
internal sealed record WalRolled
{
    public static readonly WalRolled Instance = new();
}

/// <summary>Graceful stop: write, fsync and seal; answered with <see cref="WalClosed"/>.</summary>
internal sealed record WalClose
{
    public static readonly WalClose Instance = new();
}

/// <summary>The writer closed its segment cleanly.</summary>
internal sealed record WalClosed
{
    public static readonly WalClosed Instance = new();
}

/// <summary>The directory was recovered; the partition takes ownership of the state.</summary>
internal sealed record WalRecovered(RecoveredState State);

/// <summary>Recovery failed (corruption, lock held, not a segment, I/O).</summary>
internal sealed record WalRecoveryFailed(Exception Cause);

/// <summary>A new active segment: a read-only handle for the partition's readers.</summary>
internal sealed record ActiveSegmentStarted(Segment Reader);

/// <summary>A segment was sealed; every ack of its records was sent before this.</summary>
internal sealed record SegmentSealed(SegmentId Id, long Length);

/// <summary>A write or fsync failed: the appends with these sequence numbers failed; the writer refuses more.</summary>
internal sealed record WalFailed(long[] FailedSeqs, string Reason);

/// <summary>The writer's fsync count after an fsync outside a write round (SyncTick, Flush).</summary>
internal sealed record WalSynced(long Fsyncs);
