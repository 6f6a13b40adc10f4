using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Diagnostics;
using CrabKv.Storage;
using CrabKv.Storage.Caches;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Index;

namespace CrabKv.Actors.Cache;

/// <summary>
/// Holds the partition's write-back buffer and LRU read cache, and serves reads: every read
/// with write-back on, and with it off only the reads the partition cannot answer in place
/// (records it cannot read through a segment mapping: they take a positional read here, off
/// the partition actor).
///
/// Read order: dirty buffer → entries of flushes not yet indexed → the partition's in-flight
/// value → LRU (valid only for the same record location) → positional read of the record,
/// verified and decompressed. The partition forwards every Get here after every earlier
/// write of the same client (mailboxes are FIFO per sender), so reads see their writes.
///
/// Write-back flushes: on <see cref="FlushDirty"/>, on a <c>flush-interval</c> timer, when
/// the dirty bytes pass half of <c>max-dirty-bytes</c>, and on graceful stop. A write that
/// would pass the limit is refused with WriteBackBufferFull (and a flush starts). A stop
/// without the graceful path (Context.Stop / PoisonPill of the partition) drops the dirty
/// entries, as a crash would: tests use that to simulate one.
/// </summary>
internal sealed class CacheActor : ReceiveActor, IWithTimers
{
    private sealed class FlushTick : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly FlushTick Instance = new();
    }

    private readonly CrabKvSettings _settings;
    private readonly LruCache _lru;
    private readonly WriteBackBuffer? _dirty;
    private readonly DirtyBytesSource? _dirtyMetric; // the buffer's bytes as the meter reads them
    private readonly Dictionary<string, (PendingValue Entry, long FlushId)> _flushing = new(StringComparer.Ordinal);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private long _nextFlushId;
    private long _flushesInFlight;
    private long _flushes;
    private byte[] _scratch = new byte[4096];

    public CacheActor(CrabKvSettings settings)
    {
        _settings = settings;
        _lru = new LruCache(settings.CacheMaxEntries, settings.CacheMaxBytes);
        _dirty = settings.WriteBackEnabled ? new WriteBackBuffer(settings.EffectiveMaxDirtyBytes) : null;
        _dirtyMetric = _dirty is null ? null : DirtyBytesSource.Register();

        Receive<ReadRecord>(Read);
        Receive<BufferWrite>(Buffer);
        Receive<BufferBatch>(BufferMany);
        Receive<FlushDirty>(m => StartFlush(m.ReplyTo, m.RequestId, m.ForStop, m.ForCompact));
        Receive<DrainCache>(_ => Sender.Tell(CacheDrained.Instance));
        Receive<FlushTick>(_ =>
        {
            if (_dirty is { Count: > 0 })
            {
                StartFlush(null, 0, false, false);
            }
        });
        Receive<FlushIndexed>(m =>
        {
            _flushesInFlight = Math.Max(0, _flushesInFlight - 1);
            foreach (var key in _flushing.Where(kv => kv.Value.FlushId == m.FlushId).Select(kv => kv.Key).ToList())
            {
                _flushing.Remove(key);
            }
        });
        Receive<ReleaseSegments>(m => Sender.Tell(new SegmentsReleased(m.Segments)));
        Receive<CollectStats>(m => m.ReplyTo.Tell(new StoreStats([m.Partial with
        {
            CacheHits = _lru.Hits,
            CacheMisses = _lru.Misses,
            DirtyBytes = _dirty?.DirtyBytes ?? 0,
            DirtyKeys = (_dirty?.Count ?? 0) + _flushing.Count,
            Flushes = _flushes,
            CacheEntries = _lru.Count,
            CacheBytes = _lru.Bytes,
        }], [m.Node], m.RequestId)));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(CrabKvSettings settings) => Akka.Actor.Props.Create(() => new CacheActor(settings));

    protected override void PreStart()
    {
        if (_dirty is not null)
        {
            Timers.StartPeriodicTimer(FlushTick.Instance, FlushTick.Instance, _settings.FlushInterval);
        }
    }

    /// <summary>However the actor stops, its dirty bytes stop counting (a crash drops them).</summary>
    protected override void PostStop() => _dirtyMetric?.Dispose();

    private static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private void Read(ReadRecord m)
    {
        var now = Now;
        // Every byte[] that leaves the store is the caller's own (CrabKvProtocol): values kept
        // here (buffered, in flight, cached) are copied on the way out, exactly once.
        PendingValue? pending = TryBuffered(m.Key, out var buffered) ? buffered : m.InFlight;
        if (pending is { } p)
        {
            var live = p.IsLiveAt(now);
            m.ReplyTo.Tell(new GetResult(m.Key, live, live ? p.Value!.ToArray() : null, m.RequestId));
            return;
        }
        if (m.Location is not { } loc || m.Segment is null || loc.IsExpiredAt(now))
        {
            m.ReplyTo.Tell(new GetResult(m.Key, false, null, m.RequestId));
            return;
        }
        var version = ((UInt128)loc.Segment.Value << 32) | loc.Offset;
        if (_lru.TryGet(m.Key, now, version, out var cached))
        {
            m.ReplyTo.Tell(new GetResult(m.Key, true, cached.ToArray(), m.RequestId));
            return;
        }
        try
        {
            var value = RecordReader.ReadValue(m.Segment, m.Segment.Path, loc, m.KeyBytes, ref _scratch, out _);
            if (_lru.MaxEntries > 0)
            {
                _lru.Put(m.Key, value.ToArray(), loc.Expiry, version);
            }
            m.ReplyTo.Tell(new GetResult(m.Key, true, value, m.RequestId));
        }
        catch (Exception e) // a failed read is answered, never a dead letter
        {
            CrabKvMetrics.Error(OperationKind.Get, CrabKvErrorCode.StoreFailed);
            _log.Error(e, "Read of '{0}' failed", m.Key);
            m.ReplyTo.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed, $"Reading '{m.Key}' failed: {e.Message}", m.RequestId));
        }
    }

    private bool TryBuffered(string key, out PendingValue entry)
    {
        if (_dirty is not null && _dirty.TryGet(key, out entry))
        {
            return true;
        }
        if (_flushing.TryGetValue(key, out var f))
        {
            entry = f.Entry;
            return true;
        }
        entry = default;
        return false;
    }

    private void Buffer(BufferWrite m)
    {
        var existed = m.ExistedOnDisk;
        if (TryBuffered(m.Key, out var current))
        {
            existed = current.IsLiveAt(Now);
        }
        if (_dirty!.Offer(m.Key, m.Value, m.Expiry) == WriteBackResult.Full)
        {
            RefuseFull(m.Value is null ? OperationKind.Delete : OperationKind.Put, m.ReplyTo, m.RequestId);
            return;
        }
        _dirtyMetric!.Set(_dirty.DirtyBytes);
        m.ReplyTo.Tell(m.Value is null ? new DeleteOk(existed, m.RequestId) : new PutOk(m.RequestId));
        MaybeFlushOnSize();
    }

    private void BufferMany(BufferBatch m)
    {
        long extra = 0;
        foreach (var (key, value, _) in m.Entries)
        {
            extra += WriteBackBuffer.CostOf(key, value);
        }
        if (_dirty!.DirtyBytes + extra > _dirty.MaxDirtyBytes)
        {
            RefuseFull(OperationKind.Batch, m.ReplyTo, m.RequestId);
            return;
        }
        foreach (var (key, value, expiry) in m.Entries)
        {
            _dirty.Offer(key, value, expiry);
        }
        _dirtyMetric!.Set(_dirty.DirtyBytes);
        m.ReplyTo.Tell(new PutBatchOk(m.Entries.Length, m.RequestId));
        MaybeFlushOnSize();
    }

    private void RefuseFull(OperationKind kind, IActorRef replyTo, long requestId)
    {
        CrabKvMetrics.Error(kind, CrabKvErrorCode.WriteBackBufferFull);
        replyTo.Tell(new CrabKvError(CrabKvErrorCode.WriteBackBufferFull,
            $"Write-back buffer is full ({_dirty!.DirtyBytes} of {_dirty.MaxDirtyBytes} bytes); a flush is under way, retry shortly.", requestId));
        if (_flushesInFlight == 0)
        {
            StartFlush(null, 0, false, false);
        }
    }

    private void MaybeFlushOnSize()
    {
        if (_flushesInFlight == 0 && _dirty!.DirtyBytes >= _dirty.MaxDirtyBytes / 2)
        {
            StartFlush(null, 0, false, false);
        }
    }

    private void StartFlush(IActorRef? replyTo, long requestId, bool forStop, bool forCompact)
    {
        var entries = _dirty is null ? [] : _dirty.Drain().ToArray();
        _dirtyMetric?.Set(0);
        var id = ++_nextFlushId;
        foreach (var (key, entry) in entries)
        {
            _flushing[key] = (entry, id);
        }
        if (entries.Length > 0)
        {
            _flushesInFlight++;
            _flushes++;
        }
        Context.Parent.Tell(new FlushBatch(id, entries, replyTo, requestId, forStop, forCompact));
    }
}
