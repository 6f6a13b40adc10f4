using CrabKv.Storage.Index;
using CrabKv.Storage.Partition;

namespace CrabKv.Storage.Recovery;

/// <summary>
/// Applies an open's records (hint entries or scanned records) to a partition index in order,
/// a few records behind the reader: each record's key-directory entry is prefetched when it is
/// queued and set when it leaves the queue, so the cache misses of consecutive records (each
/// lands on a random entry of a table far larger than the cache) overlap instead of following
/// one another. The index sees exactly the same calls in the same order; <see cref="Drain"/>
/// before anything reads it.
/// </summary>
internal sealed class ApplyQueue(PartitionIndex index, long nowMs)
{
    /// <summary>Records in flight: enough to cover a memory miss with the work of the others.</summary>
    private const int Depth = 16;

    private readonly byte[][] _keys = Enumerable.Range(0, Depth).Select(_ => new byte[64]).ToArray();
    private readonly int[] _lengths = new int[Depth];
    private readonly KeyLocation[] _locations = new KeyLocation[Depth];
    private readonly bool[] _tombstones = new bool[Depth];
    private int _head;
    private int _count;

    /// <summary>Queues a record (the key is copied); the oldest is applied when the queue is full.</summary>
    public void Add(ReadOnlySpan<byte> key, in KeyLocation location, bool tombstone)
    {
        if (_count == Depth)
        {
            ApplyOldest();
        }
        var slot = (_head + _count) & (Depth - 1);
        if (_keys[slot].Length < key.Length)
        {
            _keys[slot] = new byte[Math.Max(key.Length, _keys[slot].Length * 2)];
        }
        key.CopyTo(_keys[slot]);
        _lengths[slot] = key.Length;
        _locations[slot] = location;
        _tombstones[slot] = tombstone;
        _count++;
        index.Keys.Prefetch(key);
    }

    /// <summary>Applies every queued record, oldest first.</summary>
    public void Drain()
    {
        while (_count > 0)
        {
            ApplyOldest();
        }
    }

    private void ApplyOldest()
    {
        var slot = _head;
        _head = (_head + 1) & (Depth - 1);
        _count--;
        index.Apply(_keys[slot].AsSpan(0, _lengths[slot]), _locations[slot], _tombstones[slot], nowMs);
    }
}
