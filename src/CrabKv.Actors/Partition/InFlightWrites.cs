using Akka.Actor;
using CrabKv.Storage.Partition;

namespace CrabKv.Actors.Partition;

/// <summary>
/// Internal. The partition's bookkeeping of writes handed to the WAL writer and not yet
/// acknowledged: a FIFO of pending writes (the writer acknowledges in order), the newest
/// pending value of each key (reads are served from it until the ack is indexed: read your
/// writes), and the bytes they hold (bounded: past the limit writers are told to slow down).
/// Not thread safe; unit-tested without actors.
/// </summary>
internal sealed class InFlightWrites
{
    /// <summary>One write in flight: its keys (string and UTF-8), the flush it belongs to (write-back) and who waits for it.</summary>
    internal sealed record Pending(long Seq, string[] Keys, LogRecord[] Records, long FlushId, long Bytes, IActorRef? ReplyTo, long RequestId);

    private readonly Dictionary<string, (PendingValue Value, long Seq)> _byKey = new(StringComparer.Ordinal);
    private readonly Queue<Pending> _queue = new();
    private long _lastSeq;

    /// <summary>Tracks writes up to <paramref name="maxBytes"/> of keys and values.</summary>
    public InFlightWrites(long maxBytes) => MaxBytes = maxBytes;

    /// <summary>The byte bound.</summary>
    public long MaxBytes { get; }

    /// <summary>Bytes of keys and values in flight.</summary>
    public long Bytes { get; private set; }

    /// <summary>Writes in flight.</summary>
    public int Count => _queue.Count;

    /// <summary>Keys with a pending value.</summary>
    public int KeyCount => _byKey.Count;

    /// <summary>True when new writes must be refused (Overloaded) until acks arrive.</summary>
    public bool IsFull => Bytes > MaxBytes;

    /// <summary>
    /// Registers a write about to be sent to the writer and returns its sequence number. Each
    /// key's pending value becomes this write's (for a key repeated in a batch, the last entry).
    /// </summary>
    public long Add(string[] keys, LogRecord[] records, long flushId, IActorRef? replyTo, long requestId)
    {
        var seq = ++_lastSeq;
        long bytes = 0;
        for (var i = 0; i < records.Length; i++)
        {
            _byKey[keys[i]] = (new PendingValue(records[i].Value, records[i].Expiry), seq);
            bytes += records[i].Key.Length + (records[i].Value?.Length ?? 0);
        }
        _queue.Enqueue(new Pending(seq, keys, records, flushId, bytes, replyTo, requestId));
        Bytes += bytes;
        return seq;
    }

    /// <summary>The newest pending value of a key, if a write of it is in flight.</summary>
    public bool TryGet(string key, out PendingValue value)
    {
        if (_byKey.Count != 0 && _byKey.TryGetValue(key, out var entry)) // empty (every get of a quiet partition): no string hash
        {
            value = entry.Value;
            return true;
        }
        value = default;
        return false;
    }

    /// <summary>True when a write of the key is in flight.</summary>
    public bool Contains(string key) => _byKey.ContainsKey(key);

    /// <summary>
    /// The writer acknowledged write <paramref name="seq"/>: takes the oldest pending write out
    /// and returns it, or null when it is not that one (acks come in order; a mismatch is a bug,
    /// reported by the caller). Keys whose newest pending value is this write's stop being in flight.
    /// </summary>
    public Pending? Acknowledge(long seq)
    {
        if (!_queue.TryDequeue(out var p))
        {
            return null;
        }
        Forget(p);
        return p.Seq == seq ? p : null;
    }

    /// <summary>Every pending write failed (the writer failed or died): all are dropped and returned, oldest first.</summary>
    public List<Pending> DropAll()
    {
        var all = new List<Pending>(_queue.Count);
        while (_queue.TryDequeue(out var p))
        {
            Forget(p);
            all.Add(p);
        }
        return all;
    }

    private void Forget(Pending p)
    {
        Bytes -= p.Bytes;
        foreach (var key in p.Keys)
        {
            if (_byKey.TryGetValue(key, out var entry) && entry.Seq == p.Seq)
            {
                _byKey.Remove(key);
            }
        }
    }
}
