using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Cache;
using CrabKv.Storage.Index;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Segments;

namespace CrabKv.Actors.Partition;

// Reads: an in-flight value is answered from memory; otherwise the location (expired keys
// are removed on the spot) goes to the cache, which answers from the write-back buffer,
// the LRU, or a verified positional read. Every returned byte[] is the caller's own copy.
internal sealed partial class PartitionActor
{
    private void OnGet(Get m)
    {
        if (Refuse(WriteRules.CheckKey(m.Key, _limits.MaxKeyBytes, out byte[] keyBytes), m.RequestId) || RefuseForeignKey(m.Key, m.RequestId))
        {
            return;
        }
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
        if (!_settings.WriteBackEnabled && location is null)
        {
            Sender.Tell(new GetResult(m.Key, false, null, m.RequestId));
            return;
        }
        if (_cacheDead)
        {
            Sender.Tell(ErrorReply(CrabKvErrorCode.StoreFailed, $"Partition {_partition} cannot read: its cache actor stopped.", m.RequestId));
            return;
        }
        _cache.Tell(new ReadRecord(m.Key, keyBytes, location, segment, inFlight, Sender, m.RequestId));
    }

    /// <summary>The active TTL sweep (bounded per tick).</summary>
    private void Sweep() => _expiredSwept += _index.SweepExpired(Now, 100_000).Count;
}
