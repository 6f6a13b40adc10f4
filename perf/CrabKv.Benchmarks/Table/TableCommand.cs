using System.Diagnostics;
using Spectre.Console;

namespace CrabKv.Benchmarks.Table;

/// <summary>
/// <c>-- table [--quick] [--json] [--columns a,b] [--rows x,y]</c>: measures every selected
/// column × row in this one process (column by column, each column's rows in table order),
/// shows progress on stderr, then prints the table (markdown, or JSON with <c>--json</c>) on
/// stdout and writes the markdown to <c>BenchmarkDotNet.Artifacts/results/table.md</c>.
/// </summary>
public static class TableCommand
{
    private const string Usage = """
        usage: table [--quick] [--json] [--no-warmup] [--abba] [--columns a,b] [--rows x,y]
          --quick     smoke run: a tenth of the operations, 1 s per cell, 100k preloaded keys (about 2 minutes)
          --no-warmup skip the unreported JIT warm-up of the actor store before the first column
          --abba      measure every column twice, in the order given and then in reverse (a b … b a), and
                      print each cell's mean: a ratio between two columns is then not decided by which ran first
          --json      print JSON instead of markdown (the markdown file is written either way)
          --columns   column names, comma-separated (case and '-' for ' ' ignored), e.g. "engine 1t,client-64";
                      measured in the order given, printed in table order
          --rows      row names, comma-separated, e.g. FsyncPerWrite,GetHit
        """;

