using CrabKv.Storage.Compaction;
using CrabKv.Storage.Files;

namespace CrabKv.Storage;

/// <summary>
/// Settings of one store (one partition directory). Every property has a default that
/// works with no configuration; <see cref="Validate"/> names the first bad one.
/// </summary>
public sealed record StoreOptions
{
    /// <summary>The active segment is sealed and a new one started beyond this size. Default 64 MiB; at most 2 GiB.</summary>
    public long MaxSegmentBytes { get; init; } = 64L << 20;

    /// <summary>In-memory append buffer of the active segment. Default 256 KiB.</summary>
    public int WriteBufferBytes { get; init; } = 256 << 10;

    /// <summary>Reserve the active segment's disk space up front (cheaper fsyncs). Default on.</summary>
    public bool PreallocateSegments { get; init; } = true;

    /// <summary>
    /// With <see cref="PreallocateSegments"/>: reserve this much at a time (a multiple of 256 KiB),
    /// another step whenever the writes reach the reserved end. Default null: the whole segment
    /// (at most 256 MiB) up front.
    /// </summary>
    public long? PreallocateStepBytes { get; init; }

    /// <summary>Longest key, in UTF-8 bytes. Default 4 KiB; at most 65535.</summary>
    public int MaxKeyBytes { get; init; } = 4096;

    /// <summary>Longest value, in bytes. Default 16 MiB; at most 256 MiB.</summary>
    public int MaxValueBytes { get; init; } = 16 << 20;

    /// <summary>Snappy-compress values that shrink. Default on.</summary>
    public bool Compression { get; init; } = true;

    /// <summary>Values shorter than this are never compressed. Default 256 bytes.</summary>
    public int CompressionMinValueBytes { get; init; } = 256;

    /// <summary>TTL applied to writes that give none; null = keys never expire. Default null.</summary>
    public TimeSpan? DefaultTtl { get; init; }

    /// <summary>When to merge.</summary>
    public CompactionThresholds Compaction { get; init; } = CompactionThresholds.Default;

    /// <summary>Merge automatically when a segment is sealed and the heuristic says so. Default on.</summary>
    public bool AutoCompact { get; init; } = true;

    /// <summary>LRU read cache bound in entries; 0 disables it. Default 10 000.</summary>
    public int ReadCacheEntries { get; init; } = 10_000;

    /// <summary>LRU read cache bound in bytes. Default 64 MiB.</summary>
    public long ReadCacheBytes { get; init; } = 64L << 20;

    /// <summary>Buffer writes in memory until <see cref="EmbeddedStore.Flush"/>. Default off.</summary>
    public bool WriteBack { get; init; }

    /// <summary>
    /// Write-back buffer limit; a write that would pass it flushes first. Default 64 MiB.
    /// A flush is one batch written into one segment, which may then pass <see cref="MaxSegmentBytes"/>
    /// (never the format's 2 GiB bound: <see cref="Partition.WriteLimits.EffectiveMaxDirtyBytes"/>).
    /// </summary>
    public long MaxDirtyBytes { get; init; } = 64L << 20;

    /// <summary>Clock for TTLs (tests substitute their own).</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>
    /// The file system the store does its I/O through. Default <see cref="FileLayer.Default"/>;
    /// tests pass a wrapper that injects faults or simulates a power cut.
    /// </summary>
    public FileLayer Files { get; init; } = FileLayer.Default;

    /// <summary>Receives recovery and maintenance messages (torn tails, ignored hints…).</summary>
    public Action<string>? Log { get; init; }

    /// <summary>The limits every write is checked against.</summary>
    public Partition.WriteLimits ToWriteLimits() => new(MaxKeyBytes, MaxValueBytes, MaxSegmentBytes, DefaultTtl, WriteBack ? MaxDirtyBytes : null);

    /// <summary>How the active segment is written.</summary>
    public Partition.LogSettings ToLogSettings() => new(MaxSegmentBytes, WriteBufferBytes, PreallocateSegments, Compression, CompressionMinValueBytes) { PreallocateStepBytes = PreallocateStepBytes };

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first bad setting.</summary>
    public StoreOptions Validate()
    {
        static void Check(bool ok, string name, object value, string rule)
        {
            if (!ok)
            {
                throw new ArgumentOutOfRangeException(name, value, $"{name} {rule}.");
            }
        }
        Check(MaxSegmentBytes is >= 4096 and <= Format.FormatConstants.MaxSegmentBytes, nameof(MaxSegmentBytes), MaxSegmentBytes, "must be between 4 KiB and 2 GiB");
        Check(WriteBufferBytes is >= 4096 and <= 64 << 20, nameof(WriteBufferBytes), WriteBufferBytes, "must be between 4 KiB and 64 MiB");
        Check(MaxKeyBytes is >= 1 and <= Format.FormatConstants.MaxKeyBytes, nameof(MaxKeyBytes), MaxKeyBytes, "must be between 1 and 65535");
        Check(MaxValueBytes is >= 0 and <= Format.FormatConstants.MaxValueBytes, nameof(MaxValueBytes), MaxValueBytes, "must be between 0 and 256 MiB");
        Check(CompressionMinValueBytes >= 0, nameof(CompressionMinValueBytes), CompressionMinValueBytes, "must be ≥ 0");
        Check(DefaultTtl is null || DefaultTtl > TimeSpan.Zero, nameof(DefaultTtl), DefaultTtl!, "must be positive or unset");
        Check(ReadCacheEntries >= 0, nameof(ReadCacheEntries), ReadCacheEntries, "must be ≥ 0");
        Check(ReadCacheBytes >= 0, nameof(ReadCacheBytes), ReadCacheBytes, "must be ≥ 0");
        Check(MaxDirtyBytes > 0, nameof(MaxDirtyBytes), MaxDirtyBytes, "must be > 0");
        Compaction.Validate();
        ArgumentNullException.ThrowIfNull(Files, nameof(Files));
        return this;
    }
}
