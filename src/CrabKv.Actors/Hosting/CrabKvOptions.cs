using System.Globalization;
using System.Text;

namespace CrabKv.Actors.Hosting;

/// <summary>
/// CrabKv settings from code, for Akka.Hosting. Every property is optional: only the ones set
/// are emitted as HOCON (<see cref="ToHocon"/>), on top of user HOCON and the reference defaults.
/// </summary>
public sealed class CrabKvOptions
{
    /// <summary>crabkv.data-dir</summary>
    public string? DataDir { get; set; }
    /// <summary>crabkv.partitions (0 = one per core)</summary>
    public int? Partitions { get; set; }
    /// <summary>crabkv.sync-interval (zero = fsync before every acknowledgement, group-committed)</summary>
    public TimeSpan? SyncInterval { get; set; }
    /// <summary>crabkv.write-back.enabled</summary>
    public bool? WriteBack { get; set; }
    /// <summary>crabkv.write-back.flush-interval</summary>
    public TimeSpan? FlushInterval { get; set; }
    /// <summary>crabkv.write-back.max-dirty-bytes (node budget, shared by the partitions)</summary>
    public long? MaxDirtyBytes { get; set; }
    /// <summary>crabkv.cache.max-entries (node budget, shared by the partitions)</summary>
    public int? CacheMaxEntries { get; set; }
    /// <summary>crabkv.cache.max-bytes (node budget, shared by the partitions)</summary>
    public long? CacheMaxBytes { get; set; }
    /// <summary>crabkv.compression.enabled</summary>
    public bool? Compression { get; set; }
    /// <summary>crabkv.compression.min-value-bytes</summary>
    public int? CompressionMinValueBytes { get; set; }
    /// <summary>crabkv.compaction.auto</summary>
    public bool? AutoCompaction { get; set; }
    /// <summary>crabkv.compaction.stale-ratio</summary>
    public double? StaleRatio { get; set; }
    /// <summary>crabkv.compaction.min-total-bytes</summary>
    public long? CompactionMinTotalBytes { get; set; }
    /// <summary>crabkv.compaction.max-stale-bytes</summary>
    public long? CompactionMaxStaleBytes { get; set; }
    /// <summary>crabkv.compaction.install-step</summary>
    public int? CompactionInstallStep { get; set; }
    /// <summary>crabkv.default-ttl (zero = none)</summary>
    public TimeSpan? DefaultTtl { get; set; }
    /// <summary>crabkv.ttl-sweep-interval (zero = off)</summary>
    public TimeSpan? TtlSweepInterval { get; set; }
    /// <summary>crabkv.limits.max-key-bytes</summary>
    public int? MaxKeyBytes { get; set; }
    /// <summary>crabkv.limits.max-value-bytes</summary>
    public int? MaxValueBytes { get; set; }
    /// <summary>crabkv.segment.max-bytes</summary>
    public long? SegmentMaxBytes { get; set; }
    /// <summary>crabkv.segment.write-buffer (node budget, shared by the partitions)</summary>
    public long? WriteBufferBytes { get; set; }
    /// <summary>crabkv.segment.preallocate (node budget, shared by the partitions)</summary>
    public long? SegmentPreallocateBytes { get; set; }
    /// <summary>crabkv.client-timeout</summary>
    public TimeSpan? ClientTimeout { get; set; }

    /// <summary>The HOCON of the properties that are set, under <c>crabkv</c>.</summary>
    public string ToHocon()
    {
        var sb = new StringBuilder();
        void Add(string key, object? value)
        {
            if (value is null)
            {
                return;
            }
            var text = value switch
            {
                string s => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"",
                bool b => b ? "on" : "off",
                TimeSpan t when t.Ticks % TimeSpan.TicksPerMillisecond == 0 => (t.Ticks / TimeSpan.TicksPerMillisecond).ToString(CultureInfo.InvariantCulture) + "ms",
                TimeSpan t => (t.Ticks / 10).ToString(CultureInfo.InvariantCulture) + "us", // never round a sub-millisecond interval to 0 (which means fsync per write)
                double d => d.ToString("R", CultureInfo.InvariantCulture),
                IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
                _ => value.ToString(),
            };
            sb.Append("crabkv.").Append(key).Append(" = ").Append(text).Append('\n');
        }
        Add("data-dir", DataDir);
        Add("partitions", Partitions);
        Add("sync-interval", SyncInterval);
        Add("write-back.enabled", WriteBack);
        Add("write-back.flush-interval", FlushInterval);
        Add("write-back.max-dirty-bytes", MaxDirtyBytes);
        Add("cache.max-entries", CacheMaxEntries);
        Add("cache.max-bytes", CacheMaxBytes);
        Add("compression.enabled", Compression);
        Add("compression.min-value-bytes", CompressionMinValueBytes);
        Add("compaction.auto", AutoCompaction);
        Add("compaction.stale-ratio", StaleRatio);
        Add("compaction.min-total-bytes", CompactionMinTotalBytes);
        Add("compaction.max-stale-bytes", CompactionMaxStaleBytes);
        Add("compaction.install-step", CompactionInstallStep);
        Add("default-ttl", DefaultTtl);
        Add("ttl-sweep-interval", TtlSweepInterval);
        Add("limits.max-key-bytes", MaxKeyBytes);
        Add("limits.max-value-bytes", MaxValueBytes);
        Add("segment.max-bytes", SegmentMaxBytes);
        Add("segment.write-buffer", WriteBufferBytes);
        Add("segment.preallocate", SegmentPreallocateBytes);
        Add("client-timeout", ClientTimeout);
        return sb.ToString();
    }

    /// <inheritdoc/>
    public override string ToString() => ToHocon();
}
