using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Cache;
using CrabKv.Actors.Diagnostics;
using CrabKv.Storage;
using CrabKv.Storage.Index;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Segments;

namespace CrabKv.Actors.Partition;

// Reads: an in-flight value is answered from memory; otherwise the location (expired keys
// are removed on the spot) is read here when the record can be read in place (a mapped
// segment: no system call, no hop, no read cache), and goes to the cache actor otherwise —
// and always with write-back on, where the newest value may sit in the cache's dirty buffer.
// Every returned byte[] is the caller's own copy.
internal sealed partial class PartitionActor
{
    private byte[] _keyScratch = new byte[256];

    private void OnGet(Get m)
    {
        if (Refuse(WriteRules.CheckKey(m.Key, _limits.MaxKeyBytes, out int keyLength), m.RequestId))
        {
            return;
        }
        if (keyLength > _keyScratch.Length)
        {
            _keyScratch = new byte[Math.Max(keyLength, _keyScratch.Length * 2)];
        }
        var keyBytes = _keyScratch.AsSpan(0, KeyRules.Utf8.GetBytes(m.Key, _keyScratch));
        if (RefuseForeignKey(m.Key, keyBytes, m.RequestId)) // hashes the bytes just encoded: the key is encoded once
        {
            return;
        }
        _gets++;
        var now = Now;
        PendingValue? inFlight = _inFlight.TryGet(m.Key, out var pending) ? pending : null;
        KeyLocation? location = null;
        Segment? segment = null;
        if (!_settings.WriteBackEnabled)
        {
            if (inFlight is { } v)
            {
                var live = v.IsLiveAt(now);
                Sender.Tell(new GetResult(m.Key, live, live ? v.Value!.ToArray() : null, m.RequestId));
                return;
            }
            // Found by hash alone (the stored key is not read); the record's key confirms it.
            if (!_index.TryLocateByHash(keyBytes, now, out var candidate, out var holder, out var keyChecked))
            {
                Sender.Tell(new GetResult(m.Key, false, null, m.RequestId));
                return;
            }
            if (TryServeMapped(m, keyBytes, candidate, holder, keyChecked, now))
            {
                return;
            }
            // Not mappable: the cache actor reads positionally, at a location whose key was compared.
            if (!_index.TryLocate(keyBytes, now, out var found, out var foundIn))
            {
                Sender.Tell(new GetResult(m.Key, false, null, m.RequestId));
                return;
            }
            (location, segment) = (found, foundIn);
        }
        else if (_index.TryLocate(keyBytes, now, out var found, out var holder))
        {
            (location, segment) = (found, holder);
        }
        if (_cacheDead)
        {
            Sender.Tell(ErrorReply(CrabKvErrorCode.StoreFailed, $"Partition {_partition} cannot read: its cache actor stopped.", m.RequestId));
            return;
        }
        _cache.Tell(new ReadRecord(m.Key, keyBytes.ToArray(), location, segment, inFlight, Sender, m.RequestId));
    }

    /// <summary>
    /// Write-back off: answers a get whose record is on disk from the segment's mapping (no
    /// read cache here: a mapped read costs no system call, so an LRU would only copy and
    /// evict). <paramref name="keyChecked"/> false: <paramref name="location"/> was found by
    /// hash alone, and a record of another key sends the get to the compared lookup. False when
    /// the record cannot be read in place (the file layer does not map): the cache actor then
    /// reads it positionally, off this actor, through its LRU.
    /// </summary>
    private bool TryServeMapped(Get m, ReadOnlySpan<byte> keyBytes, in KeyLocation location, Segment segment, bool keyChecked, long now)
    {
        byte[]? value;
        try
        {
            if (keyChecked)
            {
                if (!RecordReader.TryReadMapped(segment, segment.Path, location, keyBytes, out var checkedValue))
                {
                    return false;
                }
                value = checkedValue;
            }
            else
            {
                if (!RecordReader.TryReadMappedCandidate(segment, segment.Path, location, keyBytes, out value))
                {
                    return false;
                }
                if (value is null) // a record of another key with the same hash
                {
                    if (!_index.TryLocate(keyBytes, now, out var found, out var holder))
                    {
                        Sender.Tell(new GetResult(m.Key, false, null, m.RequestId));
                        return true;
                    }
                    if (!RecordReader.TryReadMapped(holder, holder.Path, found, keyBytes, out var checkedValue))
                    {
                        return false;
                    }
                    value = checkedValue;
                }
            }
        }
        catch (Exception e) // a failed read is answered, never a dead letter
        {
            CrabKvMetrics.Error(OperationKind.Get, CrabKvErrorCode.StoreFailed);
            _log.Error(e, "Read of '{0}' failed", m.Key);
            Sender.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed, $"Reading '{m.Key}' failed: {e.Message}", m.RequestId));
            return true;
        }
        Sender.Tell(new GetResult(m.Key, true, value, m.RequestId));
        return true;
    }

    /// <summary>The active TTL sweep (bounded per tick).</summary>
    private void Sweep()
    {
        _expiredSwept += _index.SweepExpired(Now, 100_000).Count;
        MaybeAutoCompactOnTick();
    }
}
