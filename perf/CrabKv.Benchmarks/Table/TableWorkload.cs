using System.Collections.Concurrent;
using System.Diagnostics;
using HdrHistogram;

namespace CrabKv.Benchmarks.Table;

/// <summary>
/// What each row does, shared by the project's own columns (engine, client, client actors,
/// cluster) so they run the same workload: the keys, the values, the op and time limits of the
/// timed part and of its warm-up, and the stale data a compaction row preloads.
/// </summary>
internal static class TableWorkload
{
    /// <summary>Records per batch in <see cref="TableRow.Batch100"/>.</summary>
    public const int BatchSize = 100;

    /// <summary>Distinct keys a write row cycles through (1M: no write-back coalescing within a cell).</summary>
    public const int WriteKeys = 1_000_000;

    /// <summary>Distinct ~1 KiB JSON values the Snappy rows cycle through.</summary>
    private const int JsonValueCount = 1_000;

    private static readonly Lazy<string[]> LazyKeys = new(() => BenchData.Keys(WriteKeys));
    private static readonly Lazy<string[]> LazyMissKeys = new(() =>
        Enumerable.Range(0, 100_000).Select(i => "nok:" + i.ToString("D8", System.Globalization.CultureInfo.InvariantCulture)).ToArray());
    private static readonly Lazy<byte[][]> LazyJson = new(() => BenchData.JsonValues(JsonValueCount));
    private static readonly ConcurrentDictionary<(int Partitions, int Keys, bool FullOnly), BatchEntry[][]> BatchCache = new();

    /// <summary>Keys 0 .. <see cref="WriteKeys"/>-1 (<c>key:00000123</c>, 12 bytes).</summary>
    public static string[] Keys => LazyKeys.Value;

    /// <summary>Keys that are never written (<c>nok:00000123</c>, 12 bytes).</summary>
    public static string[] MissKeys => LazyMissKeys.Value;

    /// <summary>The 100-byte value of every row except the Snappy ones.</summary>
    public static byte[] SmallValue { get; } = BenchData.Value();

    /// <summary>Whether the row writes (bytes on disk per record apply).</summary>
    public static bool Writes(TableRow row) => row is not (TableRow.GetHit or TableRow.GetMiss);

    /// <summary>Whether the row writes ~1 KiB JSON values (compression on) rather than 100 random bytes.</summary>
    public static bool Json(TableRow row) => row is TableRow.Snappy or TableRow.AllCombined;

    /// <summary>Whether the row runs its puts beside a background compaction of preloaded stale data.</summary>
    public static bool Compacts(TableRow row) => row is TableRow.AsyncCompaction or TableRow.AllCombined;

    /// <summary>The value put by op <paramref name="i"/> of <paramref name="row"/>.</summary>
    public static byte[] ValueFor(TableRow row, long i) => Json(row) ? LazyJson.Value[(int)(i % JsonValueCount)] : SmallValue;

    /// <summary>The key of write op <paramref name="i"/>.</summary>
    public static string WriteKey(long i) => Keys[(int)(i % WriteKeys)];

    /// <summary>The key of get op <paramref name="i"/>: a pseudo-random preloaded key for a hit, a never-written key for a miss.</summary>
    public static string GetKey(TableRow row, long i, int preloaded) => row == TableRow.GetMiss
        ? MissKeys[(int)(i % MissKeys.Length)]
        : Keys[(int)(unchecked((ulong)i * 0x9E3779B97F4A7C15UL) % (ulong)preloaded)]; // Fibonacci hashing: a random-looking walk over the keys

    /// <summary>
    /// Batches of <see cref="BatchSize"/> records over keys 0 .. <paramref name="keys"/>-1, each
    /// batch's keys in one of <paramref name="partitions"/> partitions (an atomic batch lives in one);
    /// with <paramref name="fullOnly"/> the short last batch of each partition is left out,
    /// without it every key is in a batch (a preload).
    /// </summary>
    public static BatchEntry[][] Batches(int partitions, int keys, bool fullOnly) => BatchCache.GetOrAdd((Math.Max(1, partitions), keys, fullOnly), k =>
        Keys.Take(k.Keys)
            .GroupBy(key => KeyPartitioner.PartitionOf(key, k.Partitions))
            .SelectMany(g => g.Chunk(BatchSize))
            .Where(c => !k.FullOnly || c.Length == BatchSize)
            .Select(c => c.Select(key => new BatchEntry(key, SmallValue)).ToArray())
            .ToArray());

    /// <summary>
    /// The order a column's rows are measured in (printed in table order): grouped by store
    /// settings (fsync per write; 100 ms sync; write-back), so a column that reuses its store
    /// between rows with the same settings (the cluster) starts three stores, not nine.
    /// </summary>
    public static IReadOnlyList<TableRow> MeasureOrder { get; } =
    [
        TableRow.FsyncPerWrite, TableRow.Batch100,
        TableRow.SyncInterval100Ms, TableRow.AsyncCompaction, TableRow.Snappy, TableRow.GetHit, TableRow.GetMiss,
        TableRow.WriteBack, TableRow.AllCombined,
    ];

    /// <summary>Op limit of the timed part of a cell (records for the batch row; the time limit usually ends it first).</summary>
    public static long MaxOps(TableRow row, TableOptions options) => row switch
    {
        TableRow.FsyncPerWrite => options.Ops(5_000),
        TableRow.Batch100 => options.Ops(1_000_000) / BatchSize, // batches
        TableRow.GetHit or TableRow.GetMiss => options.Ops(3_000_000),
        _ => options.Ops(1_000_000),
    };

