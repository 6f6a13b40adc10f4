namespace CrabKv.Actors.Client;

/// <summary>
/// Options of a <see cref="CrabKvClient"/>: its default timeout and whether it retries the
/// replies that say "not now" (<see cref="RetryTransient"/>; off by default, so every error
/// reply reaches the caller as it did).
/// </summary>
/// <remarks>
/// Retrying is safe for every request the client sends: the retried codes are refusals made
/// before anything was applied (the partition's queue was full, the partition is moving to
/// another node or its data holder is unreachable), and puts, deletes and batches are
/// idempotent anyway (the last write wins; a delete of a deleted key is a no-op). A retried
/// request is sent again in full, as a new message; the request's own timeout bounds each
/// attempt, not the whole series.
/// </remarks>
public sealed record CrabKvClientOptions
{
    /// <summary>
    /// Timeout of a request that gives none. Null: the <c>crabkv.client-timeout</c> of the
    /// store's actor system (10 s in the reference configuration).
    /// </summary>
    public TimeSpan? DefaultTimeout { get; init; }

    /// <summary>Retry the replies whose code is in <see cref="RetryCodes"/> (off by default).</summary>
    public bool RetryTransient { get; init; }

    /// <summary>
    /// Also retry a read (<see cref="Get"/>, <see cref="GetStats"/>) that got no answer within its
    /// timeout (off by default). A read changes nothing, so sending it again is always safe; in a
    /// cluster it covers the requests Akka drops while a shard is handed off ("Dropping buffered
    /// messages … to avoid re-ordering"), which are neither answered nor refused. Writes are never
    /// retried after a timeout: one may have been applied, and a late duplicate could overwrite a
    /// newer write of the same key. Counts against <see cref="MaxRetries"/>.
    /// </summary>
    public bool RetryReadTimeouts { get; init; }

    /// <summary>Retries after the first attempt (default 5); the last error reply is thrown after them.</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>Pause before the first retry (default 50 ms); each further pause doubles it, up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Longest pause between two attempts (default 2 s).</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The codes retried: <see cref="CrabKvErrorCode.Overloaded"/>, <see cref="CrabKvErrorCode.PartitionMoving"/>
    /// and <see cref="CrabKvErrorCode.PartitionUnavailable"/>. <see cref="CrabKvErrorCode.ShuttingDown"/> is
    /// not retried by default: from a single node it means the node is going away, and retrying only
    /// delays the failure by the whole backoff; a cluster client that expects its requests to be
    /// served by another node after a graceful leave may add it (the refused request was not applied).
    /// <see cref="CrabKvErrorCode.WriteBackBufferFull"/> may be added too (the write was refused; the
    /// flush it started makes room).
    /// </summary>
    public IReadOnlySet<CrabKvErrorCode> RetryCodes { get; init; } = DefaultRetryCodes;

    /// <summary>Overloaded, PartitionMoving, PartitionUnavailable.</summary>
    public static IReadOnlySet<CrabKvErrorCode> DefaultRetryCodes { get; } =
        new HashSet<CrabKvErrorCode> { CrabKvErrorCode.Overloaded, CrabKvErrorCode.PartitionMoving, CrabKvErrorCode.PartitionUnavailable };

    /// <summary>The pause before retry number <paramref name="retry"/> (1-based): InitialBackoff x 2^(retry-1), at most MaxBackoff.</summary>
    public TimeSpan BackoffBefore(int retry)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retry, 1);
        var ticks = InitialBackoff.Ticks;
        for (var i = 1; i < retry && ticks < MaxBackoff.Ticks; i++)
        {
            ticks *= 2;
        }
        return TimeSpan.FromTicks(Math.Min(ticks, MaxBackoff.Ticks));
    }

    /// <summary>Checks the values (called by the client).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A timeout that is not positive, a negative retry count or backoff.</exception>
    internal void Validate()
    {
        if (DefaultTimeout is { } t && t <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(DefaultTimeout), t, "The client timeout must be positive.");
        }
        if (MaxRetries < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRetries), MaxRetries, "MaxRetries must not be negative.");
        }
        if (InitialBackoff < TimeSpan.Zero || MaxBackoff < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(InitialBackoff), "Backoffs must not be negative.");
        }
        ArgumentNullException.ThrowIfNull(RetryCodes);
    }
}
