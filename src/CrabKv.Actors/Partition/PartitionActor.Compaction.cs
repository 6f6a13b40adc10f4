using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Cache;
using CrabKv.Actors.Compaction;
using CrabKv.Actors.Diagnostics;
using CrabKv.Actors.Wal;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Segments;

namespace CrabKv.Actors.Partition;

// Compaction coordination. One merge at a time: a Compact seals the active segment first
// (WalRoll) so everything written is merged; a roll that completes while a merge runs gets a
// second merge right after it. The merge's live records are taken and its result is applied
// compare-and-set in steps between requests (LiveRecords.Begin, PartitionIndex.BeginMerge);
// the inputs are deleted only after the cache has answered every read queued before them.
internal sealed partial class PartitionActor
{
    private MergeRequest? _merge;
    private bool _rollRequested;     // a Compact asked the writer to seal the active segment
    private bool _mergeAgain;        // a roll completed while a merge ran: merge again after it
    private double _mergeProgress;
    private long _compactions;
    private CompactionOutcome _lastCompaction = CompactionOutcome.None;
    private readonly List<(IActorRef To, long RequestId, bool Shutdown)> _compactWaiters = new();  // for the next explicit merge
    private readonly List<(IActorRef To, long RequestId, bool Shutdown)> _currentWaiters = new();  // answered by the running merge
    private readonly List<IReadOnlyList<Segment>> _awaitingDelete = new(); // merged inputs on their way to deletion
    private bool _unmatchedAcks; // an acknowledgement matched no pending write: merges do not trust the directory alone
    private readonly List<Segment> _leftoverInputs = new(); // merged inputs whose deletion failed: older segments still on disk
    private (PendingMerge Merge, MergeDone Done)? _installing; // a finished merge whose relocations are being applied
    private (LiveRecords.Scan Scan, List<Segment> Inputs)? _planning; // a merge's live records being taken from the key directory

    /// <summary>Table entries of the key directory looked at per message while a merge's live records are taken.</summary>
    private int PlanStepEntries => (int)Math.Min(int.MaxValue, 8L * _settings.CompactionInstallStep);

    private sealed class InstallStep : INoSerializationVerificationNeeded
    {
        public static readonly InstallStep Instance = new();
    }

    private sealed class PlanStep : INoSerializationVerificationNeeded
    {
        public static readonly PlanStep Instance = new();
    }

    /// <summary>True while compaction work the stop must wait for is under way.</summary>
    private bool CompactionBusy => _merge is not null || _planning is not null || _rollRequested || _awaitingDelete.Count > 0;

    /// <summary>A merge is being planned, run or installed: another waits for it.</summary>
    private bool MergeUnderWay => _merge is not null || _planning is not null;

    /// <summary>After a failed merge the tick does not start another before this (Environment.TickCount64): a full disk would fail one a second.</summary>
    private long _autoCompactRetryAt;

    private static readonly TimeSpan AutoCompactRetryAfterFailure = TimeSpan.FromMinutes(1);

    private void OnSealed(SegmentSealed m)
    {
        _index.Sealed(m.Id, m.Length);
        MaybeAutoCompact();
    }

    /// <summary>The sweep tick's check: <see cref="MaybeAutoCompact"/>, not within a minute of a failed merge.</summary>
    private void MaybeAutoCompactOnTick()
    {
        if (Environment.TickCount64 >= _autoCompactRetryAt)
        {
            MaybeAutoCompact();
        }
    }

    /// <summary>
    /// Starts a merge when the sealed segments meet the compaction thresholds. Checked when a
    /// segment is sealed and at each TTL sweep tick: overwrites make sealed segments stale
    /// without sealing anything (a node restarted, then its keys written again: the segments
    /// recovered are sealed, the new active one may take a long time to fill).
    /// </summary>
    private void MaybeAutoCompact()
    {
        if (_settings.AutoCompaction && !MergeUnderWay && !_rollRequested && _lifecycle == Lifecycle.Running && !_compactorDead
            && _index.ShouldCompact(_settings.Compaction))
        {
            var (total, stale) = _index.SealedUsage();
            _log.Info("Partition {0}: {1} of {2} sealed bytes are stale; compacting", _partition, stale, total);
            StartMerge();
        }
    }

    private void OnCompact(IActorRef replyTo, long requestId, bool shutdown)
    {
        if (_compactorDead)
        {
            FailCompacts([(replyTo, requestId, shutdown)], $"Partition {_partition} cannot compact: its compactor stopped.");
            return;
        }
        _compactWaiters.Add((replyTo, requestId, shutdown));
        if (_rollRequested)
        {
            return; // joins the roll already asked for (requests are de-duplicated)
        }
        _rollRequested = true;
        if (_settings.WriteBackEnabled)
        {
            _cache.Tell(new FlushDirty(null, 0, ForCompact: true)); // dirty data reaches the log first, then the roll: it is merged too
        }
        else
        {
            _writer.Tell(WalRoll.Instance); // seal the active segment so everything written is merged
        }
    }