    /// <summary>Runs the command; 0 when every cell was measured, 1 when some failed, 2 for bad arguments.</summary>
    public static async Task<int> Run(string[] args)
    {
        bool quick = false, json = false, warmUp = true, abba = false;
        string[]? columnNames = null, rowNames = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--json":
                    json = true;
                    break;
                case "--no-warmup":
                    warmUp = false;
                    break;
                case "--abba":
                    abba = true;
                    break;
                case "--columns" when i + 1 < args.Length:
                    columnNames = Split(args[++i]);
                    break;
                case "--rows" when i + 1 < args.Length:
                    rowNames = Split(args[++i]);
                    break;
                case "-h" or "--help":
                    Console.Error.WriteLine(Usage);
                    return 0;
                default:
                    Console.Error.WriteLine($"table: unknown or incomplete argument '{args[i]}'.");
                    Console.Error.WriteLine(Usage);
                    return 2;
            }
        }

        var columns = TableColumns.All.ToList();
        if (columnNames is not null)
        {
            var unknown = columnNames.Where(n => !columns.Any(c => Same(c.Name, n))).ToList();
            if (unknown.Count > 0)
            {
                Console.Error.WriteLine($"table: unknown column(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))}; the columns are: {string.Join(", ", columns.Select(c => c.Name))}.");
                return 2;
            }
            columns = columns.Where(c => columnNames.Any(n => Same(c.Name, n))).ToList();
        }
        var printOrder = columns.Select(c => c.Name).ToList();
        if (columnNames is not null)
        {
            // Measured in the order given (printed in table order): a same-run ratio can then be
            // taken in both orders.
            columns = columns.OrderBy(c => Array.FindIndex(columnNames, n => Same(c.Name, n))).ToList();
        }
        var rows = Enum.GetValues<TableRow>().ToList();
        if (rowNames is not null)
        {
            var unknown = rowNames.Where(n => !Enum.TryParse<TableRow>(n, ignoreCase: true, out _)).ToList();
            if (unknown.Count > 0)
            {
                Console.Error.WriteLine($"table: unknown row(s) {string.Join(", ", unknown.Select(u => $"'{u}'"))}; the rows are: {string.Join(", ", rows)}.");
                return 2;
            }
            var wanted = rowNames.Select(n => Enum.Parse<TableRow>(n, ignoreCase: true)).ToHashSet();
            rows = rows.Where(wanted.Contains).ToList();
        }

        var root = Path.Combine(Path.GetTempPath(), $"crabkv-table-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        var options = new TableOptions(root, quick);
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        var results = new List<TableResult>();
        var run = RunMetadata.Start(string.Join(" ", ["table", .. args]), quick);
        var watch = Stopwatch.StartNew();
        try
        {
            var stderr = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
            await stderr.Progress()
                .AutoClear(false)
                .HideCompleted(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
                .StartAsync(async ctx =>
                {
                    // With --abba a second pass measures fresh instances of the columns in reverse order.
                    var passes = abba
                        ? columns.Select(c => (Column: c, Pass: 1)).Concat(columns.AsEnumerable().Reverse().Select(c => (Column: TableColumns.All.Single(f => f.Name == c.Name), Pass: 2))).ToList()
                        : columns.Select(c => (Column: c, Pass: 1)).ToList();
                    var tasks = passes.ToDictionary(p => p.Column, p => rows.ToDictionary(r => r, r => ctx.AddTask(abba ? $"{p.Column.Name} · {r} (pass {p.Pass})" : $"{p.Column.Name} · {r}", autoStart: false, maxValue: 1)));
                    if (warmUp && columns.Any(c => c is ClientColumn or ClientActorsColumn))
                    {
                        await WarmUp(ctx.AddTask("warm-up (JIT, not reported)", maxValue: 1), root, cancel.Token);
                    }
                    // Pass 2 gets a root of its own: a store column names its directories by a counter
                    // that a fresh instance starts again, and must not reopen pass 1's data.
                    var secondPass = options with { Root = Path.Combine(root, "pass-2") };
                    Directory.CreateDirectory(secondPass.Root);
                    foreach (var (column, pass) in passes)
                    {
                        try
                        {
                            foreach (var row in TableWorkload.MeasureOrder.Where(rows.Contains))
                            {
                                var task = tasks[column][row];
                                task.StartTask();
                                results.Add(await MeasureCell(column, row, pass == 1 ? options : secondPass, new TaskProgress(task), cancel.Token));
                                task.Value = 1;
                                task.StopTask();
                            }
                        }
                        finally
                        {
                            if (column is IAsyncDisposable disposable)
                            {
                                await disposable.DisposeAsync();
                            }
                        }
                    }
                });
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("table: cancelled; printing the cells measured so far.");
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            TableWorkload.DeleteDirectory(root);
        }

        var report = new TableReport(abba ? MeanOfPasses(results) : results, printOrder, rows, quick, watch.Elapsed, run);
        var markdown = report.Markdown();
        Console.WriteLine(json ? report.Json() : markdown);
        var file = Path.Combine(ProjectDirectory(), "BenchmarkDotNet.Artifacts", "results", "table.md");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        await File.WriteAllTextAsync(file, markdown);
        Console.Error.WriteLine($"table: written to {file} ({watch.Elapsed.TotalMinutes:F1} min)");
        return results.Any(r => r.Error is not null) ? 1 : 0;
    }

    /// <summary>
    /// Runs the actor store's two 64-caller columns through their write and get paths in quick
    /// mode, unreported, before anything is measured. The store's code is shared by every actor
    /// column; without this the first one measured (the typed client's) also paid for the
    /// tiered JIT compiling that code, on a 2-core machine whose cores the callers keep busy.
    /// </summary>
    private static async Task WarmUp(ProgressTask task, string root, CancellationToken cancellationToken)
    {
        var options = new TableOptions(Path.Combine(root, "warm-up"), Quick: true);
        Directory.CreateDirectory(options.Root);
        TableRow[] rows = [TableRow.SyncInterval100Ms, TableRow.WriteBack, TableRow.GetHit];
        ITableColumn[] columns = [new ClientColumn(64), new ClientActorsColumn(64)];
        var done = 0;
        foreach (var column in columns)
        {
            try
            {
                foreach (var row in TableWorkload.MeasureOrder.Where(rows.Contains))
                {
                    await column.MeasureAsync(row, options, null, cancellationToken);
                    task.Value = (double)++done / (rows.Length * columns.Length);
                }
            }
            finally
            {
                if (column is IAsyncDisposable disposable)
                {
                    await disposable.DisposeAsync();
                }
            }
        }
        task.StopTask();
    }

    private static async Task<TableResult> MeasureCell(ITableColumn column, TableRow row, TableOptions options, IProgress<double> progress, CancellationToken cancellationToken)
    {
        try
        {
            return new TableResult(row, column.Name, await column.MeasureAsync(row, options, progress, cancellationToken), null);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Console.Error.WriteLine($"table: {column.Name} · {row} failed: {e.GetType().Name}: {e.Message}");
            return new TableResult(row, column.Name, null, e.GetType().Name + ": " + e.Message);
        }
    }

    /// <summary>
    /// The cells of an --abba run, each the mean of its two measurements: ops/s and the latency
    /// percentiles averaged, bytes on disk from the first, both throughputs in the note. A cell
    /// that failed in either pass is reported failed.
    /// </summary>
    internal static List<TableResult> MeanOfPasses(IReadOnlyList<TableResult> results) =>
        results.GroupBy(r => (r.Row, r.Column)).Select(g =>
        {
            var (first, second) = (g.First(), g.Last());
            if (g.Count() == 1 || first.Error is not null || second.Error is not null || first.Cell is null || second.Cell is null)
            {
                return first.Error is not null || second.Error is null ? first : second;
            }
            var (a, b) = (first.Cell, second.Cell);
            var note = $"mean of {a.OpsPerSecond:N0} (first pass) and {b.OpsPerSecond:N0} ops/s (second)";
            return first with
            {
                Cell = new Cell((a.OpsPerSecond + b.OpsPerSecond) / 2, (a.P50Micros + b.P50Micros) / 2, (a.P99Micros + b.P99Micros) / 2,
                    (a.P999Micros + b.P999Micros) / 2, a.DiskBytesPerRecord, a.Note is null ? note : $"{a.Note}; {note}"),
            };
        }).ToList();

    private static string[] Split(string list) => list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static bool Same(string name, string wanted) =>
        string.Equals(name.Replace('-', ' '), wanted.Replace('-', ' ').Replace('_', ' '), StringComparison.OrdinalIgnoreCase);

    /// <summary>perf/CrabKv.Benchmarks (where the .csproj is), or the current directory.</summary>
    private static string ProjectDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "CrabKv.Benchmarks.csproj")))
            {
                return dir.FullName;
            }
        }
        return Directory.GetCurrentDirectory();
    }

    /// <summary>Reports a cell's progress straight into its progress-bar task (no synchronisation context hop).</summary>
    private sealed class TaskProgress(ProgressTask task) : IProgress<double>
    {
        public void Report(double value) => task.Value = Math.Clamp(value, 0, 1);
    }
}

/// <summary>One cell of a run: its measurement, null when the row does not apply, or the error that ended it.</summary>
internal sealed record TableResult(TableRow Row, string Column, Cell? Cell, string? Error);
