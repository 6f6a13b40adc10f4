using System.Globalization;
using System.Text;

namespace CrabKv.Benchmarks.Table;

/// <summary>
/// The printed table of a run: a summary (ops/s and × the baseline row per row × column) and
/// the details (every cell with both ratios, latency percentiles and bytes on disk per record),
/// as markdown or JSON.
/// </summary>
internal sealed class TableReport(IReadOnlyList<TableResult> results, IReadOnlyList<string> columns, IReadOnlyList<TableRow> rows, bool quick, TimeSpan elapsed, RunMetadata run)
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private TableResult? Find(TableRow row, string column) => results.FirstOrDefault(r => r.Row == row && r.Column == column);

    /// <summary>This cell's ops/s over the baseline row's (fsync per write) in the same column.</summary>
    private double? RatioToBaseline(TableResult r) => Ratio(r.Cell, Find(TableRow.FsyncPerWrite, r.Column)?.Cell);

    /// <summary>This cell's ops/s over the first column's in the same row.</summary>
    private double? RatioToFirstColumn(TableResult r) => Ratio(r.Cell, Find(r.Row, columns[0])?.Cell);

    private static double? Ratio(Cell? cell, Cell? baseline) =>
        cell is null || baseline is null || !(baseline.OpsPerSecond > 0) ? null : cell.OpsPerSecond / baseline.OpsPerSecond;

    private string Header() => string.Create(Inv,
        $"CrabKv table ({(quick ? "--quick" : "full run")}), {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, commit {JsonReport.Commit() ?? "unknown"}, {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}; the whole run took {elapsed.TotalMinutes:F1} min.");

    /// <summary>The markdown: a header line, the summary matrix, the detail table.</summary>
    public string Markdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(Header()).AppendLine();
        sb.AppendLine("ops/s (× the fsync-per-write row of the same column); batch rows count records; `–` = the row does not apply to the column.").AppendLine();
        sb.Append("| row |");
        foreach (var c in columns)
        {
            sb.Append(' ').Append(c).Append(" |");
        }
        sb.AppendLine().Append("|---|");
        foreach (var _ in columns)
        {
            sb.Append("---:|");
        }
        sb.AppendLine();
        foreach (var row in rows)
        {
            sb.Append("| ").Append(RowName(row)).Append(" |");
            foreach (var c in columns)
            {
                var r = Find(row, c);
                sb.Append(' ').Append(r switch
                {
                    null => "",
                    { Error: not null } => "error",
                    { Cell: null } => "–",
                    _ => Ops(r.Cell.OpsPerSecond) + (RatioToBaseline(r) is { } x && row != TableRow.FsyncPerWrite ? $" ({Times(x)})" : ""),
                }).Append(" |");
            }
            sb.AppendLine();
        }
        sb.AppendLine();
        sb.AppendLine("| row | column | ops/s | × fsync row | × " + columns[0] + " | p50 µs | p99 µs | p99.9 µs | disk B/record | note |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var row in rows)
        {
            foreach (var c in columns)
            {
                var r = Find(row, c);
                if (r is null)
                {
                    continue;
                }
                if (r.Cell is not { } cell)
                {
                    sb.AppendLine(Inv, $"| {RowName(row)} | {c} | {(r.Error is null ? "–" : "error")} | | | | | | | {Escape(r.Error ?? "does not apply")} |");
                    continue;
                }
                sb.AppendLine(Inv, $"| {RowName(row)} | {c} | {Ops(cell.OpsPerSecond)} | {Times(RatioToBaseline(r))} | {Times(RatioToFirstColumn(r))} | {Micros(cell.P50Micros)} | {Micros(cell.P99Micros)} | {Micros(cell.P999Micros)} | {(cell.DiskBytesPerRecord is { } d ? d.ToString("F1", Inv) : "")} | {Escape(cell.Note ?? "")} |");
            }
        }
        return sb.ToString();
    }

    /// <summary>The JSON: the run's metadata (<see cref="JsonReport"/>) and one object per cell (NaN and absent values as null).</summary>
    public string Json()
    {
        var cells = rows.SelectMany(row => columns.Select(c => Find(row, c))).Where(r => r is not null).Select(r => new
        {
            row = r!.Row.ToString(),
            column = r.Column,
            applies = r.Cell is not null || r.Error is not null,
            opsPerSecond = JsonReport.Num(r.Cell?.OpsPerSecond),
            ratioToBaselineRow = JsonReport.Num(RatioToBaseline(r)),
            ratioToFirstColumn = JsonReport.Num(RatioToFirstColumn(r)),
            p50Micros = JsonReport.Num(r.Cell?.P50Micros),
            p99Micros = JsonReport.Num(r.Cell?.P99Micros),
            p999Micros = JsonReport.Num(r.Cell?.P999Micros),
            diskBytesPerRecord = JsonReport.Num(r.Cell?.DiskBytesPerRecord),
            note = r.Cell?.Note,
            error = r.Error,
        });
        return JsonReport.Serialize(run, new
        {
            baselineRow = TableRow.FsyncPerWrite.ToString(),
            firstColumn = columns[0],
            columns,
            rows = rows.Select(r => r.ToString()),
            cells,
        });
    }

    /// <summary>The row as the seed's table names it.</summary>
    public static string RowName(TableRow row) => row switch
    {
        TableRow.FsyncPerWrite => "put, fsync per write (baseline)",
        TableRow.SyncInterval100Ms => "put, sync interval 100 ms",
        TableRow.Batch100 => "batch of 100, one fsync",
        TableRow.AsyncCompaction => "put during async compaction",
        TableRow.Snappy => "put ~1 KiB JSON, Snappy",
        TableRow.WriteBack => "put, write-back cache",
        TableRow.AllCombined => "all combined (high-throughput)",
        TableRow.GetHit => "get, random hit",
        TableRow.GetMiss => "get, miss",
        _ => row.ToString(),
    };

    private static string Ops(double v) => double.IsFinite(v) ? v.ToString("N0", Inv) : "–";

    private static string Times(double? v) => v is { } x && double.IsFinite(x) ? x.ToString(x >= 10 ? "N0" : "F2", Inv) + "×" : "";

    private static string Micros(double v) => !double.IsFinite(v) ? "" : v < 10 ? v.ToString("F1", Inv) : v.ToString("N0", Inv);

    private static string Escape(string s) => s.Replace("|", "\\|").Replace("\n", " ");
}
