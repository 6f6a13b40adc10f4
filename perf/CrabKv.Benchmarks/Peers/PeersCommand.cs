using System.Globalization;
using System.Text;
using CrabKv.Benchmarks.Table;

namespace CrabKv.Benchmarks.Peers;

/// <summary>
/// <c>peers [--quick] [--peer NAME]... [--row NAME]...</c>: the peer columns (FASTER,
/// ZoneTree, RocksDB) over every row of the table, one after another in this process, printed
/// as a markdown table: ops/s, ratio to the peer's own fsync-per-write row, p50/p99/p99.9
/// latency and bytes on disk per record, then the notes. The same columns run inside the
/// <c>table</c> command once it lists them.
/// </summary>
internal static class PeersCommand
{
    /// <summary>The three peer columns, in table order.</summary>
    public static IEnumerable<ITableColumn> Columns() => [new FasterColumn(), new ZoneTreeColumn(), new RocksDbColumn()];

    public static int Run(string[] args) => RunAsync(args).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(string[] args)
    {
        var quick = args.Contains("--quick");
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

        Console.WriteLine(Format(columns.Select(c => c.Name).ToList(), rows, cells, quick));
        return 0;
    }

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
