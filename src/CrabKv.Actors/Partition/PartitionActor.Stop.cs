using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Cache;
using CrabKv.Actors.Diagnostics;
using CrabKv.Actors.Wal;

namespace CrabKv.Actors.Partition;

// Failures and the graceful stop. A failed write or a dead child turns the partition
// read-only (reads still served); children are stopped, never restarted. The graceful stop
// (StopPartition) waits for compaction work, flushes write-back entries, closes the WAL
// (fsynced, sealed, lock released), lets the cache answer the reads it holds, then stops.
internal sealed partial class PartitionActor
{
    private readonly List<IActorRef> _stopWaiters = new();

    /// <summary>What a write to a read-only partition is answered, with what to do about it.</summary>
    private string ReadOnlyMessage =>
        $"Partition {_partition} is read-only after a failure: {_readOnlyReason}. Reads are still served; writes resume when the node " +
        "is restarted after the cause is fixed (a full disk: free space).";

    private void OnWalFailed(WalFailed m) =>
        // The writer has answered the failed requests itself.
        GoReadOnly($"the write-ahead log failed: {m.Reason}", dropPending: true, answerPending: false);

    private void GoReadOnly(string reason, bool dropPending, bool answerPending)
    {
        if (_readOnlyReason is null)
        {
            _readOnlyReason = reason;
            _log.Error("Partition {0} is read-only: {1}", _partition, reason);
            Context.System.EventStream.Publish(new PartitionFailed(_partition, reason));
        }
        if (_lifecycle == Lifecycle.Running)
        {
            Enter(Lifecycle.ReadOnly);
        }
        // Writes the writer will never acknowledge are not served from memory any more.
        if (dropPending)
        {
            foreach (var p in _inFlight.DropAll())
            {
                if (answerPending && p.ReplyTo is not null)
                {
                    p.ReplyTo.Tell(ErrorReply(CrabKvErrorCode.StoreFailed, $"Write failed: {reason}", p.RequestId,
                        p.Records.Length > 1 ? OperationKind.Batch : p.Records[0].Value is null ? OperationKind.Delete : OperationKind.Put));
                }
            }
        }
        ContinueStopIfWaiting();
    }

    private void ChildDied(Terminated t)
    {
        var child = t.ActorRef;
        var reason = $"child {child.Path.Name} stopped unexpectedly";
        if (child.Equals(_writer))
        {
            _writerDead = true;
            CompactionChildDied(child, reason);
            GoReadOnly(reason, dropPending: true, answerPending: true);
            if (IsStopping)
            {
                Drain(); // nothing can be flushed or sealed any more
            }
            return;
        }
        if (child.Equals(_cache))
        {
            _cacheDead = true;
            CompactionChildDied(child, reason);
            if (_lifecycle == Lifecycle.Draining)
            {
                FinishStop();
                return;
            }
            GoReadOnly(reason, dropPending: false, answerPending: false);
            return;
        }
        if (child.Equals(_compactor))
        {
            // Compaction stops; reads and writes go on.
            _compactorDead = true;
            _log.Error("Partition {0}: {1}; compaction is off until the store restarts", _partition, reason);
            CompactionChildDied(child, reason);
        }
    }

    private void BeginStop(IActorRef? requester)
    {
        if (requester is not null && !requester.IsNobody())
        {
            _stopWaiters.Add(requester);
        }
        if (!IsStopping)
        {
            Enter(Lifecycle.Stopping);
        }
        ContinueStopIfWaiting();
    }

    /// <summary>Stopping → Closing once no compaction work is left to wait for.</summary>
    private void ContinueStopIfWaiting()
    {
        if (_lifecycle != Lifecycle.Stopping || CompactionBusy)
        {
            return;
        }
        Enter(Lifecycle.Closing);
        if (_writerDead)
        {
            Drain();
        }
        else if (_settings.WriteBackEnabled && _readOnlyReason is null && !_cacheDead)
        {
            _cache.Tell(new FlushDirty(null, 0, ForStop: true)); // the FlushBatch reply closes the writer after it
        }
        else
        {
            _writer.Tell(WalClose.Instance);
        }
    }

    /// <summary>Last step of a graceful stop: reads already forwarded to the cache are answered before the partition stops.</summary>
    private void Drain()
    {
        if (_lifecycle == Lifecycle.Draining)
        {
            return;
        }
        Enter(Lifecycle.Draining);
        if (_cacheDead)
        {
            FinishStop();
            return;
        }
        _cache.Tell(DrainCache.Instance);
    }

    private void FinishStop()
    {
        FailWaiters(_compactWaiters, CrabKvErrorCode.ShuttingDown, "The store stopped before this compaction could run.");
        FailWaiters(_currentWaiters, CrabKvErrorCode.ShuttingDown, "The store stopped before this compaction could run.");
        foreach (var w in _stopWaiters)
        {
            w.Tell(new PartitionStopped(_partition));
        }
        _stopWaiters.Clear();
        Context.Stop(Self);
    }
}
