using System.Text;
using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Cache;
using CrabKv.Actors.Compaction;
using CrabKv.Actors.Wal;
using CrabKv.Storage;
using CrabKv.Storage.Caches;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Format;
using CrabKv.Storage.Index;
using CrabKv.Storage.Recovery;
using CrabKv.Storage.Segments;

namespace CrabKv.Actors.Partition;

/// <summary>
/// One partition = one directory. Owns the key directory and the byte accounting, and is
/// the only authority on where the newest version of a key lives: at a file position (key
/// directory), in flight to the writer (<c>_inFlight</c>, served from memory until the
/// writer acknowledges), or dirty in the cache (write-back).
///
/// <code>
///            WalRecovered                 StopPartition / CompactAndShutdown
///  Recovering ───────────▶ Running ─────────────────────────────────▶ Stopping ──WalClosed──▶ (stopped)
///      │ WalRecoveryFailed    │ WalFailed / child died
///      ▼                      ▼
///    Failed                ReadOnly (reads served; writes answered StoreFailed)
/// </code>
/// Requests that arrive while recovering are stashed (bounded) and replayed.
/// </summary>
internal sealed class PartitionActor : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private const int MaxStashed = 100_000;
    private const long MaxInFlightBytes = 256L << 20;

    private sealed class SweepTick : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly SweepTick Instance = new();
    }

    private sealed record PendingWrite(long Seq, string[] Keys, byte[][] KeyBytes, bool[] Tombstones, long[] Expiries, long FlushId, long Bytes, IActorRef? ReplyTo = null, long RequestId = 0);

    private readonly record struct InFlight(byte[]? Value, long Expiry, long Seq);

    private readonly int _partition;
    private readonly string _directory;
    private readonly CrabKvSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _writer;
    private readonly IActorRef _cache;
    private readonly IActorRef _compactor;

    private KeyDirectory _keys = new();
    private SegmentUsage _usage = new();
    private readonly SortedDictionary<SegmentId, Segment> _segments = new();
    private SegmentId _active;
    private readonly Dictionary<string, InFlight> _inFlight = new(StringComparer.Ordinal);
    private readonly Queue<PendingWrite> _pending = new();
    private long _inFlightBytes;
    private long _seq;
    private int _stashed;

    // Compaction
    private MergeRequest? _merge;
    private bool _rollRequested;     // a Compact asked the writer to seal the active segment
    private bool _mergeAgain;        // a roll completed while a merge ran: merge again after it
    private double _mergeProgress;
    private readonly List<(IActorRef To, long RequestId, bool Shutdown)> _compactWaiters = new();  // for the next explicit merge
    private readonly List<(IActorRef To, long RequestId, bool Shutdown)> _currentWaiters = new();  // answered by the running merge
    private readonly List<IReadOnlyList<Segment>> _awaitingDelete = new(); // merged inputs on their way to deletion
    private readonly List<Segment> _leftoverInputs = new(); // merged inputs whose deletion failed: older segments still on disk
    private bool _writerDead, _cacheDead, _compactorDead;
    private long _stashedBytes;
    private long _compactions;
    private (long Before, long After, int Merged, TimeSpan Duration) _lastCompaction;

    // State
    private string? _readOnlyReason;
    private bool _stopping;
    private bool _draining;
    private readonly List<IActorRef> _stopWaiters = new();

    // Counters
    private long _puts, _gets, _deletes, _fsyncs, _walWrites, _expiredSwept;

    public PartitionActor(int partition, string directory, CrabKvSettings settings)
    {
        _partition = partition;
        _directory = directory;
        _settings = settings;
        _writer = Context.Watch(Context.ActorOf(WalWriterActor.Props(directory, partition, settings), "wal"));
        _cache = Context.Watch(Context.ActorOf(CacheActor.Props(settings), "cache"));
        _compactor = Context.Watch(Context.ActorOf(CompactorActor.Props(settings), "compactor"));
        Recovering();
    }

    public IStash Stash { get; set; } = null!;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(int partition, string directory, CrabKvSettings settings) =>
        Akka.Actor.Props.Create(() => new PartitionActor(partition, directory, settings));

    /// <summary>A child that throws is stopped, never restarted with its in-flight state lost; Terminated turns the partition read-only.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    private static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    // ------------------------------------------------------------------ states

    private void Recovering()
    {
        Receive<WalRecovered>(m =>
        {
            var state = m.State;
            _keys = state.KeyDirectory;
            _usage = state.Usage;
            foreach (var (id, segment) in state.Segments)
            {
                _segments[id] = segment;
            }
            foreach (var line in state.Report.Messages)
            {
                _log.Info("Partition {0}: {1}", _partition, line);
            }
            if (_settings.TtlSweepInterval > TimeSpan.Zero)
            {
                Timers.StartPeriodicTimer(SweepTick.Instance, SweepTick.Instance, _settings.TtlSweepInterval);
            }
            Become(Running);
            Stash.UnstashAll();
        });
        Receive<WalRecoveryFailed>(m =>
        {
            _readOnlyReason = $"opening the partition failed: {m.Cause.Message}";
            Context.System.EventStream.Publish(new PartitionFailed(_partition, _readOnlyReason));
            Become(FailedToOpen);
            Stash.UnstashAll();
        });
        Receive<Terminated>(t => ChildDied(t));
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
        Receive<GetStats>(m => Sender.Tell(new StoreStats([BaseStats()], m.RequestId)));
        Receive<Terminated>(_ => { });
        ReceiveAny(m => ReplyError(m, CrabKvErrorCode.StoreFailed, $"Partition {_partition} is unavailable: {_readOnlyReason}"));
    }

    private void Running()
    {
        Receive<Put>(OnPut);
        Receive<Get>(OnGet);
        Receive<Delete>(OnDelete);
        Receive<PutBatch>(OnPutBatch);
        Receive<Flush>(OnFlush);
        Receive<Compact>(m => OnCompact(Sender, m.RequestId, shutdown: false));
        Receive<CompactAndShutdown>(m => OnCompact(Sender, m.RequestId, shutdown: true));
        Receive<GetStats>(m =>
        {
            if (_cacheDead || _draining)
            {
                Sender.Tell(new StoreStats([BaseStats()], m.RequestId));
                return;
            }
            _cache.Tell(new CollectStats(BaseStats(), Sender, m.RequestId));
        });
        Receive<StopPartition>(_ => BeginStop(Sender));

        Receive<WalAcks>(OnAcks);
        Receive<WalSynced>(m => _fsyncs = Math.Max(_fsyncs, m.Fsyncs));
        Receive<WalFailed>(OnWalFailed);
        Receive<ActiveSegmentStarted>(m =>
        {
            _segments[m.Reader.Id] = m.Reader;
            _active = m.Reader.Id;
        });
        Receive<SegmentSealed>(OnSealed);
        Receive<WalRolled>(_ => OnRolled());
        Receive<WalClosed>(_ => Drain());
        Receive<CacheDrained>(_ => FinishStop());
        Receive<FlushBatch>(OnFlushBatch);
        Receive<MergeProgressed>(m =>
        {
            _mergeProgress = m.Fraction;
            Context.System.EventStream.Publish(new CompactionProgressed(_partition, m.Fraction));
        });
        Receive<MergeDone>(OnMergeDone);
        Receive<MergeFailed>(m =>
        {
            _merge = null;
            FinishMerge(null, $"Compaction failed: {m.Cause.Message}");
        });
        Receive<SegmentsReleased>(m =>
        {
            if (_compactorDead)
            {
                ForgetRelease(m.Segments, leftover: true);
                return;
            }
            _compactor.Tell(new DeleteSegments(_directory, m.Segments));
        });
        Receive<SegmentsDeleted>(m =>
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
        });
        Receive<SweepTick>(_ => Sweep());
        Receive<Terminated>(ChildDied);
        ReceiveAny(m => ReplyError(m, CrabKvErrorCode.UnknownMessage, $"Unknown message {m.GetType().Name}."));
    }

    // ------------------------------------------------------------------ writes

    private bool RefuseWrite(long requestId)
    {
        if (_stopping)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.ShuttingDown, "The store is shutting down.", requestId));
            return true;
        }
        if (_readOnlyReason is not null)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed, $"Partition {_partition} is read-only after a failure: {_readOnlyReason}", requestId));
            return true;
        }
        if (_inFlightBytes > MaxInFlightBytes)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.Overloaded, $"Partition {_partition} has {_inFlightBytes} bytes of writes in flight (limit {MaxInFlightBytes}); retry shortly.", requestId));
            return true;
        }
        return false;
    }

    private void OnPut(Put m)
    {
        if (RefuseWrite(m.RequestId) || !Validate(m.Key, m.Value, m.Ttl, m.RequestId, out var keyBytes, out var expiry))
        {
            return;
        }
        if (_settings.WriteBackEnabled && WriteBackBuffer.CostOf(m.Key, m.Value) > _settings.EffectiveMaxDirtyBytes)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.ValueTooLarge,
                $"Value of '{m.Key}' ({m.Value.Length} bytes) can never fit the write-back buffer (crabkv.write-back.max-dirty-bytes = {_settings.EffectiveMaxDirtyBytes}); raise that limit.", m.RequestId));
            return;
        }
        _puts++;
        if (_settings.WriteBackEnabled)
        {
            _cache.Tell(new BufferWrite(m.Key, m.Value, expiry, false, Sender, m.RequestId));
            return;
        }
        var seq = ++_seq;
        Track(new PendingWrite(seq, [m.Key], [keyBytes], [false], [expiry], 0, keyBytes.Length + m.Value.Length, Sender, m.RequestId));
        _inFlight[m.Key] = new InFlight(m.Value, expiry, seq);
        _writer.Tell(new WalAppend(seq, [new WalRecord(keyBytes, RecordFlags.None, expiry, m.Value)], Sender, new PutOk(m.RequestId)));
    }

    private void OnDelete(Delete m)
    {
        if (RefuseWrite(m.RequestId) || !ValidateKey(m.Key, m.RequestId, out var keyBytes))
        {
            return;
        }
        _deletes++;
        var now = Now;
        var onDisk = _keys.TryGet(keyBytes, out var loc);
        bool existed;
        if (_inFlight.TryGetValue(m.Key, out var f))
        {
            existed = f.Value is not null && (f.Expiry == 0 || f.Expiry > now);
        }
        else
        {
            existed = onDisk && !loc.IsExpiredAt(now);
        }
        if (_settings.WriteBackEnabled)
        {
            _cache.Tell(new BufferWrite(m.Key, null, 0, existed, Sender, m.RequestId));
            return;
        }
        if (!onDisk && !_inFlight.ContainsKey(m.Key))
        {
            Sender.Tell(new DeleteOk(false, m.RequestId)); // nothing on disk or in flight to hide
            return;
        }
        var seq = ++_seq;
        Track(new PendingWrite(seq, [m.Key], [keyBytes], [true], [0], 0, keyBytes.Length, Sender, m.RequestId));
        _inFlight[m.Key] = new InFlight(null, 0, seq);
        _writer.Tell(new WalAppend(seq, [new WalRecord(keyBytes, RecordFlags.Tombstone, 0, null)], Sender, new DeleteOk(existed, m.RequestId)));
    }

    private void OnPutBatch(PutBatch m)
    {
        if (RefuseWrite(m.RequestId))
        {
            return;
        }
        if (m.Entries is null || m.Entries.Count == 0)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.InvalidRequest, "A batch needs at least one entry.", m.RequestId));
            return;
        }
        var n = m.Entries.Count;
        var keys = new string[n];
        var keyBytes = new byte[n][];
        var expiries = new long[n];
        var tombstones = new bool[n];
        long bytes = 0;
        for (var i = 0; i < n; i++)
        {
            var e = m.Entries[i];
            if (e is null)
            {
                Sender.Tell(new CrabKvError(CrabKvErrorCode.InvalidRequest, $"Batch entry {i} is null; nothing was written.", m.RequestId));
                return;
            }
            if (e.Value is null ? !ValidateKey(e.Key, m.RequestId, out keyBytes[i]) : !Validate(e.Key, e.Value, e.Ttl, m.RequestId, out keyBytes[i], out expiries[i]))
            {
                return; // the error names the key; nothing was written
            }
            keys[i] = e.Key;
            tombstones[i] = e.Value is null;
            bytes += keyBytes[i].Length + (e.Value?.Length ?? 0);
        }
        if (m.Entries.Sum(e => (long)FormatConstants.RecordHeaderSize + Encoding.UTF8.GetByteCount(e.Key) + (e.Value?.Length ?? 0)) > _settings.SegmentMaxBytes - FormatConstants.FileHeaderSize)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.ValueTooLarge,
                $"The batch is larger than one segment (crabkv.segment.max-bytes = {_settings.SegmentMaxBytes}); a batch is never split across segments. Nothing was written.", m.RequestId));
            return;
        }
        if (_settings.WriteBackEnabled && m.Entries.Sum(e => WriteBackBuffer.CostOf(e.Key, e.Value)) > _settings.EffectiveMaxDirtyBytes)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.ValueTooLarge,
                $"The batch can never fit the write-back buffer (crabkv.write-back.max-dirty-bytes = {_settings.EffectiveMaxDirtyBytes}); split it or raise that limit. Nothing was written.", m.RequestId));
            return;
        }
        _puts += n;
        if (_settings.WriteBackEnabled)
        {
            _cache.Tell(new BufferBatch(m.Entries.Select((e, i) => (e.Key, e.Value, expiries[i])).ToArray(), Sender, m.RequestId));
            return;
        }
        var seq = ++_seq;
        var records = new WalRecord[n];
        for (var i = 0; i < n; i++)
        {
            var flags = (tombstones[i] ? RecordFlags.Tombstone : RecordFlags.None) | RecordFlags.InBatch | (i == n - 1 ? RecordFlags.BatchEnd : 0);
            records[i] = new WalRecord(keyBytes[i], flags, expiries[i], m.Entries[i].Value);
            _inFlight[keys[i]] = new InFlight(m.Entries[i].Value, expiries[i], seq);
        }
        Track(new PendingWrite(seq, keys, keyBytes, tombstones, expiries, 0, bytes, Sender, m.RequestId));
        _writer.Tell(new WalAppend(seq, records, Sender, new PutBatchOk(n, m.RequestId)));
    }

    private void OnFlush(Flush m)
    {
        if (_stopStarted)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.ShuttingDown, "The store is shutting down; its stop flushes everything.", m.RequestId));
            return;
        }
        if (_readOnlyReason is not null)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed, $"Partition {_partition} is read-only after a failure: {_readOnlyReason}", m.RequestId));
            return;
        }
        if (_settings.WriteBackEnabled)
        {
            _cache.Tell(new FlushDirty(Sender, m.RequestId));
        }
        else
        {
            _writer.Tell(new WalSync(Sender, new FlushOk(m.RequestId)));
        }
    }

    /// <summary>The cache drained its dirty entries: write them as one atomic batch (TTLs kept), then index them on ack.</summary>
    private void OnFlushBatch(FlushBatch m)
    {
        var entries = new List<(string Key, byte[] KeyBytes, DirtyEntry Entry)>(m.Entries.Length);
        foreach (var (key, entry) in m.Entries)
        {
            var kb = Encoding.UTF8.GetBytes(key);
            if (entry.IsDelete && !_keys.TryGet(kb, out _) && !_inFlight.ContainsKey(key))
            {
                continue; // a buffered delete of a key that never reached the disk
            }
            entries.Add((key, kb, entry));
        }
        if (entries.Count > 0 && _readOnlyReason is null)
        {
            var seq = ++_seq;
            var n = entries.Count;
            var records = new WalRecord[n];
            long bytes = 0;
            for (var i = 0; i < n; i++)
            {
                var (key, kb, entry) = entries[i];
                var flags = (entry.IsDelete ? RecordFlags.Tombstone : RecordFlags.None) | RecordFlags.InBatch | (i == n - 1 ? RecordFlags.BatchEnd : 0);
                records[i] = new WalRecord(kb, flags, entry.Expiry, entry.Value);
                _inFlight[key] = new InFlight(entry.Value, entry.Expiry, seq);
                bytes += kb.Length + (entry.Value?.Length ?? 0);
            }
            Track(new PendingWrite(seq, entries.Select(e => e.Key).ToArray(), entries.Select(e => e.KeyBytes).ToArray(),
                entries.Select(e => e.Entry.IsDelete).ToArray(), entries.Select(e => e.Entry.Expiry).ToArray(), m.FlushId, bytes));
            _writer.Tell(new WalAppend(seq, records, null, null));
        }
        else if (m.Entries.Length > 0)
        {
            _cache.Tell(new FlushIndexed(m.FlushId));
        }
        if (m.ReplyTo is not null)
        {
            _writer.Tell(new WalSync(m.ReplyTo, new FlushOk(m.RequestId)));
        }
        if (m.ForCompact)
        {
            _writer.Tell(WalRoll.Instance); // after the flushed entries: they are merged too
        }
        if (m.ForStop)
        {
            _writer.Tell(WalClose.Instance);
        }
    }

    private void Track(PendingWrite p)
    {
        _pending.Enqueue(p);
        _inFlightBytes += p.Bytes;
    }

    private void OnAcks(WalAcks m)
    {
        _fsyncs = Math.Max(_fsyncs, m.Fsyncs);
        _walWrites = m.Writes;
        var now = Now;
        foreach (var item in m.Items)
        {
            if (!_pending.TryDequeue(out var p) || p.Seq != item.Seq)
            {
                _log.Error("Partition {0}: acknowledgement {1} does not match the pending write {2}", _partition, item.Seq, p?.Seq);
                continue;
            }
            _inFlightBytes -= p.Bytes;
            for (var i = 0; i < p.Keys.Length; i++)
            {
                var loc = new KeyLocation(item.Segment, item.Offsets[i], item.Sizes[i], p.Expiries[i]);
                StoreRecovery.Apply(_keys, _usage, p.KeyBytes[i], loc, p.Tombstones[i], now);
                if (_inFlight.TryGetValue(p.Keys[i], out var f) && f.Seq == p.Seq)
                {
                    _inFlight.Remove(p.Keys[i]);
                }
            }
            if (p.FlushId != 0)
            {
                _cache.Tell(new FlushIndexed(p.FlushId));
            }
        }
    }

    private void OnWalFailed(WalFailed m)
    {
        // The writer has answered the failed requests itself.
        GoReadOnly($"the write-ahead log failed: {m.Reason}", dropPending: true, answerPending: false);
    }

    private void GoReadOnly(string reason, bool dropPending, bool answerPending)
    {
        if (_readOnlyReason is null)
        {
            _readOnlyReason = reason;
            _log.Error("Partition {0} is read-only: {1}", _partition, reason);
            Context.System.EventStream.Publish(new PartitionFailed(_partition, reason));
        }
        // Writes the writer will never acknowledge are not served from memory any more.
        while (dropPending && _pending.TryDequeue(out var p))
        {
            _inFlightBytes -= p.Bytes;
            if (answerPending && p.ReplyTo is not null)
            {
                p.ReplyTo.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed, $"Write failed: {reason}", p.RequestId));
            }
            foreach (var key in p.Keys)
            {
                if (_inFlight.TryGetValue(key, out var f) && f.Seq == p.Seq)
                {
                    _inFlight.Remove(key);
                }
            }
        }
        ContinueStopIfWaiting();
    }

    private void ChildDied(Terminated t)
    {
        var reason = $"child {t.ActorRef.Path.Name} stopped unexpectedly";
        if (t.ActorRef.Equals(_writer))
        {
            _writerDead = true;
            if (_rollRequested)
            {
                _rollRequested = false;
                FailWaiters(_compactWaiters, CrabKvErrorCode.StoreFailed, $"Compaction impossible: {reason}.");
            }
            if (_stopping)
            {
                GoReadOnly(reason, dropPending: true, answerPending: true);
                Drain();
                return;
            }
            GoReadOnly(reason, dropPending: true, answerPending: true);
            return;
        }
        if (t.ActorRef.Equals(_cache))
        {
            _cacheDead = true;
            foreach (var list in _awaitingDelete.ToList())
            {
                ForgetRelease(list, leftover: true); // never released: they stay on disk
            }
            if (_draining)
            {
                FinishStop();
                return;
            }
            GoReadOnly(reason, dropPending: false, answerPending: false);
            return;
        }
        if (t.ActorRef.Equals(_compactor))
        {
            // Compaction stops; reads and writes go on.
            _compactorDead = true;
            _log.Error("Partition {0}: {1}; compaction is off until the store restarts", _partition, reason);
            foreach (var list in _awaitingDelete.ToList())
            {
                ForgetRelease(list, leftover: true);
            }
            if (_merge is not null)
            {
                _merge = null;
                _mergeAgain = false;
                FinishMerge(null, $"Compaction failed: {reason}.");
            }
        }
    }

    // ------------------------------------------------------------------ reads

    private void OnGet(Get m)
    {
        if (_draining)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.ShuttingDown, "The store is shutting down.", m.RequestId));
            return;
        }
        if (!ValidateKey(m.Key, m.RequestId, out var keyBytes))
        {
            return;
        }
        _gets++;
        var now = Now;
        InFlightValue? inFlight = _inFlight.TryGetValue(m.Key, out var f) ? new InFlightValue(f.Value, f.Expiry) : null;
        if (!_settings.WriteBackEnabled && inFlight is { } v)
        {
            var live = v.Value is not null && (v.Expiry == 0 || v.Expiry > now);
            Sender.Tell(new GetResult(m.Key, live, live ? v.Value : null, m.RequestId));
            return;
        }
        KeyLocation? location = null;
        Segment? segment = null;
        if (_keys.TryGet(keyBytes, out var loc))
        {
            if (loc.IsExpiredAt(now))
            {
                _keys.Remove(keyBytes, out _);
                _usage.Kill(loc.Segment, loc.Size);
            }
            else if (_segments.TryGetValue(loc.Segment, out segment))
            {
                location = loc;
            }
        }
        if (!_settings.WriteBackEnabled && location is null)
        {
            Sender.Tell(new GetResult(m.Key, false, null, m.RequestId));
            return;
        }
        if (_cacheDead)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed, $"Partition {_partition} cannot read: its cache actor stopped.", m.RequestId));
            return;
        }
        _cache.Tell(new ReadRecord(m.Key, keyBytes, location, segment, inFlight, Sender, m.RequestId));
    }

    // ------------------------------------------------------------------ segments and compaction

    private void OnSealed(SegmentSealed m)
    {
        if (_segments.TryGetValue(m.Id, out var reader))
        {
            if (m.Length == 0)
            {
                _segments.Remove(m.Id);
                reader.Dispose();
            }
            else
            {
                reader.UpdateLength(m.Length);
            }
        }
        if (_settings.AutoCompaction && _merge is null && !_rollRequested && !_stopping && !_compactorDead && _readOnlyReason is null)
        {
            var active = _active;
            var (total, stale) = _usage.Sum(id => id != active && _segments.ContainsKey(id));
            if (CompactionPolicy.ShouldCompact(_settings.Compaction, total, stale))
            {
                _log.Info("Partition {0}: {1} of {2} sealed bytes are stale; compacting", _partition, stale, total);
                StartMerge();
            }
        }
    }

    private void OnCompact(IActorRef replyTo, long requestId, bool shutdown)
    {
        if (_readOnlyReason is not null)
        {
            replyTo.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed, $"Partition {_partition} is read-only after a failure: {_readOnlyReason}", requestId));
            return;
        }
        if (_stopping)
        {
            replyTo.Tell(new CrabKvError(CrabKvErrorCode.ShuttingDown, "The store is shutting down.", requestId));
            return;
        }
        if (_compactorDead)
        {
            replyTo.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed, $"Partition {_partition} cannot compact: its compactor stopped.", requestId));
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
            FailWaiters(_compactWaiters, CrabKvErrorCode.StoreFailed, $"Compaction impossible: {_readOnlyReason ?? "the compactor stopped"}.");
            ContinueStopIfWaiting();
            return;
        }
        if (_merge is not null)
        {
            _mergeAgain = true; // the running merge started before this roll: it would miss the sealed segment
            return;
        }
        StartMerge();
    }

    /// <summary>Starts a merge of every sealed segment; the Compact requests waiting so far are answered by it.</summary>
    private void StartMerge()
    {
        if (_merge is not null)
        {
            return;
        }
        _currentWaiters.AddRange(_compactWaiters);
        _compactWaiters.Clear();
        var active = _active;
        var inputs = _segments.Where(kv => kv.Key != active && kv.Value.Length > FormatConstants.FileHeaderSize).Select(kv => kv.Value).ToList();
        if (inputs.Count == 0 || (inputs.Count == 1 && inputs[0].Id.Sub > 0 && _leftoverInputs.Count == 0
            && _usage.Of(inputs[0].Id) is var u && u.Total == u.Live))
        {
            // Nothing to gain: merging one clean merge output again would only burn a segment id.
            FinishMerge(new CompactOk(0, 0, 0, TimeSpan.Zero, 0), null);
            return;
        }
        // Inputs of an earlier merge that could not be deleted are older segments still on
        // disk: tombstones must be kept while they exist. Their deletion is retried first.
        var olderExist = _leftoverInputs.Count > 0;
        if (olderExist)
        {
            _compactor.Tell(new DeleteSegments(_directory, _leftoverInputs.ToList(), IsRetry: true));
            _leftoverInputs.Clear();
        }
        _merge = new MergeRequest(_directory, inputs, olderExist, Now, _settings.SegmentMaxBytes);
        _mergeProgress = 0;
        _compactor.Tell(new RunMerge(_merge));
    }

    private void OnMergeDone(MergeDone m)
    {
        _merge = null;
        var inputs = m.Request.Inputs;
        Merger.ApplyRelocations(_keys, _usage, inputs.Select(s => s.Id), m.Merged);
        foreach (var s in inputs)
        {
            _segments.Remove(s.Id);
        }
        foreach (var o in m.Merged.Outputs)
        {
            _segments[o.Id] = o;
        }
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
        FinishMerge(new CompactOk(m.Merged.BytesBefore, m.Merged.BytesAfter, inputs.Count, m.Merged.Duration, 0), null);
    }

    /// <summary>A merge ended (result, or error text): answer its waiters, merge again if a roll came meanwhile, continue a stop.</summary>
    private void FinishMerge(CompactOk? result, string? error)
    {
        _mergeProgress = 1;
        if (result is not null)
        {
            _lastCompaction = (result.BytesBefore, result.BytesAfter, result.SegmentsMerged, result.Duration);
            Context.System.EventStream.Publish(new CompactionCompleted(_partition, result.BytesBefore, result.BytesAfter, result.SegmentsMerged, result.Duration));
        }
        var shutdown = _currentWaiters.Any(w => w.Shutdown);
        foreach (var (to, id, _) in _currentWaiters)
        {
            to.Tell(result is not null ? result with { RequestId = id } : new CrabKvError(CrabKvErrorCode.StoreFailed, error!, id));
        }
        _currentWaiters.Clear();
        if (_mergeAgain && !_compactorDead)
        {
            _mergeAgain = false;
            StartMerge();
            return;
        }
        _mergeAgain = false;
        if (shutdown && !_stopping)
        {
            BeginStop(null);
            return;
        }
        ContinueStopIfWaiting();
    }

    private void ForgetRelease(IReadOnlyList<Segment> segments, bool leftover)
    {
        if (_awaitingDelete.Remove(segments) && leftover)
        {
            _leftoverInputs.AddRange(segments);
        }
        ContinueStopIfWaiting();
    }

    private static void FailWaiters(List<(IActorRef To, long RequestId, bool Shutdown)> waiters, CrabKvErrorCode code, string message)
    {
        foreach (var (to, id, _) in waiters)
        {
            to.Tell(new CrabKvError(code, message, id));
        }
        waiters.Clear();
    }

    private void Sweep()
    {
        var expired = _keys.RemoveExpired(Now, 100_000);
        foreach (var (_, loc) in expired)
        {
            _usage.Kill(loc.Segment, loc.Size);
        }
        _expiredSwept += expired.Count;
    }

    // ------------------------------------------------------------------ graceful stop

    private bool _stopStarted;

    private void BeginStop(IActorRef? requester)
    {
        if (requester is not null && !requester.IsNobody())
        {
            _stopWaiters.Add(requester);
        }
        _stopping = true;
        ContinueStopIfWaiting();
    }

    private void ContinueStopIfWaiting()
    {
        if (!_stopping || _stopStarted || _merge is not null || _rollRequested || _awaitingDelete.Count > 0)
        {
            return;
        }
        _stopStarted = true;
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
        if (_draining)
        {
            return;
        }
        _draining = true;
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

    protected override void PostStop()
    {
        foreach (var s in _segments.Values)
        {
            s.Dispose();
        }
        _segments.Clear();
    }

    // ------------------------------------------------------------------ validation and stats

    private bool ValidateKey(string key, long requestId, out byte[] keyBytes)
    {
        keyBytes = [];
        var count = string.IsNullOrEmpty(key) ? 0 : KeyRules.ByteCount(key);
        var error = count switch
        {
            0 => new CrabKvError(CrabKvErrorCode.EmptyKey, KeyRules.EmptyMessage, requestId),
            < 0 => new CrabKvError(CrabKvErrorCode.InvalidRequest, KeyRules.NotTextMessage, requestId),
            _ when count > _settings.MaxKeyBytes => new CrabKvError(CrabKvErrorCode.KeyTooLarge,
                KeyRules.TooLargeMessage(count, "crabkv.limits.max-key-bytes", _settings.MaxKeyBytes), requestId),
            _ => null,
        };
        if (error is not null)
        {
            Sender.Tell(error);
            return false;
        }
        keyBytes = KeyRules.Utf8.GetBytes(key);
        return true;
    }

    private bool Validate(string key, byte[] value, TimeSpan? ttl, long requestId, out byte[] keyBytes, out long expiry)
    {
        expiry = 0;
        if (!ValidateKey(key, requestId, out keyBytes))
        {
            return false;
        }
        if (value is null)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.InvalidRequest, $"Value of '{key}' is null.", requestId));
            return false;
        }
        if (value.Length > _settings.MaxValueBytes)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.ValueTooLarge, $"Value of '{key}' is {value.Length} bytes; the limit (crabkv.limits.max-value-bytes) is {_settings.MaxValueBytes}.", requestId));
            return false;
        }
        var t = ttl ?? _settings.DefaultTtl;
        if (t is { } span)
        {
            if (span <= TimeSpan.Zero)
            {
                Sender.Tell(new CrabKvError(CrabKvErrorCode.InvalidRequest, $"TTL of '{key}' must be positive, got {span}.", requestId));
                return false;
            }
            expiry = Now + (long)Math.Ceiling(span.TotalMilliseconds);
        }
        return true;
    }

    private void ReplyError(object message, CrabKvErrorCode code, string text)
    {
        if (Sender.IsNobody() || Sender.Equals(Context.System.DeadLetters))
        {
            return;
        }
        Sender.Tell(new CrabKvError(code, text, message is ICrabKvRequest r ? r.RequestId : 0));
    }

    private PartitionStats BaseStats()
    {
        var (total, stale) = _usage.Sum(_ => true);
        return new PartitionStats(_partition, _keys.Count, _segments.Count, total, stale, _puts, _gets, _deletes, _fsyncs, _walWrites,
            0, 0, 0, 0, 0, _compactions, _merge is null ? 1 : _mergeProgress, _lastCompaction.Before, _lastCompaction.After,
            _lastCompaction.Duration, _expiredSwept, _readOnlyReason is not null, _readOnlyReason);
    }
}
