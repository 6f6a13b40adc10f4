using System.Text.Json;
using CrabKv.Actors;
using CrabKv.Node.Cli;
using Spectre.Console;

namespace CrabKv.Node.Output;

/// <summary>How <c>crabkv stats</c> shows a store's statistics: a Spectre table, or JSON for scripts.</summary>
public static class StatsView
{
    /// <summary>
    /// INFO-like: the store's sums and each node's version, uptime, memory and effective
    /// configuration (<see cref="StoreStats.Summary"/>), then one row per partition and a totals row.
    /// </summary>
    public static void Table(IAnsiConsole console, HostPort? node, StoreStats stats)
    {
        foreach (var section in stats.Summary().Where(r => !r.Section.StartsWith("partition ", StringComparison.Ordinal)).GroupBy(r => r.Section))
        {
            var grid = new Table().Border(TableBorder.Rounded).Title(Markup.Escape(section.Key))
                .AddColumn("field").AddColumn(new TableColumn("value"));
            foreach (var row in section)
            {
                grid.AddRow(Markup.Escape(row.Name), Markup.Escape(row.Value));
            }
            console.Write(grid);
        }
        PartitionTable(console, node, stats);
    }

    private static void PartitionTable(IAnsiConsole console, HostPort? node, StoreStats stats)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .Title(node is null ? "CrabKv store" : $"CrabKv node {node}")
            .AddColumn("partition")
            .AddColumn(new TableColumn("keys").RightAligned())
            .AddColumn(new TableColumn("segments").RightAligned())
            .AddColumn(new TableColumn("bytes").RightAligned())
            .AddColumn(new TableColumn("stale").RightAligned())
            .AddColumn(new TableColumn("puts").RightAligned())
            .AddColumn(new TableColumn("gets").RightAligned())
            .AddColumn(new TableColumn("fsyncs").RightAligned())
            .AddColumn(new TableColumn("cache hits").RightAligned())
            .AddColumn(new TableColumn("compactions").RightAligned())
            .AddColumn("recovery")
            .AddColumn("node")
            .AddColumn("state");
        foreach (var p in stats.Partitions.OrderBy(p => p.Partition))
        {
            table.AddRow(
                DataDirectory.PartitionDirectoryName(p.Partition),
                $"{p.Keys:N0}", $"{p.Segments:N0}", $"{p.TotalBytes:N0}", $"{p.StaleBytes:N0}",
                $"{p.Puts:N0}", $"{p.Gets:N0}", $"{p.Fsyncs:N0}",
                $"{p.CacheHits:N0}/{p.CacheHits + p.CacheMisses:N0}", $"{p.Compactions:N0}",
                $"{StoreStats.ModeName(p.RecoveryMode)} {p.RecoveryDuration.TotalMilliseconds:N0} ms",
                Markup.Escape(p.Node ?? "-"),
                p.Unavailable ? Markup.Escape(p.FailureReason ?? "unavailable") : p.ReadOnly ? Markup.Escape($"READ-ONLY: {p.FailureReason}") : "ok");
        }
        var all = stats.Partitions;
        table.AddEmptyRow();
        table.AddRow("[bold]total[/]",
            $"{stats.Keys:N0}", $"{all.Sum(p => p.Segments):N0}", $"{all.Sum(p => p.TotalBytes):N0}", $"{all.Sum(p => p.StaleBytes):N0}",
            $"{stats.Puts:N0}", $"{all.Sum(p => p.Gets):N0}", $"{stats.Fsyncs:N0}",
            $"{all.Sum(p => p.CacheHits):N0}/{all.Sum(p => p.CacheHits + p.CacheMisses):N0}", $"{all.Sum(p => p.Compactions):N0}",
            "", $"{stats.Nodes.Count} node{(stats.Nodes.Count == 1 ? "" : "s")}",
            string.Join(", ", new[]
            {
                all.Count(p => p.ReadOnly) is > 0 and var r ? $"{r} read-only" : null,
                all.Count(p => p.Unavailable) is > 0 and var u ? $"{u} unavailable" : null,
            }.Where(x => x is not null)) is { Length: > 0 } problems ? problems : "ok");
        console.Write(table);
    }

    /// <summary>Plain JSON: totals and every field of every partition.</summary>
    public static string Json(HostPort? node, StoreStats stats)
    {
        var document = new
        {
            node = node?.ToString(),
            partitionCount = stats.Partitions.Count,
            keys = stats.Keys,
            totalBytes = stats.Partitions.Sum(p => p.TotalBytes),
            staleBytes = stats.Partitions.Sum(p => p.StaleBytes),
            puts = stats.Puts,
            gets = stats.Partitions.Sum(p => p.Gets),
            fsyncs = stats.Fsyncs,
            readOnlyPartitions = stats.Partitions.Count(p => p.ReadOnly),
            unavailablePartitions = stats.Partitions.Count(p => p.Unavailable),
            nodes = stats.Nodes,
            partitions = stats.Partitions.OrderBy(p => p.Partition).ToList(),
        };
        return JsonSerializer.Serialize(document, JsonOptions);
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // Names, as the table and the README give them ("recoveryMode": "hints"), and a segment
        // as its file name rather than its internal fields.
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.CamelCase), new SegmentIdAsFileName() },
    };

    private sealed class SegmentIdAsFileName : System.Text.Json.Serialization.JsonConverter<Storage.Segments.SegmentId>
    {
        public override Storage.Segments.SegmentId Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            throw new NotSupportedException("stats JSON is written, not read");

        public override void Write(Utf8JsonWriter writer, Storage.Segments.SegmentId value, JsonSerializerOptions options) =>
            writer.WriteStringValue(value.DataFileName);
    }
}
