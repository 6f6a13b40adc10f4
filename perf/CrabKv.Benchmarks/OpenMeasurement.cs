using System.Diagnostics;
using System.Globalization;
using CrabKv.Storage;

namespace CrabKv.Benchmarks;

/// <summary>
/// `-- open [runs] [dir] [tail-keys]`: row 6 "with hints" without BenchmarkDotNet — builds (or
/// reuses, when <c>dir</c> holds data segments, whatever they are) a compacted store of 1,000,000 keys with hint files,
/// then times <paramref name="runs"/> opens + disposes and prints each and the medians: wall
/// time, CPU time of the process, bytes allocated and (Linux) bytes read by system calls. With
/// <c>tail-keys</c> &gt; 0 a new directory also gets that many overwrites after the compaction,
/// left in an un-hinted writer segment (the active one at the next open, scanned record by
/// record). Two builds (before and after a change) can time the same directory alternately.
/// </summary>
internal static class OpenMeasurement
{
    public static int Run(string[] args)
    {
        var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 7;
        var dir = args.Length > 1 ? args[1] : BenchData.NewTempDirectory("open-measure");
        var tailKeys = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 0;
        if (!Directory.Exists(dir) || !Directory.EnumerateFiles(dir, "seg-*.data").Any())
        {
            var keys = BenchData.Keys(OpenBenchmarks.Keys);
            var value = BenchData.Value();
            using var store = EmbeddedStore.Open(dir, new StoreOptions { AutoCompact = false });
            foreach (var key in keys)
            {
                store.Put(key, value);
            }
            store.Compact();
            var newer = BenchData.Value(seed: 8);
            for (var i = 0; i < Math.Min(tailKeys, keys.Length); i++)
            {
                store.Put(keys[i], newer);
            }
            store.Sync();
        }
        BenchData.Quiesce();
        var process = Process.GetCurrentProcess();
        var times = new List<double>();
        var cpu = new List<double>();
        var allocations = new List<long>();
        var reads = new List<long>();
        for (var r = 0; r < runs; r++)
        {
            var allocated = GC.GetTotalAllocatedBytes(precise: true);
            var readBefore = BytesReadBySyscalls();
            process.Refresh();
            var cpuBefore = process.TotalProcessorTime;
            var start = Stopwatch.GetTimestamp();
            int count;
            string layout;
            using (var store = EmbeddedStore.Open(dir))
            {
                count = store.Count;
                layout = $"{store.LastRecovery.SegmentsFromHints} segments from hints, {store.LastRecovery.SegmentsScanned} scanned";
            }
            var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            process.Refresh();
            var cpuMs = (process.TotalProcessorTime - cpuBefore).TotalMilliseconds;
            allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
            var read = BytesReadBySyscalls() - readBefore;
            times.Add(ms);
            cpu.Add(cpuMs);
            allocations.Add(allocated);
            reads.Add(read);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"open {r + 1}: {ms:F1} ms, {cpuMs:F1} ms CPU, {count} keys ({layout}), {allocated / 1e6:F1} MB allocated, {read / 1e6:F1} MB read"));
            GC.Collect();
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"median {Median(times):F1} ms (min {times.Min():F1}), {Median(cpu):F1} ms CPU, {Median(allocations) / 1e6:F1} MB allocated, {Median(reads) / 1e6:F1} MB read over {runs} opens of {dir}"));
        return 0;
    }

    private static T Median<T>(List<T> values) => values.Order().ElementAt(values.Count / 2);

    /// <summary>Bytes this process has read through read system calls (Linux <c>/proc/self/io</c> rchar; 0 elsewhere).</summary>
    private static long BytesReadBySyscalls()
    {
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }
        foreach (var line in File.ReadLines("/proc/self/io"))
        {
            if (line.StartsWith("rchar:", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(6).Trim(), CultureInfo.InvariantCulture);
            }
        }
        return 0;
    }
}
