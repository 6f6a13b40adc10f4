namespace CrabKv.Storage;

/// <summary>
/// Absolute expiries (Unix ms, 0 = never; FORMAT.md section 3): the one "live at now" rule
/// every record, key-directory entry and buffered value is judged by.
/// </summary>
public static class Expiry
{
    /// <summary>True when something expiring at <paramref name="expiry"/> is still live at <paramref name="nowMs"/>.</summary>
    public static bool IsLiveAt(long expiry, long nowMs) => expiry == 0 || expiry > nowMs;

    /// <summary>The absolute expiry of a write made at <paramref name="nowMs"/> with a positive <paramref name="ttl"/> (rounded up to whole ms).</summary>
    public static long After(TimeSpan ttl, long nowMs) => nowMs + (long)Math.Ceiling(ttl.TotalMilliseconds);
}

/// <summary>
/// The newest version of a key while it is not (yet) at a file position: dirty in the
/// write-back buffer, or in flight to the WAL writer. A null value is a delete.
/// </summary>
public readonly record struct PendingValue(byte[]? Value, long Expiry)
{
    /// <summary>A pending delete.</summary>
    public static PendingValue Deleted => default;

    /// <summary>True for a pending delete.</summary>
    public bool IsDelete => Value is null;

    /// <summary>True when a read at <paramref name="nowMs"/> finds a value.</summary>
    public bool IsLiveAt(long nowMs) => Value is not null && Storage.Expiry.IsLiveAt(Expiry, nowMs);
}
