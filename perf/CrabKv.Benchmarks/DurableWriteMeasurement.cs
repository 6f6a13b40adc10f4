using System.Diagnostics;
using System.Globalization;
using CrabKv.Storage;
using CrabKv.Storage.Files;

namespace CrabKv.Benchmarks;

/// <summary>
/// `-- durable [rounds] [batches]`: rows 1 and 3 (put + fsync; batch of 100 + fsync) through
/// the one-call durable write (default file layer: pwritev2 RWF_DSYNC) and through
/// <see cref="TwoCallFileLayer"/> (pwrite + fdatasync, the code before), interleaved round by
/// round in fresh stores, so both see the same disk. Prints the median per mode and the ratio.
/// For a loaded shared machine, where BenchmarkDotNet's per-benchmark blocks drift apart.
/// </summary>
internal static class DurableWriteMeasurement
{
    public static int Run(string[] args)
    {
        var rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5;
        var batches = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 500;
        var puts = Math.Max(100, batches / 2);
        var keys = BenchData.Keys(batches * PutBenchmarks.BatchSize);
        var value = BenchData.Value();
        var ops = keys.Select(k => BatchEntry.Put(k, value)).ToArray();
        var root = BenchData.NewTempDirectory("durable");
        var modes = new (string Name, FileLayer Files)[] { ("two calls (pwrite + fdatasync)", TwoCallFileLayer.Instance), ("one call (pwritev2 RWF_DSYNC)", FileLayer.Default) };
        var batch = modes.Select(_ => new List<double>()).ToArray();
        var single = modes.Select(_ => new List<double>()).ToArray();
        try
        {
            BenchData.Quiesce();
            for (var r = 0; r < rounds; r++)
            {
                for (var j = 0; j < modes.Length; j++)
                {
                    var m = (r + j) % modes.Length; // alternate which mode goes first
                    batch[m].Add(Time(root, modes[m].Files, store =>
                    {
                        for (var b = 0; b < batches; b++)
                        {
                            store.PutBatch(new ArraySegment<BatchEntry>(ops, b * PutBenchmarks.BatchSize, PutBenchmarks.BatchSize));
                            store.Sync();
                        }
                    }) / (batches * PutBenchmarks.BatchSize));
                    single[m].Add(Time(root, modes[m].Files, store =>
                    {
                        for (var i = 0; i < puts; i++)
                        {
                            store.Put(keys[i], value);
                            store.Sync();
                        }
                    }) / puts);
                }
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {r + 1}: batch {1e6 / batch[0][^1]:N0} vs {1e6 / batch[1][^1]:N0} records/s; put+fsync {1e6 / single[0][^1]:N0} vs {1e6 / single[1][^1]:N0} /s"));
            }
        }
        finally
        {
            BenchData.DeleteDirectory(root);
        }
        Console.WriteLine();
        Console.WriteLine($"median of {rounds} interleaved rounds ({batches} batches of 100, {puts} single puts per round, µs per record)");
        Console.WriteLine("| row | " + string.Join(" | ", modes.Select(m => m.Name)) + " | one call / two calls |");
        Console.WriteLine("|---|---:|---:|---:|");
        Row("batch of 100 + fsync (records/s)", batch);
        Row("put + fsync per write (puts/s)", single);
        return 0;
    }

    private static void Row(string name, List<double>[] micros)
    {
        var rates = micros.Select(m => 1e6 / Median(m)).ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {rates[0]:N0} | {rates[1]:N0} | {rates[1] / rates[0]:F2}× |"));
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>µs the action takes on a fresh store (open, dispose and delete not timed).</summary>
    private static double Time(string root, FileLayer files, Action<EmbeddedStore> action)
    {
        var dir = Path.Combine(root, Guid.NewGuid().ToString("N"));
        var store = EmbeddedStore.Open(dir, new StoreOptions { Files = files, PreallocateStepBytes = BenchData.PreallocateStep });
        try
        {
            var start = Stopwatch.GetTimestamp();
            action(store);
            return Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }
        finally
        {
            store.Dispose();
            BenchData.DeleteDirectory(dir);
        }
    }
}
