using System.Globalization;
using System.Text;
using CrabKv.Storage;

namespace CrabKv.Actors;

/// <summary>
/// One line of an INFO-like stats report (<see cref="StoreStats.Summary"/>): a section
/// (<c>store</c>, <c>node &lt;address&gt;</c>, <c>partition &lt;n&gt;</c>), a field name and its
/// value, formatted with the invariant culture (sizes in bytes, durations in milliseconds or
/// seconds as the name says).
/// </summary>
public sealed record StatsRow(string Section, string Name, string Value);

public sealed partial record StoreStats
{
    /// <summary>Section name of the store-wide sums in <see cref="Summary"/>.</summary>
    public const string StoreSection = "store";

    /// <summary>
    /// The replies of several partitions (or nodes) as one: partitions in partition order, one
    /// <see cref="NodeStats"/> per node (the one with the longest uptime, i.e. the latest, when
    /// several partitions of a node answered), nodes in address order.
    /// </summary>
    public static StoreStats Merge(IEnumerable<StoreStats> parts, long requestId)
    {
        var list = parts.ToList();
        var partitions = list.SelectMany(s => s.Partitions).OrderBy(p => p.Partition).ToList();
        var nodes = list.SelectMany(s => s.Nodes)
            .GroupBy(n => n.Node, StringComparer.Ordinal)
            .Select(g => g.MaxBy(n => n.Uptime)!)
            .OrderBy(n => n.Node, StringComparer.Ordinal)
            .ToList();
        return new StoreStats(partitions, nodes, requestId);
    }

    /// <summary>The partitions of each node, grouped by <see cref="PartitionStats.Node"/> ("" for partitions that name none).</summary>
    public ILookup<string, PartitionStats> PartitionsByNode() => Partitions.ToLookup(p => p.Node ?? "", StringComparer.Ordinal);

    /// <summary>Section name of a node in <see cref="Summary"/>.</summary>
    public static string NodeSection(string node) => $"node {node}";

    /// <summary>Section name of a partition in <see cref="Summary"/>.</summary>
    public static string PartitionSection(int partition) => $"partition {partition}";

    /// <summary>
    /// Every field as rows, for a table or INFO-style text: first the <c>store</c> section
    /// (sums), then a <c>node &lt;address&gt;</c> section per node (version, uptime, memory, its
    /// partitions' sums, then <c>config.*</c> rows), then a <c>partition &lt;n&gt;</c> section per
    /// partition (node, state, sizes, recovery, counters).
    /// </summary>
    public IReadOnlyList<StatsRow> Summary()
    {
        var rows = new List<StatsRow>();
        void Add(string section, string name, object value) => rows.Add(new StatsRow(section, name, Format(value)));

        Add(StoreSection, "nodes", Math.Max(Nodes.Count, Partitions.Where(p => !p.Unavailable).Select(p => p.Node ?? "").Distinct().Count()));
        Add(StoreSection, "partitions", Partitions.Count);
        Add(StoreSection, "read-only-partitions", Partitions.Count(p => p.ReadOnly));
        Add(StoreSection, "unavailable-partitions", Partitions.Count(p => p.Unavailable));
        AddSums(StoreSection, Partitions, Add);

        var byNode = PartitionsByNode();
        foreach (var n in Nodes)
        {
            var section = NodeSection(n.Node);
            Add(section, "version", n.Version);
            Add(section, "uptime-seconds", Math.Round(n.Uptime.TotalSeconds, 1));
            Add(section, "process-id", n.ProcessId);
            Add(section, "working-set-bytes", n.WorkingSetBytes);
            Add(section, "gc-heap-bytes", n.GcHeapBytes);
            Add(section, "partitions", string.Join(",", byNode[n.Node].Select(p => p.Partition)));
            AddSums(section, byNode[n.Node].ToList(), Add);
            foreach (var (key, value) in n.Configuration)
            {
                Add(section, "config." + key, value);
            }
        }

        foreach (var p in Partitions)
        {
            var section = PartitionSection(p.Partition);
            Add(section, "node", p.Node ?? "");
            Add(section, "state", p.Unavailable ? p.FailureReason ?? "unavailable" : p.ReadOnly ? $"read-only: {p.FailureReason}" : "ok");
            Add(section, "keys", p.Keys);
            Add(section, "segments", p.Segments);
            Add(section, "total-bytes", p.TotalBytes);
            Add(section, "live-bytes", p.LiveBytes);
            Add(section, "stale-bytes", p.StaleBytes);
            Add(section, "key-directory-bytes", p.KeyDirectoryBytes);
            Add(section, "dirty-bytes", p.DirtyBytes);
            Add(section, "dirty-keys", p.DirtyKeys);
            Add(section, "cache-entries", p.CacheEntries);
            Add(section, "cache-bytes", p.CacheBytes);
            Add(section, "recovery-mode", ModeName(p.RecoveryMode));
            Add(section, "recovery-ms", Math.Round(p.RecoveryDuration.TotalMilliseconds, 1));
            Add(section, "segments-from-hints", p.SegmentsFromHints);
            Add(section, "segments-scanned", p.SegmentsScanned);
            Add(section, "puts", p.Puts);
            Add(section, "gets", p.Gets);
            Add(section, "deletes", p.Deletes);
            Add(section, "fsyncs", p.Fsyncs);
            Add(section, "wal-writes", p.WalWrites);
            Add(section, "cache-hits", p.CacheHits);
            Add(section, "cache-misses", p.CacheMisses);
            Add(section, "flushes", p.Flushes);
            Add(section, "compactions", p.Compactions);
            Add(section, "expired-swept", p.ExpiredSwept);
        }
        return rows;
    }

