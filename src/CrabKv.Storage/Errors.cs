namespace CrabKv.Storage;

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
public sealed class NotASegmentException(string path, string reason)
    : CrabKvException($"'{path}' is not a CrabKv segment: {reason}.")
{
    /// <summary>The offending file.</summary>
    public string Path { get; } = path;
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
