using HdrHistogram;

namespace CrabKv.Benchmarks.Table;

/// <summary>
/// The rows of the seed's Phase-5 table, as this project measures them. Every row writes or
/// reads 100-byte values under 12-byte keys unless its column says otherwise.
/// </summary>
public enum TableRow
{
    /// <summary>Put, made durable before it is acknowledged (fsync per write). The baseline row.</summary>
    FsyncPerWrite,
    /// <summary>Put, durable within 100 ms (sync interval 100 ms).</summary>
    SyncInterval100Ms,
    /// <summary>Batches of 100 puts, one durable sync per batch (ops = records).</summary>
    Batch100,
    /// <summary>Put (sync interval 100 ms) while a compaction of the store runs in the background.</summary>
    AsyncCompaction,
    /// <summary>Put of ~1 KiB JSON-like values with Snappy on (sync interval 100 ms).</summary>
    Snappy,
    /// <summary>Put into the write-back cache (flushed in the background).</summary>
    WriteBack,
    /// <summary>The seed's high-throughput setup: write-back + Snappy + 100 ms sync + background compaction.</summary>
    AllCombined,
    /// <summary>Random get of a key that exists (1M keys preloaded unless quick).</summary>
    GetHit,
    /// <summary>Get of a key that does not exist.</summary>
    GetMiss,
}

/// <summary>How much a table run does; columns scale their op counts from it.</summary>
/// <param name="Root">A scratch directory for this run (the column makes its own sub-directory and deletes it).</param>
/// <param name="Quick">A smoke run: a tenth of the operations, 100k preloaded keys instead of 1M.</param>
/// <param name="Callers">Concurrent callers for the many-caller columns (64).</param>
public sealed record TableOptions(string Root, bool Quick, int Callers = 64)
{
    /// <summary>Keys preloaded for the get rows.</summary>
    public int PreloadKeys => Quick ? 100_000 : 1_000_000;

    /// <summary>Scales a full-run operation count down for quick runs (at least 1,000).</summary>
    public int Ops(int full) => Quick ? Math.Max(1_000, full / 10) : full;
}

/// <summary>One measured cell: throughput, latency percentiles (µs) and bytes on disk per record.</summary>
public sealed record Cell(double OpsPerSecond, double P50Micros, double P99Micros, double P999Micros, double? DiskBytesPerRecord = null, string? Note = null)
{
    /// <summary>
    /// A cell from a latency histogram recorded in <see cref="System.Diagnostics.Stopwatch"/> ticks
    /// (one value per operation, or per batch for batch rows: pass <paramref name="opsPerValue"/>),
    /// the operations done and the wall time they took.
    /// </summary>
    public static Cell From(HistogramBase stopwatchTicks, long ops, TimeSpan elapsed, double? diskBytesPerRecord = null, string? note = null)
    {
        double Micros(double percentile) =>
            stopwatchTicks.TotalCount == 0 ? double.NaN
                : stopwatchTicks.GetValueAtPercentile(percentile) * 1e6 / System.Diagnostics.Stopwatch.Frequency;
        return new Cell(ops / elapsed.TotalSeconds, Micros(50), Micros(99), Micros(99.9), diskBytesPerRecord, note);
    }

    /// <summary>A new histogram for stopwatch ticks: 1 tick to 60 s, 3 significant digits.</summary>
    public static LongHistogram NewHistogram() =>
        new(1, System.Diagnostics.Stopwatch.Frequency * 60, 3);
}

/// <summary>
/// One column of the table: a way of running the rows (the embedded engine on one thread, the
/// typed client with N callers, client actors, the cluster, or a peer store). A column is
/// measured row by row in the same process run as every other column, so ratios between
/// columns and to the baseline row are same-run ratios.
/// </summary>
public interface ITableColumn
{
    /// <summary>Short header, e.g. "engine 1t", "client 64", "FASTER".</summary>
    string Name { get; }

    /// <summary>
    /// Measures <paramref name="row"/>; null when the row does not apply to this column (e.g. a
    /// peer without background compaction). The column owns its store's setup and teardown and
    /// cleans its directories under <see cref="TableOptions.Root"/>.
    /// </summary>
    Task<Cell?> MeasureAsync(TableRow row, TableOptions options, IProgress<double>? progress, CancellationToken cancellationToken);
}