    /// <summary>
    /// <see cref="Summary"/> as INFO-style text: a <c># section</c> line, then <c>name: value</c>
    /// lines, a blank line between sections.
    /// </summary>
    public string ToInfoText()
    {
        var text = new StringBuilder();
        string? section = null;
        foreach (var row in Summary())
        {
            if (row.Section != section)
            {
                if (section is not null)
                {
                    text.Append('\n');
                }
                section = row.Section;
                text.Append("# ").Append(section).Append('\n');
            }
            text.Append(row.Name).Append(": ").Append(row.Value).Append('\n');
        }
        return text.ToString();
    }

    /// <summary>The lower-case name of a recovery mode, as <see cref="Summary"/> shows it.</summary>
    public static string ModeName(RecoveryMode mode) => mode switch
    {
        RecoveryMode.None => "none",
        RecoveryMode.Hints => "hints",
        RecoveryMode.Scan => "scan",
        RecoveryMode.Mixed => "mixed",
        _ => ((byte)mode).ToString(CultureInfo.InvariantCulture),
    };

    private static void AddSums(string section, IReadOnlyList<PartitionStats> partitions, Action<string, string, object> add)
    {
        add(section, "keys", partitions.Sum(p => (long)p.Keys));
        add(section, "segments", partitions.Sum(p => (long)p.Segments));
        add(section, "total-bytes", partitions.Sum(p => p.TotalBytes));
        add(section, "live-bytes", partitions.Sum(p => p.LiveBytes));
        add(section, "stale-bytes", partitions.Sum(p => p.StaleBytes));
        add(section, "dirty-bytes", partitions.Sum(p => p.DirtyBytes));
        add(section, "cache-bytes", partitions.Sum(p => p.CacheBytes));
        add(section, "puts", partitions.Sum(p => p.Puts));
        add(section, "gets", partitions.Sum(p => p.Gets));
        add(section, "fsyncs", partitions.Sum(p => p.Fsyncs));
        add(section, "recovery-ms-max", partitions.Count == 0 ? 0 : Math.Round(partitions.Max(p => p.RecoveryDuration).TotalMilliseconds, 1));
    }

    private static string Format(object value) => value switch
    {
        string s => s,
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
