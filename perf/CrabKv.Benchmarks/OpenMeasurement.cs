using System.Diagnostics;
using System.Globalization;
using CrabKv.Storage;

namespace CrabKv.Benchmarks;

/// <summary>
/// `-- open [runs] [dir]`: row 6 "with hints" without BenchmarkDotNet — builds (or reuses, when
/// <c>dir</c> exists) a compacted store of 1,000,000 keys with hint files, then times
/// <paramref name="runs"/> opens + disposes and prints each and the median. Two builds (before and
/// after a change) can time the same directory alternately.
/// </summary>
internal static class OpenMeasurement
{
    public static int Run(string[] args)
    {
        var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 7;
        var dir = args.Length > 1 ? args[1] : BenchData.NewTempDirectory("open-measure");
        if (!Directory.Exists(dir) || !Directory.EnumerateFiles(dir, "*.hint").Any())
        {
            var keys = BenchData.Keys(OpenBenchmarks.Keys);
            var value = BenchData.Value();
            using var store = EmbeddedStore.Open(dir, new StoreOptions { AutoCompact = false });
            foreach (var key in keys)
            {
                store.Put(key, value);
            }
            store.Compact();
            store.Sync();
        }
        BenchData.Quiesce();
        var times = new List<double>();
        for (var r = 0; r < runs; r++)
        {
            var allocated = GC.GetTotalAllocatedBytes(precise: true);
            var start = Stopwatch.GetTimestamp();
            int count;
            using (var store = EmbeddedStore.Open(dir))
            {
                count = store.Count;
            }
            var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
            times.Add(ms);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"open {r + 1}: {ms:F1} ms, {count} keys, {allocated / 1e6:F0} MB allocated"));
            GC.Collect();
        }
        var sorted = times.Order().ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median {sorted[sorted.Length / 2]:F1} ms, min {sorted[0]:F1} ms over {runs} opens of {dir}"));
        return 0;
    }
}