    /// <summary>The active segment was sealed for a Compact: merge now, or right after the merge already running.</summary>
    private void OnRolled()
    {
        if (!_rollRequested)
        {
            return;
        }
        _rollRequested = false;
        if (_readOnlyReason is not null || _compactorDead)
        {
            FailCompacts(_compactWaiters, $"Compaction impossible: {_readOnlyReason ?? "the compactor stopped"}.");
            return;
        }
        if (MergeUnderWay)
        {
            _mergeAgain = true; // the running merge started before this roll: it would miss the sealed segment
            return;
        }
        StartMerge();
    }

    /// <summary>Starts a merge of every sealed segment; the Compact requests waiting so far are answered by it.</summary>
    private void StartMerge()
    {
        if (MergeUnderWay)
        {
            return;
        }
        _currentWaiters.AddRange(_compactWaiters);
        _compactWaiters.Clear();
        // Inputs of an earlier merge that are still on disk are older segments: those that
        // could not be deleted (their deletion is retried first) and those of a merge that just
        // finished, whose deletion may yet fail. Tombstones must be kept while they exist.
        var olderExist = _leftoverInputs.Count > 0 || _awaitingDelete.Count > 0;
        var inputs = _index.PlanMerge(olderSegmentsExist: _leftoverInputs.Count > 0);
        if (inputs is null)
        {
            FinishMerge(CompactionOutcome.None, null);
            return;
        }
        if (_leftoverInputs.Count > 0)
        {
            _compactor.Tell(new DeleteSegments(_directory, _leftoverInputs.ToList(), IsRetry: true));
            _leftoverInputs.Clear();
        }
        // Every record of the sealed inputs is indexed by now (the writer acknowledges a
        // segment's writes before it reports the segment sealed), so the key directory's places
        // are the merge's whole answer to "which records survive": it need not index the inputs
        // again. Taken here, on the directory's owner: one pass over its table, in steps of
        // PlanStepEntries entries between which requests are served (the scan is told of
        // entries the directory moves meanwhile). Not after an acknowledgement that matched no
        // pending write: its records may be missing from the directory, and only the two-pass
        // merge keeps what the directory does not name.
        if (olderExist || _unmatchedAcks)
        {
            RunMerge(inputs, olderExist, null);
            return;
        }
        _planning = (LiveRecords.Begin(_index.Keys, inputs), inputs);
        _mergeProgress = 0;
        ContinuePlanning();
    }

    private void ContinuePlanning()
    {
        if (_planning is not { } planning)
        {
            return;
        }
        if (!planning.Scan.Step(PlanStepEntries))
        {
            Self.Tell(PlanStep.Instance);
            return;
        }
        _planning = null;
        if (_compactorDead)
        {
            FinishMerge(null, "Compaction failed: the compactor stopped.");
            return;
        }
        // Nothing deletes merged inputs while a merge is planned (none awaited deletion when it
        // started); checked again all the same, since a live set is only valid without them.
        var olderExist = _leftoverInputs.Count > 0 || _awaitingDelete.Count > 0;
        RunMerge(planning.Inputs, olderExist, olderExist || _unmatchedAcks ? null : planning.Scan.Live);
    }

    private void RunMerge(List<Segment> inputs, bool olderExist, LiveRecords? live)
    {
        _merge = new MergeRequest(_directory, inputs, olderExist, Now, _settings.SegmentMaxBytes, Live: live);
        _mergeProgress = 0;
        _compactor.Tell(new RunMerge(_merge));
    }

    private void OnMergeProgressed(MergeProgressed m)
    {
        _mergeProgress = m.Fraction;
        Context.System.EventStream.Publish(new CompactionProgressed(_partition, m.Fraction));
    }

    /// <summary>
    /// Installs a finished merge in steps of <c>compaction.install-step</c> relocations,
    /// each a message to itself, so requests that arrive meanwhile are served between steps
    /// instead of waiting for every moved key of a large partition. <see cref="_merge"/> stays
    /// set until the install completes: no other merge starts and a stop waits for it.
    /// </summary>
    private void OnMergeDone(MergeDone m)
    {
        _installing = (_index.BeginMerge(m.Request.Inputs, m.Merged), m);
        ContinueInstall();
    }

    private void ContinueInstall()
    {
        if (_installing is not { } installing)
        {
            return;
        }
        if (!installing.Merge.Step(_settings.CompactionInstallStep))
        {
            Self.Tell(InstallStep.Instance);
            return;
        }
        _index.CompleteMerge(installing.Merge);
        _installing = null;
        _merge = null;
        var m = installing.Done;
        var inputs = m.Request.Inputs;
        // Reads already forwarded may still use the inputs: the cache answers after them.
        if (_cacheDead)
        {
            _leftoverInputs.AddRange(inputs);
        }
        else
        {
            _awaitingDelete.Add(inputs);
            _cache.Tell(new ReleaseSegments(inputs));
        }
        _compactions++;
        FinishMerge(CompactionOutcome.Of(inputs.Count, m.Merged), null);
    }

