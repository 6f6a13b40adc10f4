using CrabKv.Storage.Partition;

namespace CrabKv.Storage.Caches;

/// <summary>Outcome of offering a write to the buffer.</summary>
public enum WriteBackResult
{
    /// <summary>Buffered.</summary>
    Accepted,
    /// <summary>Refused: the buffer would exceed its byte limit. Flush first.</summary>
    Full,
}

/// <summary>
/// The write-back buffer: dirty entries keyed by key, coalescing repeated writes to one key
/// into one entry, with byte accounting and a hard limit that refuses instead of growing.
/// Entries keep their TTL (absolute expiry) through the flush. Not thread safe.
/// </summary>
public sealed class WriteBackBuffer
{
    /// <summary>Bytes charged per entry on top of key and value.</summary>
    public const int EntryOverhead = 64;

    private Dictionary<string, PendingValue> _dirty = new(StringComparer.Ordinal);

    /// <summary>Creates a buffer limited to <paramref name="maxDirtyBytes"/>.</summary>
    public WriteBackBuffer(long maxDirtyBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxDirtyBytes);
        MaxDirtyBytes = maxDirtyBytes;
    }

    /// <summary>The byte limit.</summary>
    public long MaxDirtyBytes { get; }

    /// <summary>Bytes charged now.</summary>
    public long DirtyBytes { get; private set; }

    /// <summary>Dirty keys.</summary>
    public int Count => _dirty.Count;

    /// <summary>Writes absorbed by coalescing (a key written again before a flush).</summary>
    public long Coalesced { get; private set; }

    /// <summary>Bytes an entry is charged.</summary>
    public static long CostOf(string key, byte[]? value) => EntryOverhead + (key.Length * 2L) + (value?.Length ?? 0);

    /// <summary>Buffers a put (or, with a null value, a delete); refuses when over the limit.</summary>
    public WriteBackResult Offer(string key, byte[]? value, long expiry)
    {
        var cost = CostOf(key, value);
        var existing = _dirty.TryGetValue(key, out var old) ? CostOf(key, old.Value) : 0;
        if (DirtyBytes - existing + cost > MaxDirtyBytes)
        {
            return WriteBackResult.Full;
        }
        if (existing > 0)
        {
            Coalesced++;
        }
        _dirty[key] = new PendingValue(value, expiry);
        DirtyBytes += cost - existing;
        return WriteBackResult.Accepted;
    }

    /// <summary>The buffered state of a key, if any (a buffered delete is returned too).</summary>
    public bool TryGet(string key, out PendingValue entry) => _dirty.TryGetValue(key, out entry);

    /// <summary>
    /// The records a flush writes for drained entries, as one atomic batch with their TTLs. A
    /// buffered delete of a key that has no record anywhere (<paramref name="hasRecord"/> false:
    /// nothing on disk nor on its way there) is dropped: there is nothing to hide.
    /// </summary>
    public static (string[] Keys, LogRecord[] Records) FlushRecords(IReadOnlyCollection<KeyValuePair<string, PendingValue>> drained, Func<string, byte[], bool> hasRecord)
    {
        var keys = new List<string>(drained.Count);
        var records = new List<LogRecord>(drained.Count);
        foreach (var (key, entry) in drained)
        {
            var keyBytes = KeyRules.Utf8.GetBytes(key);
            if (entry.IsDelete && !hasRecord(key, keyBytes))
            {
                continue;
            }
            keys.Add(key);
            records.Add(new LogRecord(keyBytes, entry.Value, entry.Expiry));
        }
        return (keys.ToArray(), records.ToArray());
    }

    /// <summary>Takes every dirty entry out, leaving the buffer empty.</summary>
    public Dictionary<string, PendingValue> Drain()
    {
        var all = _dirty;
        _dirty = new Dictionary<string, PendingValue>(StringComparer.Ordinal);
        DirtyBytes = 0;
        return all;
    }
}
