using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Diagnostics;
using CrabKv.Storage.Format;
using CrabKv.Storage.Index;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Recovery;
using CrabKv.Storage.Segments;

namespace CrabKv.Actors.Wal;

/// <summary>
/// Owns the partition directory's lock and its active segment (an <see cref="ActiveLog"/>,
/// which holds the rules for compressing, framing and rolling). Runs on the I/O dispatcher.
/// Recovers the directory at start and hands the index to its parent.
///
/// Group commit: each <see cref="WalAppend"/> is encoded into the append buffer and a
/// <c>FlushNow</c> is sent to self once per round. Mailboxes are FIFO, so FlushNow arrives
/// after every append already waiting: the round is written with one write call, fsynced once
/// when <c>sync-interval = 0</c> (write and fsync are one <c>pwritev2(RWF_DSYNC)</c> inside the
/// segment's synced, zero-filled region: <see cref="SegmentWriter.Sync"/>), and only then acknowledged. Appends that arrive during the
/// fsync form the next round. With a positive interval the round is acknowledged after the
/// write and a <c>SyncTick</c> timer, armed when the first unsynced write happens (never
/// re-armed by later writes), fsyncs.
///
/// <code>
///   Recovering ──recovered──▶ Writing ──I/O error──▶ Failed (every request answered StoreFailed)
///                               │ WalClose
///                               ▼
///                             Closed (appends answered ShuttingDown)
/// </code>
/// </summary>
internal sealed class WalWriterActor : ReceiveActor, IWithTimers
{
    private sealed class FlushNow
    {
        public static readonly FlushNow Instance = new();
    }