    /// <summary>Time limit of the timed part of a cell.</summary>
    public static TimeSpan MaxTime(TableOptions options) => options.Quick ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(6);

    /// <summary>Op limit of a cell's warm-up (same store, before the timed part).</summary>
    public static long WarmUpOps(TableRow row, TableOptions options) => Math.Max(1, MaxOps(row, options) / 10);

    /// <summary>Time limit of a cell's warm-up.</summary>
    public static TimeSpan WarmUpTime(TableOptions options) => options.Quick ? TimeSpan.FromSeconds(0.3) : TimeSpan.FromSeconds(1);

    /// <summary>Distinct keys of the stale data a compaction row preloads (each written <see cref="StaleVersions"/> times).</summary>
    public static int StaleKeys(TableOptions options) => options.Quick ? 100_000 : 400_000;

    /// <summary>Versions of each stale key: all but the last are garbage the compaction drops.</summary>
    public const int StaleVersions = 3;

    /// <summary>Sum of the file lengths under <paramref name="directory"/> (0 when it does not exist).</summary>
    public static long DirectoryBytes(string directory) => Directory.Exists(directory)
        ? new DirectoryInfo(directory).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length)
        : 0;

    /// <summary>Deletes a cell's directory; a file still held open is left for the OS temp cleaner.</summary>
    public static void DeleteDirectory(string directory)
    {
        try
        {
            BenchData.DeleteDirectory(directory);
        }
        catch (IOException)
        {
            // A store still closing its files.
        }
    }

    /// <summary>Records a latency in stopwatch ticks, clamped into the histogram's range.</summary>
    public static void Record(LongHistogram histogram, long ticks) =>
        histogram.RecordValue(Math.Clamp(ticks, 1, histogram.HighestTrackableValue));
}

/// <summary>What a timed (or warm-up) part did: latencies, the values recorded, wall time.</summary>
internal sealed record Measured(LongHistogram Histogram, long Values, TimeSpan Elapsed);

/// <summary>
/// Runs one part of a cell: <c>callers</c> concurrent loops, each taking the next op index from
/// a shared counter and awaiting its op before the next, until the op or time limit (or
/// <c>stopWhen</c> completes); one histogram per caller, merged at the end.
/// </summary>
internal static class CallerLoops
{
    /// <summary>Async callers (client columns).</summary>
    public static async Task<Measured> RunAsync(int callers, long firstIndex, long maxOps, TimeSpan maxTime, Func<long, Task> op,
        IProgress<double>? progress, CancellationToken cancellationToken, Task? stopWhen = null)
    {
        var next = firstIndex - 1;
        var end = firstIndex + maxOps;
        long done = 0;
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(maxTime.TotalSeconds * Stopwatch.Frequency);
        var loops = new Task<LongHistogram>[callers];
        for (var c = 0; c < callers; c++)
        {
            loops[c] = Task.Run(async () =>
            {
                var h = Cell.NewHistogram();
                while (!cancellationToken.IsCancellationRequested && stopWhen?.IsCompleted != true)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    if (t0 >= deadline)
                    {
                        break;
                    }
                    var i = Interlocked.Increment(ref next);
                    if (i >= end)
                    {
                        break;
                    }
                    await op(i).ConfigureAwait(false);
                    TableWorkload.Record(h, Stopwatch.GetTimestamp() - t0);
                    Interlocked.Increment(ref done);
                }
                return h;
            }, cancellationToken);
        }
        var all = Task.WhenAll(loops);
        while (await Task.WhenAny(all, Task.Delay(200, CancellationToken.None)).ConfigureAwait(false) != all)
        {
            progress?.Report(Fraction(Interlocked.Read(ref done), maxOps, start, deadline));
        }
        var elapsed = Stopwatch.GetElapsedTime(start);
        var histograms = await all.ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(1);
        return new Measured(Merge(histograms), Interlocked.Read(ref done), elapsed);
    }

    /// <summary>One synchronous caller on a thread of its own (the embedded engine).</summary>
    public static Task<Measured> RunSync(long firstIndex, long maxOps, TimeSpan maxTime, Action<long> op,
        IProgress<double>? progress, CancellationToken cancellationToken) => Task.Factory.StartNew(() =>
    {
        var h = Cell.NewHistogram();
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(maxTime.TotalSeconds * Stopwatch.Frequency);
        long done = 0;
        for (var i = firstIndex; i < firstIndex + maxOps && !cancellationToken.IsCancellationRequested; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            if (t0 >= deadline)
            {
                break;
            }
            op(i);
            TableWorkload.Record(h, Stopwatch.GetTimestamp() - t0);
            if ((++done & 1023) == 0)
            {
                progress?.Report(Fraction(done, maxOps, start, deadline));
            }
        }
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(1);
        return new Measured(h, done, Stopwatch.GetElapsedTime(start));
    }, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>How far a part is: the larger of its op and its time fraction.</summary>
    public static double Fraction(long done, long maxOps, long start, long deadline) =>
        Math.Clamp(Math.Max((double)done / maxOps, (double)(Stopwatch.GetTimestamp() - start) / (deadline - start)), 0, 1);

    /// <summary>One histogram holding every value of <paramref name="histograms"/>.</summary>
    public static LongHistogram Merge(IEnumerable<LongHistogram> histograms)
    {
        var merged = Cell.NewHistogram();
        foreach (var h in histograms)
        {
            merged.Add(h);
        }
        return merged;
    }
}
