namespace CrabKv.Storage.Tests;

/// <summary>
/// A <see cref="TimeProvider"/> whose time only moves when a test says so: TTL tests set
/// or advance it instead of sleeping.
/// </summary>
public sealed class ManualClock : TimeProvider
{
    /// <summary>A fixed, arbitrary start (whole milliseconds, so expiries are exact).</summary>
    public static readonly DateTimeOffset DefaultStart = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Creates a clock reading <paramref name="start"/> (default <see cref="DefaultStart"/>).</summary>
    public ManualClock(DateTimeOffset? start = null) => UtcNow = start ?? DefaultStart;

    /// <summary>The time <see cref="GetUtcNow"/> returns; settable.</summary>
    public DateTimeOffset UtcNow { get; set; }

    /// <summary>The current time as Unix milliseconds (what the engine stores as expiry).</summary>
    public long UnixMilliseconds => UtcNow.ToUnixTimeMilliseconds();

    /// <summary>Moves the clock forward (or back, for a negative span).</summary>
    public void Advance(TimeSpan by) => UtcNow += by;

    /// <summary>Moves the clock forward by <paramref name="milliseconds"/>.</summary>
    public void AdvanceMilliseconds(long milliseconds) => UtcNow += TimeSpan.FromMilliseconds(milliseconds);

    /// <inheritdoc/>
    public override DateTimeOffset GetUtcNow() => UtcNow;
}