    private void OnMergeFailed(MergeFailed m)
    {
        _merge = null;
        _autoCompactRetryAt = Environment.TickCount64 + (long)AutoCompactRetryAfterFailure.TotalMilliseconds;
        FinishMerge(null, $"Compaction failed: {m.Cause.Message}");
    }

    /// <summary>A merge ended (outcome, or error text): answer its waiters, merge again if a roll came meanwhile, continue a stop.</summary>
    private void FinishMerge(CompactionOutcome? outcome, string? error)
    {
        _mergeProgress = 1;
        if (outcome is not null && _index.ShouldCompact(_settings.Compaction))
        {
            // Still over the thresholds right after a merge (tombstones kept while older inputs
            // could not be deleted): the tick would only merge again at once.
            _autoCompactRetryAt = Environment.TickCount64 + (long)AutoCompactRetryAfterFailure.TotalMilliseconds;
        }
        if (outcome is not null)
        {
            _lastCompaction = outcome;
            Context.System.EventStream.Publish(new CompactionCompleted(_partition, outcome));
        }
        var shutdown = _currentWaiters.Any(w => w.Shutdown);
        foreach (var (to, id, _) in _currentWaiters)
        {
            to.Tell(outcome is not null ? new CompactOk(outcome, id) : ErrorReply(CrabKvErrorCode.StoreFailed, error!, id, OperationKind.Compact));
        }
        _currentWaiters.Clear();
        if (_mergeAgain)
        {
            _mergeAgain = false;
            if (!_compactorDead)
            {
                StartMerge();
                if (shutdown && !IsStopping)
                {
                    BeginStop(null); // the stop waits for the merge just started, which answers the later requests
                }
                return;
            }
            // The merge a later Compact asked for cannot run: its requests are answered now
            // (a CompactAndShutdown among them still stops the partition).
            shutdown |= _compactWaiters.Any(w => w.Shutdown);
            FailWaiters(_compactWaiters, CrabKvErrorCode.StoreFailed, "Compaction impossible: the compactor stopped.");
        }
        if (shutdown && !IsStopping)
        {
            BeginStop(null);
            return;
        }
        ContinueStopIfWaiting();
    }

    private void OnSegmentsReleased(SegmentsReleased m)
    {
        if (_compactorDead)
        {
            ForgetRelease(m.Segments, leftover: true);
            return;
        }
        _compactor.Tell(new DeleteSegments(_directory, m.Segments));
    }

    private void OnSegmentsDeleted(SegmentsDeleted m)
    {
        _leftoverInputs.AddRange(m.Left);
        if (m.Left.Count > 0)
        {
            _log.Warning("Partition {0}: {1} merged segments could not be deleted ({2}); merges keep tombstones until they are", _partition, m.Left.Count, m.Error);
        }
        if (!m.IsRetry)
        {
            ForgetRelease(m.Segments, leftover: false);
        }
    }

    private void ForgetRelease(IReadOnlyList<Segment> segments, bool leftover)
    {
        if (_awaitingDelete.Remove(segments) && leftover)
        {
            _leftoverInputs.AddRange(segments);
        }
        ContinueStopIfWaiting();
    }

    /// <summary>Compaction's share of a dead child: waiters answered, merged inputs kept as leftovers.</summary>
    private void CompactionChildDied(IActorRef child, string reason)
    {
        if (child.Equals(_writer) && _rollRequested)
        {
            _rollRequested = false;
            FailCompacts(_compactWaiters, $"Compaction impossible: {reason}.");
        }
        if (child.Equals(_cache) || child.Equals(_compactor))
        {
            foreach (var list in _awaitingDelete.ToList())
            {
                ForgetRelease(list, leftover: true); // never released: they stay on disk
            }
        }
        if (child.Equals(_compactor) && _merge is not null && _installing is null) // an install needs no compactor: it completes
        {
            _merge = null;
            FinishMerge(null, $"Compaction failed: {reason}."); // also answers a Compact that waited for the next merge
        }
    }

    /// <summary>
    /// Answers Compact requests whose merge cannot run (StoreFailed). A CompactAndShutdown among
    /// them still stops the partition, whatever made the compaction impossible: the store waits
    /// for every partition to stop, and the same request must not stop it or not depending on
    /// which failure message arrived first.
    /// </summary>
    private void FailCompacts(List<(IActorRef To, long RequestId, bool Shutdown)> waiters, string message)
    {
        var shutdown = waiters.Any(w => w.Shutdown);
        FailWaiters(waiters, CrabKvErrorCode.StoreFailed, message);
        if (shutdown)
        {
            BeginStop(null);
        }
        else
        {
            ContinueStopIfWaiting();
        }
    }

    private void FailWaiters(List<(IActorRef To, long RequestId, bool Shutdown)> waiters, CrabKvErrorCode code, string message)
    {
        foreach (var (to, id, _) in waiters)
        {
            to.Tell(ErrorReply(code, message, id, OperationKind.Compact));
        }
        waiters.Clear();
    }
}
