using System.Globalization;
using System.Reflection;
using Akka.Actor;

namespace CrabKv.Actors.Partition;

/// <summary>
/// Internal. What a partition reports about the node it runs on (<see cref="NodeStats"/>):
/// its actor system's address, the CrabKv version, uptime, memory, and the effective
/// configuration of the partition's settings.
/// </summary>
internal static class NodeInfo
{
    /// <summary>The informational version of CrabKv.Actors (the assembly version when it has none).</summary>
    public static string Version { get; } =
        typeof(NodeInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(NodeInfo).Assembly.GetName().Version?.ToString()
        ?? "unknown";

    private static readonly int ProcessId = Environment.ProcessId;

    /// <summary>The address that names the node of <paramref name="system"/> in stats (<c>akka://name</c> or <c>akka.tcp://name@host:port</c>).</summary>
    public static string NodeOf(ActorSystem system) => ((ExtendedActorSystem)system).Provider.DefaultAddress.ToString();

    /// <summary>The node's stats now; <paramref name="configuration"/> comes from <see cref="Configuration"/>.</summary>
    public static NodeStats Describe(ActorSystem system, string node, IReadOnlyList<KeyValuePair<string, string>> configuration)
    {
        var started = DateTimeOffset.UnixEpoch + system.StartTime;
        var uptime = DateTimeOffset.UtcNow - started;
        return new NodeStats
        {
            Node = node,
            Version = Version,
            Uptime = uptime > TimeSpan.Zero ? uptime : TimeSpan.Zero,
            ProcessId = ProcessId,
            WorkingSetBytes = Environment.WorkingSet,
            GcHeapBytes = GC.GetTotalMemory(forceFullCollection: false),
            Configuration = configuration,
        };
    }

    /// <summary>
    /// The settings that matter to an operator, as key/value strings with HOCON keys. Budgets the
    /// node divides among its partitions (<see cref="CrabKvSettings.PerPartition"/>) are the share
    /// one partition runs with, under a key ending in <c>-per-partition</c>.
    /// </summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Configuration(CrabKvSettings s)
    {
        static KeyValuePair<string, string> E(string key, object value) => new(key, value switch
        {
            bool b => b ? "on" : "off",
            TimeSpan t => Duration(t),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        });
        return
        [
            E("data-dir", s.DataDir),
            E("partitions", s.BudgetShare),
            E("sync-interval", s.SyncInterval),
            E("write-back.enabled", s.WriteBackEnabled),
            E("write-back.flush-interval", s.FlushInterval),
            E("write-back.max-dirty-bytes-per-partition", s.WriteBackEnabled ? s.EffectiveMaxDirtyBytes : 0),
            E("cache.max-entries-per-partition", s.CacheMaxEntries),
            E("cache.max-bytes-per-partition", s.CacheMaxBytes),
            E("compression.enabled", s.CompressionEnabled),
            E("compression.min-value-bytes", s.CompressionMinValueBytes),
            E("segment.max-bytes", s.SegmentMaxBytes),
            E("segment.write-buffer-per-partition", s.WriteBufferBytes),
            E("segment.preallocate-per-partition", s.SegmentPreallocateBytes),
            E("compaction.auto", s.AutoCompaction),
            E("compaction.stale-ratio", s.Compaction.StaleRatio),
            E("default-ttl", s.DefaultTtl ?? TimeSpan.Zero),
            E("ttl-sweep-interval", s.TtlSweepInterval),
            E("limits.max-key-bytes", s.MaxKeyBytes),
            E("limits.max-value-bytes", s.MaxValueBytes),
        ];
    }

    /// <summary>A duration in HOCON form: <c>0</c>, <c>250ms</c>, <c>5s</c>.</summary>
    private static string Duration(TimeSpan t) =>
        t == TimeSpan.Zero ? "0"
        : t.Ticks % TimeSpan.TicksPerSecond == 0 ? $"{(long)t.TotalSeconds}s"
        : t.Ticks % TimeSpan.TicksPerMillisecond == 0 ? $"{(long)t.TotalMilliseconds}ms"
        : $"{t.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)}ms";
}
