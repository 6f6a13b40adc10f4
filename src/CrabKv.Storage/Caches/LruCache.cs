namespace CrabKv.Storage.Caches;

/// <summary>
/// A least-recently-used read cache bounded by entry count and by bytes (key + value +
/// a fixed per-entry overhead). Entries carry their absolute expiry and are never returned
/// once expired. Not thread safe.
/// </summary>
public sealed class LruCache
{
    /// <summary>Bytes charged per entry on top of key and value (node, dictionary slot).</summary>
    public const int EntryOverhead = 96;

    private sealed class Node
    {
        public required string Key;
        public required byte[] Value;
        public long Expiry;
        public UInt128 Version;
        public Node? Prev, Next;
        public long Cost => EntryOverhead + (Key.Length * 2L) + Value.Length;
    }

    private readonly Dictionary<string, Node> _map = new(StringComparer.Ordinal);
    private Node? _head, _tail; // head = most recent
    private long _bytes;

    /// <summary>Creates a cache; a zero bound disables it.</summary>
    public LruCache(int maxEntries, long maxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxEntries);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        MaxEntries = maxEntries;
        MaxBytes = maxBytes;
    }

    /// <summary>Entry bound.</summary>
    public int MaxEntries { get; }

    /// <summary>Byte bound.</summary>
    public long MaxBytes { get; }

    /// <summary>Entries held.</summary>
    public int Count => _map.Count;

    /// <summary>Bytes charged.</summary>
    public long Bytes => _bytes;

    /// <summary>Lookups answered from the cache.</summary>
    public long Hits { get; private set; }

    /// <summary>Lookups not answered.</summary>
    public long Misses { get; private set; }

    /// <summary>Returns the value when cached and unexpired at <paramref name="nowMs"/>.</summary>
    public bool TryGet(string key, long nowMs, out byte[] value) => TryGet(key, nowMs, 0, out value);

    /// <summary>
    /// Returns the value when cached, unexpired, and cached for the same
    /// <paramref name="version"/> (e.g. the record's location): a cache whose owner does not
    /// see every write checks versions instead of being told to invalidate.
    /// </summary>
    public bool TryGet(string key, long nowMs, UInt128 version, out byte[] value)
    {
        if (_map.TryGetValue(key, out var node))
        {
            if (!Expiry.IsLiveAt(node.Expiry, nowMs) || node.Version != version)
            {
                Unlink(node);
                _map.Remove(key);
                _bytes -= node.Cost;
            }
            else
            {
                MoveToFront(node);
                Hits++;
                value = node.Value;
                return true;
            }
        }
        Misses++;
        value = [];
        return false;
    }

    /// <summary>Caches a value (callers must not mutate it afterwards), evicting as needed.</summary>
    public void Put(string key, byte[] value, long expiry) => Put(key, value, expiry, 0);

    /// <summary>Caches a value for a version (see <see cref="TryGet(string, long, UInt128, out byte[])"/>).</summary>
    public void Put(string key, byte[] value, long expiry, UInt128 version)
    {
        if (MaxEntries == 0 || MaxBytes == 0)
        {
            return;
        }
        Remove(key);
        var node = new Node { Key = key, Value = value, Expiry = expiry, Version = version };
        if (node.Cost > MaxBytes)
        {
            return;
        }
        _map[key] = node;
        _bytes += node.Cost;
        node.Next = _head;
        if (_head is not null)
        {
            _head.Prev = node;
        }
        _head = node;
        _tail ??= node;
        while (_map.Count > MaxEntries || _bytes > MaxBytes)
        {
            var victim = _tail!;
            Unlink(victim);
            _map.Remove(victim.Key);
            _bytes -= victim.Cost;
        }
    }

    /// <summary>Drops a key (it was overwritten or deleted).</summary>
    public void Remove(string key)
    {
        if (_map.Remove(key, out var node))
        {
            Unlink(node);
            _bytes -= node.Cost;
        }
    }

    /// <summary>Drops everything.</summary>
    public void Clear()
    {
        _map.Clear();
        _head = _tail = null;
        _bytes = 0;
    }

    private void MoveToFront(Node node)
    {
        if (node == _head)
        {
            return;
        }
        Unlink(node);
        node.Next = _head;
        if (_head is not null)
        {
            _head.Prev = node;
        }
        _head = node;
        _tail ??= node;
    }

    private void Unlink(Node node)
    {
        if (node.Prev is not null)
        {
            node.Prev.Next = node.Next;
        }
        else if (_head == node)
        {
            _head = node.Next;
        }
        if (node.Next is not null)
        {
            node.Next.Prev = node.Prev;
        }
        else if (_tail == node)
        {
            _tail = node.Prev;
        }
        node.Prev = node.Next = null;
    }
}
