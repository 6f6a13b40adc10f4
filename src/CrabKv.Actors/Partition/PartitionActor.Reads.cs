using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Cache;
using CrabKv.Actors.Diagnostics;
using CrabKv.Storage;
using CrabKv.Storage.Caches;
using CrabKv.Storage.Index;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Segments;

namespace CrabKv.Actors.Partition;

// Reads: an in-flight value is answered from memory; otherwise the location (expired keys
// are removed on the spot) is read here when the record can be read in place (a mapped
// segment: no system call, no hop), and goes to the cache actor otherwise — and always
// with write-back on, where the newest value may sit in the cache's dirty buffer. Every
// returned byte[] is the caller's own copy.
internal sealed partial class PartitionActor
{
    private byte[] _keyScratch = new byte[256];

    /// <summary>
    /// The LRU of the reads served here (write-back off): the cache lives where reads are
    /// answered. Entries are versioned by record location, as in the cache actor, so it
    /// never needs telling about writes. Empty with write-back on.
    /// </summary>
    private LruCache? _readCache;

    private LruCache ReadCache => _readCache ??= new LruCache(_settings.WriteBackEnabled ? 0 : _settings.CacheMaxEntries, _settings.CacheMaxBytes);

    private void OnGet(Get m)
    {
        if (Refuse(WriteRules.CheckKey(m.Key, _limits.MaxKeyBytes, out int keyLength), m.RequestId) || RefuseForeignKey(m.Key, m.RequestId))
        {
            return;
        }
        if (keyLength > _keyScratch.Length)
        {
            _keyScratch = new byte[Math.Max(keyLength, _keyScratch.Length * 2)];
        }
        var keyBytes = _keyScratch.AsSpan(0, KeyRules.Utf8.GetBytes(m.Key, _keyScratch));
        _gets++;
        var now = Now;
        PendingValue? inFlight = _inFlight.TryGet(m.Key, out var pending) ? pending : null;
        if (!_settings.WriteBackEnabled && inFlight is { } v)
        {
            var live = v.IsLiveAt(now);
            Sender.Tell(new GetResult(m.Key, live, live ? v.Value!.ToArray() : null, m.RequestId));
            return;
        }
        KeyLocation? location = null;
        Segment? segment = null;
        if (_index.TryLocate(keyBytes, now, out var found, out var holder))
        {
            location = found;
            segment = holder;
        }
        if (!_settings.WriteBackEnabled)
        {
            if (location is null)
            {
                Sender.Tell(new GetResult(m.Key, false, null, m.RequestId));
                return;
            }
            if (TryServe(m, keyBytes, found, holder, now))
            {
                return;
            }
        }
        if (_cacheDead)
        {
            Sender.Tell(ErrorReply(CrabKvErrorCode.StoreFailed, $"Partition {_partition} cannot read: its cache actor stopped.", m.RequestId));
            return;
        }
        _cache.Tell(new ReadRecord(m.Key, keyBytes.ToArray(), location, segment, inFlight, Sender, m.RequestId));
    }

    /// <summary>
    /// Write-back off: answers a get whose record is on disk, from the LRU or from the
    /// segment's mapping. False when the record cannot be read in place (the file layer does
    /// not map): the cache actor then reads it positionally, off this actor.
    /// </summary>
    private bool TryServe(Get m, ReadOnlySpan<byte> keyBytes, in KeyLocation location, Segment segment, long now)
    {
        var cache = ReadCache;
        var version = ((UInt128)location.Segment.Value << 32) | location.Offset;
        if (cache.MaxEntries > 0 && cache.TryGet(m.Key, now, version, out var cached))
        {
            Sender.Tell(new GetResult(m.Key, true, cached.ToArray(), m.RequestId));
            return true;
        }
        byte[] value;
        try
        {
            if (!RecordReader.TryReadMapped(segment, segment.Path, location, keyBytes, out value))
            {
                return false;
            }
        }
        catch (Exception e) // a failed read is answered, never a dead letter
        {
            CrabKvMetrics.Error(OperationKind.Get, CrabKvErrorCode.StoreFailed);
            _log.Error(e, "Read of '{0}' failed", m.Key);
            Sender.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed, $"Reading '{m.Key}' failed: {e.Message}", m.RequestId));
            return true;
        }
        if (cache.MaxEntries > 0)
        {
            cache.Put(m.Key, value.ToArray(), location.Expiry, version);
        }
        Sender.Tell(new GetResult(m.Key, true, value, m.RequestId));
        return true;
    }

    /// <summary>The active TTL sweep (bounded per tick).</summary>
    private void Sweep() => _expiredSwept += _index.SweepExpired(Now, 100_000).Count;
}
