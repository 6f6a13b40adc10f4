namespace CrabKv.Storage.Compaction;

/// <summary>
/// When to merge (defaults from the original CrabKv): stale ratio ≥ 0.33 with more than
/// 1 MiB of data, or more than 8 MiB stale whatever the ratio.
/// </summary>
public sealed record CompactionThresholds(double StaleRatio = 0.33, long MinTotalBytes = 1L << 20, long MaxStaleBytes = 8L << 20)
{
    /// <summary>The defaults.</summary>
    public static CompactionThresholds Default { get; } = new();

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming a bad value.</summary>
    public void Validate()
    {
        if (StaleRatio is <= 0 or > 1 || double.IsNaN(StaleRatio))
        {
            throw new ArgumentOutOfRangeException(nameof(StaleRatio), StaleRatio, "stale-ratio must be in (0, 1].");
        }
        if (MinTotalBytes < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MinTotalBytes), MinTotalBytes, "min-total-bytes must be ≥ 0.");
        }
        if (MaxStaleBytes <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxStaleBytes), MaxStaleBytes, "max-stale-bytes must be > 0.");
        }
    }
}

/// <summary>The compaction heuristic, as a pure function.</summary>
public static class CompactionPolicy
{
    /// <summary>True when sealed data with <paramref name="totalBytes"/> of which <paramref name="staleBytes"/> are stale should be merged.</summary>
    public static bool ShouldCompact(CompactionThresholds thresholds, long totalBytes, long staleBytes)
    {
        if (staleBytes <= 0 || totalBytes <= 0)
        {
            return false;
        }
        if (staleBytes > thresholds.MaxStaleBytes)
        {
            return true;
        }
        return totalBytes > thresholds.MinTotalBytes && (double)staleBytes / totalBytes >= thresholds.StaleRatio;
    }
}
