namespace CrabKv.Storage;

/// <summary>Why a request failed: the one code shared by the engine's refusals and the actor protocol's error replies.</summary>
public enum CrabKvErrorCode : byte
{
    /// <summary>The key is empty.</summary>
    EmptyKey = 1,
    /// <summary>The key is longer than limits.max-key-bytes.</summary>
    KeyTooLarge = 2,
    /// <summary>The value (or a batch) is larger than a limit: limits.max-value-bytes, one segment, the write-back buffer.</summary>
    ValueTooLarge = 3,
    /// <summary>The request is malformed (bad TTL, null entries, a key that is not text, keys of another partition).</summary>
    InvalidRequest = 4,
    /// <summary>The write-back buffer is full; retry after the flush it started.</summary>
    WriteBackBufferFull = 5,
    /// <summary>An I/O failure: the partition is read-only until reopened.</summary>
    StoreFailed = 6,
    /// <summary>The store is stopping.</summary>
    ShuttingDown = 7,
    /// <summary>The message is not part of the protocol.</summary>
    UnknownMessage = 8,
    /// <summary>Too much work queued (writes in flight, or requests waiting for the partition to open); retry shortly.</summary>
    Overloaded = 9,
    /// <summary>The partition is moving to this node (its data is being pulled from the previous holder) and too many requests already wait for it; retry shortly.</summary>
    PartitionMoving = 10,
    /// <summary>The node that holds the partition's data is unreachable or down; retry once it is back (the data is not lost, nor is the key "not found").</summary>
    PartitionUnavailable = 11,
}

/// <summary>What a refused request was wrong about; picks the exception the embedded engine throws.</summary>
public enum RefusalSubject : byte
{
    /// <summary>The key.</summary>
    Key,
    /// <summary>A size: value, batch, write-back buffer.</summary>
    Size,
    /// <summary>A TTL.</summary>
    Ttl,
    /// <summary>The shape of the request (null entries, empty batch, wrong partition).</summary>
    Request,
}

/// <summary>
/// A request refused by a rule (<c>Partition/WriteRules</c>) before anything was written: the
/// embedded engine throws it (<see cref="ToException"/>), the partition actor replies it as an error.
/// </summary>
public readonly record struct Refusal(CrabKvErrorCode Code, RefusalSubject Subject, string Message)
{
    /// <summary>The exception the embedded engine throws for this refusal.</summary>
    public Exception ToException() => Subject switch
    {
        RefusalSubject.Key => new InvalidKeyException(Message),
        RefusalSubject.Size => new ValueTooLargeException(Message),
        RefusalSubject.Ttl => new ArgumentOutOfRangeException("ttl", Message),
        _ => new ArgumentException(Message),
    };
}

/// <summary>Base of every error the storage engine raises on purpose.</summary>
public class CrabKvException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CrabKvException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>The key is empty, or longer than the configured limit, once encoded as UTF-8.</summary>
public sealed class InvalidKeyException(string message) : CrabKvException(message);

/// <summary>The value is longer than the configured limit.</summary>
public sealed class ValueTooLargeException(string message) : CrabKvException(message);

/// <summary>Another process or store instance holds the data directory's lock file.</summary>
public sealed class StoreLockedException(string directory, Exception? inner, string? holder = null)
    : CrabKvException($"Data directory '{directory}' is in use by another process or store instance (its LOCK file is held{(holder is null ? "" : $" by {holder}")}).", inner)
{
    /// <summary>The locked directory.</summary>
    public string Directory { get; } = directory;

    /// <summary>The holder's line from the LOCK file ("pid … on host since …"), when it could be read.</summary>
    public string? Holder { get; } = holder;
}

/// <summary>A data directory that cannot be opened as it is: an unreadable partition count, or partition directories that do not match it.</summary>
public sealed class DataDirectoryException(string directory, string problem)
    : CrabKvException($"Data directory '{directory}' {problem}.")
{
    /// <summary>The data directory.</summary>
    public string Directory { get; } = directory;
}

/// <summary>The data directory was created with another partition count than the one asked for explicitly.</summary>
public sealed class PartitionCountMismatchException(string directory, int requested, int recorded)
    : CrabKvException($"The data directory '{directory}' was created with {recorded} partitions, not {requested}; keys would be looked up in the wrong partition.")
{
    /// <summary>The data directory.</summary>
    public string Directory { get; } = directory;

    /// <summary>The count asked for.</summary>
    public int Requested { get; } = requested;

    /// <summary>The count recorded in the directory's PARTITIONS file.</summary>
    public int Recorded { get; } = recorded;
}

/// <summary>A file named like a segment or hint is not one (wrong magic or unknown version).</summary>
public sealed class NotASegmentException(string path, string reason, bool noCrabKvHeader = false)
    : CrabKvException($"'{path}' is not a CrabKv segment: {reason}.")
{
    /// <summary>The offending file.</summary>
    public string Path { get; } = path;

    /// <summary>
    /// True when the file does not even start like a CrabKv file (too short for a header, or
    /// another magic number), as opposed to a CrabKv file of another format version or id.
    /// </summary>
    public bool NoCrabKvHeader { get; } = noCrabKvHeader;
}

/// <summary>A record that fails its checks somewhere other than the torn tail of the active segment.</summary>
public sealed class CorruptSegmentException(string path, long offset, string reason)
    : CrabKvException($"Corrupt segment '{path}' at offset {offset}: {reason}. Run repair to salvage the intact records.")
{
    /// <summary>The damaged file.</summary>
    public string Path { get; } = path;

    /// <summary>Byte offset of the first damaged record.</summary>
    public long Offset { get; } = offset;
}

/// <summary>The write-back buffer is at its byte limit; flush, then retry.</summary>
public sealed class WriteBackBufferFullException(long dirtyBytes, long limit)
    : CrabKvException($"Write-back buffer is full ({dirtyBytes} of {limit} bytes dirty); flush before writing more.")
{
    /// <summary>Bytes buffered now.</summary>
    public long DirtyBytes { get; } = dirtyBytes;

    /// <summary>The configured limit.</summary>
    public long Limit { get; } = limit;
}

/// <summary>The store was disposed, or failed earlier and refuses further writes.</summary>
public sealed class StoreClosedException(string message, Exception? inner = null) : CrabKvException(message, inner);
