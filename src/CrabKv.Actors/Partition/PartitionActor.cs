using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Cache;
using CrabKv.Actors.Compaction;
using CrabKv.Actors.Diagnostics;
using CrabKv.Actors.Wal;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Recovery;

namespace CrabKv.Actors.Partition;

/// <summary>
/// One partition = one directory. Owns the partition's <see cref="PartitionIndex"/> (key
/// directory, byte accounting, open segments) and is the only authority on where the newest
/// version of a key lives: at a file position (the index), in flight to the writer
/// (<see cref="InFlightWrites"/>, served from memory until acknowledged), or dirty in the
/// cache (write-back). The rules it applies are the storage core's (<see cref="WriteRules"/>,
/// <see cref="PartitionIndex"/>, <see cref="ActiveLog"/> in the writer); this actor sequences
/// them. Split by concern: this file (lifecycle and states), <c>.Writes</c>, <c>.Reads</c>,
/// <c>.Compaction</c>, <c>.Stop</c>.
///
/// <code>
///            WalRecovered                StopPartition (or CompactAndShutdown answered)
///  Opening ───────────────▶ Running ──────────────────────────────────────▶ Stopping
///     │ WalRecoveryFailed      │ WalFailed / a child died                      │ no merge, roll or merged-input
///     ▼                        ▼                                               │ deletion left to wait for
///  FailedToOpen             ReadOnly ──StopPartition──▶ Stopping               ▼
///  (every request           (reads served,                                  Closing (write-back flushed,
///   answered StoreFailed)    writes StoreFailed)                               │  WAL fsynced and sealed)
///                                                                              │ WalClosed
///                                                                              ▼
///                                                                           Draining (reads already with
///                                                                              │  the cache are answered)
///                                                                              │ CacheDrained
///                                                                              ▼
///                                                                        PartitionStopped, stop
/// </code>
/// Requests that arrive while opening are stashed (bounded) and replayed. A failure while
/// stopping does not leave Stopping: the stop completes and the lock is released.
/// </summary>
internal sealed partial class PartitionActor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private const int MaxStashed = 100_000;
    private const long MaxInFlightBytes = 256L << 20;

    /// <summary>The lifecycle state; <see cref="Enter"/> sets it together with the matching behaviour.</summary>
    private enum Lifecycle
    {
        Opening,
        FailedToOpen,
        Running,
        ReadOnly,
        Stopping,
        Closing,
        Draining,
    }

    private sealed class SweepTick : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly SweepTick Instance = new();
    }

    private readonly int _partition;
    private readonly string _directory;
    private readonly CrabKvSettings _settings;
    private readonly WriteLimits _limits;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _writer;
    private readonly IActorRef _cache;
    private readonly IActorRef _compactor;

    private Lifecycle _lifecycle;
    private PartitionIndex _index = new();
    private readonly InFlightWrites _inFlight = new(MaxInFlightBytes);
    private int _stashed;
    private long _stashedBytes;
    private string? _readOnlyReason;   // why the partition failed (read-only, or unavailable)
    private bool _writerDead, _cacheDead, _compactorDead;

    // Stats: the node the partition runs on, its effective configuration, what opening found
    private readonly string _node = NodeInfo.NodeOf(Context.System);
    private IReadOnlyList<KeyValuePair<string, string>>? _configuration;
    private RecoveryReport? _recovery;

    // Counters
    private long _puts, _gets, _deletes, _fsyncs, _walWrites, _expiredSwept;
    private OperationKind _kind; // the request being handled, for the meter (Diagnostics/CrabKvMetrics)

    public PartitionActor(int partition, string directory, CrabKvSettings settings)
    {
        _partition = partition;
        _directory = directory;
        _settings = settings;
        _limits = settings.ToWriteLimits();
        _writer = Context.Watch(Context.ActorOf(WalWriterActor.Props(directory, partition, settings), "wal"));
        _cache = Context.Watch(Context.ActorOf(CacheActor.Props(settings), "cache"));
        _compactor = Context.Watch(Context.ActorOf(CompactorActor.Props(settings), "compactor"));
        Enter(Lifecycle.Opening);
    }

    public IStash Stash { get; set; } = null!;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(int partition, string directory, CrabKvSettings settings) =>
        Akka.Actor.Props.Create(() => new PartitionActor(partition, directory, settings));

    /// <summary>A child that throws is stopped, never restarted with its in-flight state lost; Terminated turns the partition read-only.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    private static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private bool IsStopping => _lifecycle >= Lifecycle.Stopping;

    /// <summary>Counts every request once for the meter: requests stashed while opening are counted when replayed.</summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        _kind = CrabKvMetrics.KindOf(message);
        if (_lifecycle != Lifecycle.Opening)
        {
            CrabKvMetrics.Operation(_kind);
        }
        return base.AroundReceive(receive, message);
    }

    // ------------------------------------------------------------------ states

    private void Enter(Lifecycle state)
    {
        _lifecycle = state;
        Become(state switch
        {
            Lifecycle.Opening => Opening,
            Lifecycle.FailedToOpen => FailedToOpen,
            Lifecycle.Running => Running,
            Lifecycle.ReadOnly => ReadOnly,
            Lifecycle.Stopping => Stopping,
            Lifecycle.Closing => Closing,
            _ => Draining,
        });
    }

    private void Opening()
    {
        Receive<WalRecovered>(m =>
        {
            _index = m.State.Index;
            _recovery = m.State.Report;
            foreach (var line in m.State.Report.Messages)
            {
                _log.Info("Partition {0}: {1}", _partition, line);
            }
            if (_settings.TtlSweepInterval > TimeSpan.Zero)
            {
                Timers.StartPeriodicTimer(SweepTick.Instance, SweepTick.Instance, _settings.TtlSweepInterval);
            }
            Enter(Lifecycle.Running);
            Stash.UnstashAll();
        });
        Receive<WalRecoveryFailed>(m =>
        {
            _readOnlyReason = $"opening the partition failed: {m.Cause.Message}";
            Context.System.EventStream.Publish(new PartitionFailed(_partition, _readOnlyReason));
            Enter(Lifecycle.FailedToOpen);
            Stash.UnstashAll();
        });
        Receive<Terminated>(ChildDied);
        ReceiveAny(m =>
        {
            var bytes = m switch
            {
                Put p => p.Value?.Length ?? 0,
                PutBatch b => b.Entries?.Sum(e => (long)(e?.Value?.Length ?? 0)) ?? 0,
                _ => 0L,
            };
            if (_stashed >= MaxStashed || _stashedBytes + bytes > MaxInFlightBytes)
            {
                CrabKvMetrics.Operation(_kind); // refused, never replayed: counted here
                ReplyError(m, CrabKvErrorCode.Overloaded, "The partition is still opening and its queue is full; retry shortly.");
                return;
            }
            _stashed++;
            _stashedBytes += bytes;
            Stash.Stash();
        });
    }

    private void FailedToOpen()
    {
        Receive<StopPartition>(_ =>
        {
            Sender.Tell(new PartitionStopped(_partition));
            Context.Stop(Self);
        });
        Receive<GetStats>(m => Sender.Tell(new StoreStats([BaseStats()], [DescribeNode()], m.RequestId)));
        Receive<Terminated>(_ => { });
        ReceiveAny(m => ReplyError(m, CrabKvErrorCode.StoreFailed, $"Partition {_partition} is unavailable: {_readOnlyReason}"));
    }

    private void Running()
    {
        Receive<Put>(OnPut);
        Receive<Delete>(OnDelete);
        Receive<PutBatch>(OnPutBatch);
        Receive<Get>(OnGet);
        Receive<Flush>(OnFlush);
        Receive<Compact>(m => OnCompact(Sender, m.RequestId, shutdown: false));
        Receive<CompactAndShutdown>(m => OnCompact(Sender, m.RequestId, shutdown: true));
        Open();
    }

    private void ReadOnly()
    {
        Receive<Get>(OnGet);
        Receive<CompactAndShutdown>(m =>
        {
            Sender.Tell(ErrorReply(CrabKvErrorCode.StoreFailed, ReadOnlyMessage, m.RequestId));
            BeginStop(null); // no compaction, but the shutdown the store waits for
        });
        Receive<ICrabKvRequest>(m => m is Put or Delete or PutBatch or Flush or Compact or CompactAndShutdown, m =>
            Sender.Tell(ErrorReply(CrabKvErrorCode.StoreFailed, ReadOnlyMessage, m.RequestId)));
        Open();
    }

    /// <summary>Waiting for a merge, a roll or merged-input deletions before the write-back flush and the close.</summary>
    private void Stopping()
    {
        Receive<Get>(OnGet);
        Receive<Flush>(m =>
        {
            if (_readOnlyReason is not null)
            {
                Sender.Tell(ErrorReply(CrabKvErrorCode.StoreFailed, ReadOnlyMessage, m.RequestId));
                return;
            }
            OnFlush(m);
        });
        RefuseWhileStopping("The store is shutting down.");
        Open();
    }

    /// <summary>The write-back flush and WalClose are on their way to the writer.</summary>
    private void Closing()
    {
        Receive<Get>(OnGet);
        Receive<Flush>(m => Sender.Tell(ErrorReply(CrabKvErrorCode.ShuttingDown, "The store is shutting down; its stop flushes everything.", m.RequestId)));
        RefuseWhileStopping("The store is shutting down.");
        Open();
    }

    /// <summary>The WAL is closed; the cache answers the reads it already has, then the partition stops.</summary>
    private void Draining()
    {
        RefuseWhileStopping("The store is shutting down.");
        Open();
    }

    private void RefuseWhileStopping(string message)
    {
        Receive<ICrabKvRequest>(m => m is Put or Delete or PutBatch or Get or Flush or Compact or CompactAndShutdown, m =>
        {
            if (m is Compact or CompactAndShutdown && _readOnlyReason is not null)
            {
                Sender.Tell(ErrorReply(CrabKvErrorCode.StoreFailed, ReadOnlyMessage, m.RequestId));
                return;
            }
            Sender.Tell(ErrorReply(CrabKvErrorCode.ShuttingDown, message, m.RequestId));
        });
    }

    /// <summary>What every opened partition handles whatever its state: stats, stop, and its children's messages.</summary>
    private void Open()
    {
        Receive<GetPartitionLimits>(m => Sender.Tell(new PartitionLimits(
            _settings.CacheMaxEntries, _settings.CacheMaxBytes, _settings.WriteBackEnabled ? _settings.EffectiveMaxDirtyBytes : null,
            _settings.WriteBufferBytes, _settings.ToLogSettings().PreallocateBytes, _settings.BudgetShare)));
        Receive<GetStats>(OnGetStats);
        Receive<StopPartition>(_ => BeginStop(Sender));

        Receive<WalAcks>(OnAcks);
        Receive<WalSynced>(m => _fsyncs = Math.Max(_fsyncs, m.Fsyncs));
        Receive<WalFailed>(OnWalFailed);
        Receive<ActiveSegmentStarted>(m => _index.StartActive(m.Reader));
        Receive<SegmentSealed>(OnSealed);
        Receive<WalRolled>(_ => OnRolled());
        Receive<WalClosed>(_ => Drain());
        Receive<CacheDrained>(_ => FinishStop());
        Receive<FlushBatch>(OnFlushBatch);
        Receive<MergeProgressed>(OnMergeProgressed);
        Receive<MergeDone>(OnMergeDone);
        Receive<InstallStep>(_ => ContinueInstall());
        Receive<PlanStep>(_ => ContinuePlanning());
        Receive<MergeFailed>(OnMergeFailed);
        Receive<SegmentsReleased>(OnSegmentsReleased);
        Receive<SegmentsDeleted>(OnSegmentsDeleted);
        Receive<SweepTick>(_ => Sweep());
        Receive<Terminated>(ChildDied);
        ReceiveAny(m => ReplyError(m, CrabKvErrorCode.UnknownMessage, $"Unknown message {m.GetType().Name}."));
    }

    // ------------------------------------------------------------------ replies and stats

    /// <summary>Replies a refusal; true when there was one.</summary>
    private bool Refuse(Refusal? refusal, long requestId)
    {
        if (refusal is not { } r)
        {
            return false;
        }
        Sender.Tell(ErrorReply(r.Code, r.Message, requestId));
        return true;
    }

    /// <summary>An error reply to the request being handled (or one of <paramref name="kind"/>), counted by the meter.</summary>
    private CrabKvError ErrorReply(CrabKvErrorCode code, string message, long requestId, OperationKind? kind = null)
    {
        CrabKvMetrics.Error(kind ?? _kind, code);
        return new CrabKvError(code, message, requestId);
    }

    private void ReplyError(object message, CrabKvErrorCode code, string text)
    {
        if (Sender.IsNobody() || Sender.Equals(Context.System.DeadLetters))
        {
            return;
        }
        Sender.Tell(ErrorReply(code, text, message is ICrabKvRequest r ? r.RequestId : 0));
    }

    private void OnGetStats(GetStats m)
    {
        if (_cacheDead || _lifecycle == Lifecycle.Draining)
        {
            Sender.Tell(new StoreStats([BaseStats()], [DescribeNode()], m.RequestId));
            return;
        }
        _cache.Tell(new CollectStats(BaseStats(), Sender, m.RequestId, DescribeNode()));
    }

    private NodeStats DescribeNode() => NodeInfo.Describe(Context.System, _node, _configuration ??= NodeInfo.Configuration(_settings));

    private PartitionStats BaseStats() => _index.Describe(_partition).WithRecovery(_recovery) with
    {
        Node = _node,
        Puts = _puts,
        Gets = _gets,
        Deletes = _deletes,
        Fsyncs = _fsyncs,
        WalWrites = _walWrites,
        Compactions = _compactions,
        CompactionProgress = MergeUnderWay ? _mergeProgress : 1,
        LastCompaction = _lastCompaction,
        ExpiredSwept = _expiredSwept,
        ReadOnly = _readOnlyReason is not null,
        FailureReason = _readOnlyReason,
    };

    protected override void PostStop() => _index.Dispose();
}

/// <summary>Debug query (process-local): the limits a partition runs with, its share of the node budgets. Reply: <see cref="PartitionLimits"/>.</summary>
internal sealed record GetPartitionLimits;

/// <summary>The limits one partition runs with (its share of the node budgets, <see cref="CrabKvSettings.PerPartition"/>).</summary>
internal sealed record PartitionLimits(int CacheMaxEntries, long CacheMaxBytes, long? MaxDirtyBytes, int WriteBufferBytes, long PreallocateBytes, int BudgetShare);