    private sealed class SyncTick : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly SyncTick Instance = new();
    }

    private readonly string _directory;
    private readonly int _partition;
    private readonly CrabKvSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private DirectoryLock? _lock;
    private ActiveLog? _wal;
    private bool _flushScheduled;
    private readonly List<WalAppended> _round = new();
    private readonly List<(IActorRef To, object Reply)> _replies = new();
    private readonly List<long> _roundSeqs = new();

    /// <summary>Where the round's first record starts in the active segment (null: no round open); a failed round is cut back to it.</summary>
    private long? _roundStart;
    private long _writes;
    private long _recordsSinceSync; // written since the last fsync: the next one's group-commit size
    private string? _failure;

    public WalWriterActor(string directory, int partition, CrabKvSettings settings)
    {
        _directory = directory;
        _partition = partition;
        _settings = settings;
        Writing();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(string directory, int partition, CrabKvSettings settings) =>
        Akka.Actor.Props.Create(() => new WalWriterActor(directory, partition, settings)).WithDispatcher(settings.IoDispatcher);

    private long Fsyncs => _wal?.SyncCount ?? 0;

    private ActiveLog Wal => _wal!;

    protected override void PreStart()
    {
        try
        {
            _lock = DirectoryLock.Acquire(_settings.Files, _directory);
            var state = StoreRecovery.Load(_settings.Files, _directory, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), m => _log.Warning("Partition {0}: {1}", _partition, m));
            try
            {
                _wal = new ActiveLog(_settings.Files, _directory, state.NextSequence, _settings.ToLogSettings());
            }
            catch
            {
                state.Index.Dispose();
                throw;
            }
            Context.Parent.Tell(new WalRecovered(state));
            AnnounceActive(); // after WalRecovered: the partition indexes it as its active segment
        }
        catch (Exception e)
        {
            _log.Error(e, "Partition {0}: opening '{1}' failed", _partition, _directory);
            _failure = e.Message;
            _lock?.Dispose();
            _lock = null;
            Context.Parent.Tell(new WalRecoveryFailed(e));
            Become(Failed);
        }
    }

    protected override void PostStop()
    {
        // Graceful or not, bytes already accepted are handed to the OS and the segment sealed.
        try
        {
            if (_failure is null && _wal is not null)
            {
                CompleteRound();
                CloseLog();
            }
        }
        catch (Exception e)
        {
            _log.Error(e, "Partition {0}: closing the active segment failed", _partition);
        }
        finally
        {
            _wal?.Abandon();
            _lock?.Dispose();
        }
    }

    private void Writing()
    {
        Receive<WalAppend>(Append);
        Receive<FlushNow>(_ =>
        {
            _flushScheduled = false;
            Guard(CompleteRound);
        });
        Receive<SyncTick>(_ => Guard(() =>
        {
            Sync();
            Context.Parent.Tell(new WalSynced(Fsyncs));
            Context.System.EventStream.Publish(new TimerSyncCompleted(_partition, Fsyncs));
        }));
        Receive<WalSync>(m =>
        {
            var ok = false;
            Guard(() =>
            {
                CompleteRound();
                Sync();
                ok = true;
            });
            if (ok)
            {
                Context.Parent.Tell(new WalSynced(Fsyncs));
                m.ReplyTo.Tell(m.Reply);
            }
            else
            {
                CrabKvMetrics.Error(OperationKind.Flush, CrabKvErrorCode.StoreFailed);
                m.ReplyTo.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed, $"Flush failed: {_failure}", RequestIdOf(m.Reply)));
            }
        });
        Receive<WalRoll>(_ =>
        {
            try
            {
                Guard(() =>
                {
                    if (Wal.Writer.Length > FormatConstants.FileHeaderSize)
                    {
                        Roll();
                    }
                });
            }
            finally
            {
                Context.Parent.Tell(WalRolled.Instance); // always answered: the partition waits for it
            }
        });
        Receive<WalClose>(_ => Guard(() =>
        {
            CompleteRound();
            CloseLog();
            Sender.Tell(WalClosed.Instance);
            Become(Closed);
        }));
    }

    private void Closed()
    {
        Receive<WalAppend>(m => Reject(m, CrabKvErrorCode.ShuttingDown, "The store is shutting down."));
        Receive<WalSync>(m => ReplyError(m.ReplyTo, m.Reply, CrabKvErrorCode.ShuttingDown, "The store is shutting down."));
        Receive<WalRoll>(_ => Sender.Tell(WalRolled.Instance));
        Receive<WalClose>(_ => Sender.Tell(WalClosed.Instance));
        ReceiveAny(_ => { });
    }

    private void Failed()
    {
        Receive<WalAppend>(m => Reject(m, CrabKvErrorCode.StoreFailed, $"The partition failed and is read-only: {_failure}"));
        Receive<WalSync>(m => ReplyError(m.ReplyTo, m.Reply, CrabKvErrorCode.StoreFailed, $"The partition failed and is read-only: {_failure}"));
        Receive<WalClose>(_ => Sender.Tell(WalClosed.Instance));
        Receive<WalRoll>(_ => Sender.Tell(WalRolled.Instance));
        ReceiveAny(_ => { });
    }

    private void Reject(WalAppend m, CrabKvErrorCode code, string message)
    {
        ReplyError(m.ReplyTo, m.Reply, code, message);
        Context.Parent.Tell(new WalFailed([m.Seq], message));
    }

    /// <summary>Answers the client of a write (if it has one) with an error in place of <paramref name="reply"/>, counted by the request's kind.</summary>
    private static void ReplyError(IActorRef? replyTo, object? reply, CrabKvErrorCode code, string message)
    {
        if (replyTo is null)
        {
            return; // a write-back flush: no client waits for it
        }
        CrabKvMetrics.Error(CrabKvMetrics.KindOfReply(reply), code);
        replyTo.Tell(new CrabKvError(code, message, RequestIdOf(reply)));
    }

    /// <summary>fsyncs the log, timed; the records written since the last fsync are its group commit.</summary>
    private void Sync()
    {
        var before = Wal.SyncCount;
        var started = Stopwatch.GetTimestamp();
        Wal.Sync();
        var elapsed = Stopwatch.GetElapsedTime(started);
        Synced(Wal.SyncCount - before, elapsed);
    }

    /// <summary>Records <paramref name="count"/> fsyncs (a Sync, or the seal of a roll or close: counted, not timed).</summary>
    private void Synced(long count, TimeSpan? elapsed)
    {
        if (count <= 0)
        {
            return;
        }
        CrabKvMetrics.Fsynced(count, elapsed, _recordsSinceSync);
        _recordsSinceSync = 0;
    }

    private static long RequestIdOf(object? reply) => reply is ICrabKvReply r ? r.RequestId : 0;

    private void Append(WalAppend m)
    {
        Guard(current: m, action: () =>
        {
            // Compression is CPU work done here, off the partition.
            var stored = new (RecordFlags Flags, byte[] Stored)[m.Records.Length];
            for (var i = 0; i < stored.Length; i++)
            {
                stored[i] = Wal.Prepare(m.Records[i].Value);
            }
            if (Wal.NeedsRoll(ActiveLog.SizeOf(m.Records, stored)))
            {
                Roll();
            }
            var offsets = new uint[m.Records.Length];
            var sizes = new uint[m.Records.Length];
            _roundStart ??= Wal.Writer.Length; // a full buffer may write the round's first records before its end
            var segment = Wal.Append(m.Records, stored, m.IsBatch, offsets, sizes);
            _recordsSinceSync += m.Records.Length;
            _round.Add(new WalAppended(m.Seq, segment, offsets, sizes));
            _roundSeqs.Add(m.Seq);
            if (m.ReplyTo is not null && m.Reply is not null)
            {
                _replies.Add((m.ReplyTo, m.Reply));
            }
            if (!_flushScheduled)
            {
                _flushScheduled = true;
                Self.Tell(FlushNow.Instance);
            }
        });
    }

    /// <summary>Writes the round with one call, fsyncs when the mode says so, then acknowledges.</summary>
    private void CompleteRound()
    {
        if (_round.Count == 0)
        {
            return;
        }
        _writes++;
        if (_settings.SyncInterval == TimeSpan.Zero)
        {
            Sync(); // the round's write and its fsync: one durable write where the segment allows it
        }
        else
        {
            Wal.Flush();
            if (!Timers.IsTimerActive(SyncTick.Instance))
            {
                Timers.StartSingleTimer(SyncTick.Instance, SyncTick.Instance, _settings.SyncInterval);
            }
        }
        foreach (var (to, reply) in _replies)
        {
            to.Tell(reply);
        }
        Context.Parent.Tell(new WalAcks(_round.ToArray(), Fsyncs, _writes));
        _roundStart = null;
        _round.Clear();
        _replies.Clear();
        _roundSeqs.Clear();
    }

    /// <summary>Acknowledges the round, seals the segment (acks first, so the partition indexes them before it may merge the segment), starts the next.</summary>
    private void Roll()
    {
        CompleteRound();
        var syncs = Wal.SyncCount;
        var sealedSegment = Wal.Roll();
        Synced(Wal.SyncCount - syncs, null);
        sealedSegment.Segment?.Dispose(); // the partition reads through its own handle
        Context.Parent.Tell(new SegmentSealed(sealedSegment.Id, sealedSegment.Length));
        AnnounceActive();
    }

    private void CloseLog()
    {
        var syncs = Wal.SyncCount;
        var sealedSegment = Wal.Close();
        Synced(Wal.SyncCount - syncs, null);
        sealedSegment.Segment?.Dispose();
        _wal = null;
        Context.Parent.Tell(new SegmentSealed(sealedSegment.Id, sealedSegment.Length));
    }

    private void AnnounceActive() =>
        Context.Parent.Tell(new ActiveSegmentStarted(Segment.OpenReader(_settings.Files, Wal.ActiveId, Wal.Writer.Segment.Path)));

    /// <summary>Runs file work; an I/O failure fails every unacknowledged append and turns the writer read-only.</summary>
    private void Guard(Action action, WalAppend? current = null)
    {
        try
        {
            action();
        }
        catch (Exception e) // any failure: every unacknowledged request is answered, then Failed
        {
            _failure = e.Message;
            _log.Error(e, "Partition {0}: write-ahead log failed; the partition is read-only from now on", _partition);
            foreach (var (to, reply) in _replies)
            {
                ReplyError(to, reply, CrabKvErrorCode.StoreFailed, $"Write failed: {e.Message}");
            }
            // Every write of the round is answered as failed: none of its bytes may come back at
            // the next open (an earlier flush of a full buffer may have written its first records,
            // and a failed fsync leaves the round's bytes in the page cache).
            if (_roundStart is { } start)
            {
                try
                {
                    _wal?.Writer.CutBack(start);
                }
                catch (Exception cut) when (cut is IOException or InvalidOperationException)
                {
                    _log.Warning("Partition {0}: could not cut the failed round off the log: {1}", _partition, cut.Message);
                }
                _roundStart = null;
            }
            var failed = _roundSeqs.ToList();
            if (current is not null && !failed.Contains(current.Seq))
            {
                ReplyError(current.ReplyTo, current.Reply, CrabKvErrorCode.StoreFailed, $"Write failed: {e.Message}");
                failed.Add(current.Seq);
            }
            Context.Parent.Tell(new WalFailed(failed.ToArray(), e.Message));
            _round.Clear();
            _replies.Clear();
            _roundSeqs.Clear();
            Become(Failed);
        }
    }
}
