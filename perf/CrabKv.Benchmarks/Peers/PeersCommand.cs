using System.Globalization;
using System.Text;
using CrabKv.Benchmarks.Table;

namespace CrabKv.Benchmarks.Peers;

/// <summary>
/// <c>peers [--quick] [--json] [--peer NAME]... [--row NAME]...</c>: the peer columns (FASTER,
/// ZoneTree, RocksDB) over every row of the table, one after another in this process, printed
/// as a markdown table: ops/s, ratio to the peer's own fsync-per-write row, p50/p99/p99.9
/// latency and bytes on disk per record, then the notes. With <c>--json</c>, the same figures
/// as one JSON document on stdout (<see cref="JsonReport"/>) and the markdown on stderr.
/// The same columns run inside the <c>table</c> command once it lists them.
/// </summary>
internal static class PeersCommand
{
    private const string Usage = """
        usage: peers [--quick] [--json] [--peer NAME]... [--row NAME]...
          --quick   a tenth of the ops, 100k preloaded keys, 1.5 s per cell
          --json    print one JSON document on stdout (every figure of the markdown, run metadata first); the markdown goes to stderr
          --peer    FASTER, ZoneTree or RocksDB (repeat for more; default all three)
          --row     a table row, e.g. FsyncPerWrite (repeat for more; default every row)
        """;

    /// <summary>The three peer columns, in table order.</summary>
    public static IEnumerable<ITableColumn> Columns() => [new FasterColumn(), new ZoneTreeColumn(), new RocksDbColumn()];

    public static int Run(string[] args) => RunAsync(args).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(string[] args)
    {
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick" or "--json":
                    break;
                case "--peer" or "--row" when i + 1 < args.Length:
                    i++;
                    break;
                case "-h" or "--help":
                    Console.Error.WriteLine(Usage);
                    return 0;
                default:
                    Console.Error.WriteLine($"peers: unknown or incomplete argument '{args[i]}'.");
                    Console.Error.WriteLine(Usage);
                    return 2;
            }
        }
        var quick = args.Contains("--quick");
        var json = args.Contains("--json");
        var peers = Values(args, "--peer");
        var rowNames = Values(args, "--row");
        var unknown = rowNames.Where(r => !Enum.TryParse<TableRow>(r, ignoreCase: true, out _)).ToList();
        if (unknown.Count > 0)
        {
            Console.Error.WriteLine($"peers: unknown row(s) {string.Join(", ", unknown)}; rows are {string.Join(", ", Enum.GetNames<TableRow>())}.");
            return 2;
        }
        var rows = rowNames.Count == 0 ? Enum.GetValues<TableRow>() : rowNames.Select(r => Enum.Parse<TableRow>(r, ignoreCase: true)).ToArray();
        var columns = Columns().Where(c => peers.Count == 0 || peers.Contains(c.Name, StringComparer.OrdinalIgnoreCase)).ToList();
        if (columns.Count == 0)
        {
            Console.Error.WriteLine($"peers: no peer named {string.Join(", ", peers)}; peers are FASTER, ZoneTree, RocksDB.");
            return 2;
        }

        var run = RunMetadata.Start(string.Join(" ", ["peers", .. args]), quick);
        var root = BenchData.NewTempDirectory("peers");
        var options = new TableOptions(root, quick);
        var cells = new Dictionary<(string Column, TableRow Row), Cell?>();
        try
        {
            foreach (var column in columns)
            {
                foreach (var row in rows)
                {
                    Console.Error.Write($"// {column.Name} {row} ... ");
                    var cell = await column.MeasureAsync(row, options, null, CancellationToken.None).ConfigureAwait(false);
                    cells[(column.Name, row)] = cell;
                    Console.Error.WriteLine(cell is null ? "n/a" : $"{cell.OpsPerSecond:N0} ops/s");
                }
                if (column is IAsyncDisposable disposable)
                {
                    await disposable.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
        finally
        {
            PeerWorkload.DeleteDirectory(root);
        }

        var names = columns.Select(c => c.Name).ToList();
        if (json)
        {
            Console.Error.WriteLine(Format(names, rows, cells, quick));
            JsonReport.Write(run, Json(names, rows, cells));
        }
        else
        {
            Console.WriteLine(Format(names, rows, cells, quick));
        }
        return 0;
    }

    /// <summary>Every figure of <see cref="Format"/>: one object per row × peer, in the same order (a row that does not apply has nulls).</summary>
    private static object Json(IReadOnlyList<string> columns, IReadOnlyList<TableRow> rows, Dictionary<(string, TableRow), Cell?> cells) => new
    {
        threadsPerPeer = 1,
        baselineRow = TableRow.FsyncPerWrite.ToString(),
        peers = columns,
        rows = rows.Select(r => r.ToString()),
        cells = rows.SelectMany(row => columns.Select(column =>
        {
            var cell = cells.GetValueOrDefault((column, row));
            var baseline = cells.GetValueOrDefault((column, TableRow.FsyncPerWrite));
            return new
            {
                row = row.ToString(),
                peer = column,
                applies = cell is not null,
                opsPerSecond = JsonReport.Num(cell?.OpsPerSecond),
                ratioToBaselineRow = cell is null || baseline is null ? null : JsonReport.Num(cell.OpsPerSecond / baseline.OpsPerSecond, 3),
                p50Micros = JsonReport.Num(cell?.P50Micros),
                p99Micros = JsonReport.Num(cell?.P99Micros),
                p999Micros = JsonReport.Num(cell?.P999Micros),
                diskBytesPerRecord = JsonReport.Num(cell?.DiskBytesPerRecord),
                note = cell?.Note,
            };
        })),
    };

    private static List<string> Values(string[] args, string flag) =>
        args.Select((a, i) => (a, i)).Where(p => p.a == flag && p.i + 1 < args.Length).Select(p => args[p.i + 1]).ToList();

    private static string Format(IReadOnlyList<string> columns, IReadOnlyList<TableRow> rows, Dictionary<(string, TableRow), Cell?> cells, bool quick)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(c, $"Peers in the same run ({(quick ? "--quick" : "full")}; {Environment.ProcessorCount} cores; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC); one thread per peer; latency in µs.");
        sb.AppendLine();
        sb.AppendLine("| row | peer | ops/s | × fsync/write | p50 | p99 | p99.9 | disk B/record |");
        sb.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|");
        var notes = new List<string>();
        foreach (var row in rows)
        {
            foreach (var column in columns)
            {
                if (!cells.TryGetValue((column, row), out var cell) || cell is null)
                {
                    sb.AppendLine(c, $"| {row} | {column} | n/a | | | | | |");
                    continue;
                }
                var baseline = cells.GetValueOrDefault((column, TableRow.FsyncPerWrite));
                var ratio = baseline is null || row == TableRow.FsyncPerWrite ? "" : (cell.OpsPerSecond / baseline.OpsPerSecond).ToString("N1", c) + "×";
                var mark = "";
                if (cell.Note is not null)
                {
                    notes.Add(cell.Note);
                    mark = $" [{notes.Count}]";
                }
                sb.AppendLine(c, $"| {row} | {column}{mark} | {cell.OpsPerSecond:N0} | {ratio} | {cell.P50Micros:N1} | {cell.P99Micros:N1} | {cell.P999Micros:N1} | {(cell.DiskBytesPerRecord is { } d ? d.ToString("N0", c) : "")} |");
            }
        }
        sb.AppendLine();
        for (var i = 0; i < notes.Count; i++)
        {
            sb.AppendLine(c, $"[{i + 1}] {notes[i]}");
        }
        return sb.ToString();
    }
}
