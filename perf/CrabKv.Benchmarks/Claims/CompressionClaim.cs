using System.Diagnostics;
using System.Globalization;
using System.Text;
using Spectre.Console;

namespace CrabKv.Benchmarks.Claims;

/// <summary>
/// The seed's claim "Snappy: 30–70% less disk for text/JSON". The embedded engine (one
/// thread, <c>Sync()</c> every 100 ms, no auto-compaction) writes the same ~1 KiB values
/// under distinct keys with <see cref="StoreOptions.Compression"/> off and on, for three kinds
/// of value: JSON documents (<see cref="BenchData.JsonValues"/>), English-like prose, and
/// random bytes (the incompressible control). Disk = the data files' bytes after the store
/// is closed (sealed, preallocation trimmed); throughput = puts/s including the final sync,
/// median of the repetitions.
/// </summary>
internal static class CompressionClaim
{
    public sealed record Case(string Kind, double AverageValueBytes, bool Compression, long Records, long DiskBytes, long AllocatedKiB, double PutsPerSecond, double CpuMicrosPerPut);

    public static IReadOnlyList<Case> Run(string root, bool quick, ProgressContext progress)
    {
        var records = quick ? 20_000 : 100_000;
        var repetitions = quick ? 1 : 3;
        var kinds = new (string Name, byte[][] Values)[]
        {
            ("JSON documents", BenchData.JsonValues(256)),
            ("English-like text", TextValues(256)),
            ("random bytes (control)", RandomValues(256)),
        };
        var cases = new List<Case>();
        var task = progress.Step($"Snappy: {records:N0} puts x 3 kinds x on/off x {repetitions}", kinds.Length * 2 * repetitions);
        foreach (var (name, values) in kinds)
        {
            var average = values.Average(v => v.Length);
            // Warm-up (JIT, Snappy's tables), not measured.
            Measure(root, values, 5_000, compression: false);
            Measure(root, values, 5_000, compression: true);
            foreach (var compression in new[] { false, true })
            {
                var rates = new List<double>();
                var cpus = new List<double>();
                long disk = 0, allocated = 0;
                for (var rep = 0; rep < repetitions; rep++)
                {
                    (var rate, var cpu, disk, allocated) = Measure(root, values, records, compression);
                    rates.Add(rate);
                    cpus.Add(cpu);
                    task.Increment(1);
                }
                rates.Sort();
                cpus.Sort();
                cases.Add(new Case(name, average, compression, records, disk, allocated, rates[rates.Count / 2], cpus[cpus.Count / 2]));
            }
        }
        task.Done();
        return cases;
    }

    private static (double Rate, double CpuMicrosPerPut, long Disk, long AllocatedKiB) Measure(string root, byte[][] values, int records, bool compression)
    {
        var dir = Path.Combine(root, "snappy-" + (compression ? "on" : "off"));
        var keys = BenchData.Keys(records);
        BenchData.Quiesce();
        double rate, cpu;
        using (var store = EmbeddedStore.Open(dir, new StoreOptions { Compression = compression, AutoCompact = false, ReadCacheEntries = 0 }))
        {
            var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
            var start = Stopwatch.GetTimestamp();
            var lastSync = start;
            var syncEvery = Stopwatch.Frequency / 10;
            for (var i = 0; i < records; i++)
            {
                store.Put(keys[i], values[i % values.Length]);
                if (Stopwatch.GetTimestamp() - lastSync >= syncEvery)
                {
                    store.Sync();
                    lastSync = Stopwatch.GetTimestamp();
                }
            }
            store.Sync();
            rate = records / Stopwatch.GetElapsedTime(start).TotalSeconds;
            cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalMicroseconds / records;
        }
        var disk = Directory.EnumerateFiles(dir, "*.data").Sum(f => new FileInfo(f).Length);
        var allocated = DiskUsage.AllocatedKiB(dir);
        BenchData.DeleteDirectory(dir);
        return (rate, cpu, disk, allocated);
    }

    /// <summary>
    /// <paramref name="count"/> ~1 KiB paragraphs of English-like prose: sentences of the ~200
    /// most common English words drawn by Zipf's law (weight 1/rank), capitalised
    /// and punctuated, deterministic for a seed.
    /// </summary>
    public static byte[][] TextValues(int count, int seed = 13)
    {
        string[] words = ("the of and to a in is it you that he was for on are with as I his they be at one have this from or had by " +
            "word but what some we can out other were all there when up use your how said an each she which do their time if will way " +
            "about many then them write would like so these her long make thing see him two has look more day could go come did number " +
            "sound no most people my over know water than call first who may down side been now find any new work part take get place " +
            "made live where after back little only round man year came show every good me give our under name very through just form " +
            "sentence great think say help low line differ turn cause much mean before move right boy old too same tell does set three " +
            "want air well also play small end put home read hand port large spell add even land here must big high such follow act why " +
            "ask men change went light kind off need house picture try us again animal point mother world near build self earth father").Split(' ');
        // Zipf's law (weight 1/rank), as word frequencies in English roughly follow.
        var cumulative = new double[words.Length];
        for (var r = 0; r < words.Length; r++)
        {
            cumulative[r] = (r == 0 ? 0 : cumulative[r - 1]) + 1.0 / (r + 1);
        }
        var rng = new Random(seed);
        var values = new byte[count][];
        var sb = new StringBuilder(1200);
        for (var i = 0; i < count; i++)
        {
            sb.Clear();
            while (sb.Length < 1000)
            {
                var length = rng.Next(6, 18);
                for (var w = 0; w < length; w++)
                {
                    var index = Array.BinarySearch(cumulative, rng.NextDouble() * cumulative[^1]);
                    var word = words[Math.Min(words.Length - 1, index < 0 ? ~index : index)];
                    sb.Append(w == 0 ? char.ToUpperInvariant(word[0]) + word[1..] : word);
                    sb.Append(w == length - 1 ? (rng.Next(5) == 0 ? "? " : ". ") : rng.Next(12) == 0 ? ", " : " ");
                }
            }
            values[i] = Encoding.UTF8.GetBytes(sb.ToString(0, 1000));
        }
        return values;
    }

    private static byte[][] RandomValues(int count)
    {
        var rng = new Random(17);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var v = new byte[1000];
            rng.NextBytes(v);
            return v;
        }).ToArray();
    }

    /// <summary>The markdown of the cases.</summary>
    public static void Print(IReadOnlyList<Case> cases, StringBuilder md)
    {
        md.AppendLine("### Snappy: disk and put throughput, compression off vs on");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture,
            $"Embedded engine, one thread, {cases[0].Records:N0} puts of ~1 KiB values under 12-byte keys, Sync() every 100 ms; disk = data files after close (apparent bytes; du -sk beside); puts/s and CPU µs / put (process CPU time over the puts, less sensitive to a loaded machine than wall time): median of the repetitions.");
        md.AppendLine();
        md.AppendLine("| values | avg value | Snappy | disk bytes / record | disk (du) | disk vs off | puts/s | MB/s of values | puts/s vs off | CPU µs / put | CPU vs off |");
        md.AppendLine("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var c in cases)
        {
            var off = cases.First(o => o.Kind == c.Kind && !o.Compression);
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {c.Kind} | {c.AverageValueBytes:F0} B | {(c.Compression ? "on" : "off")} | {(double)c.DiskBytes / c.Records:F0} | {c.AllocatedKiB / 1024.0:F1} MiB | " +
                $"{(c.Compression ? $"{100.0 * (c.DiskBytes - off.DiskBytes) / off.DiskBytes:+0.0;-0.0}%" : "-")} | {c.PutsPerSecond:N0} | {c.PutsPerSecond * c.AverageValueBytes / 1e6:F0} | {(c.Compression ? $"{c.PutsPerSecond / off.PutsPerSecond:F2}×" : "-")} | {c.CpuMicrosPerPut:F1} | {(c.Compression ? $"{c.CpuMicrosPerPut / off.CpuMicrosPerPut:F2}×" : "-")} |");
        }
        md.AppendLine();
    }

    /// <summary>The JSON object of the cases: every figure <see cref="Print"/> writes (ratios vs off are null for the off rows).</summary>
    public static object Json(IReadOnlyList<Case> cases) => new
    {
        records = cases[0].Records,
        keyBytes = 12,
        cases = cases.Select(c =>
        {
            var off = cases.First(o => o.Kind == c.Kind && !o.Compression);
            return new
            {
                values = c.Kind,
                averageValueBytes = JsonReport.Num(c.AverageValueBytes, 1),
                snappy = c.Compression,
                records = c.Records,
                diskBytes = c.DiskBytes,
                diskBytesPerRecord = JsonReport.Num((double)c.DiskBytes / c.Records, 1),
                diskAllocatedKiB = c.AllocatedKiB,
                diskVsOffPercent = c.Compression ? JsonReport.Num(100.0 * (c.DiskBytes - off.DiskBytes) / off.DiskBytes, 1) : null,
                putsPerSecond = JsonReport.Num(c.PutsPerSecond, 0),
                mbPerSecondOfValues = JsonReport.Num(c.PutsPerSecond * c.AverageValueBytes / 1e6, 1),
                putsPerSecondVsOff = c.Compression ? JsonReport.Num(c.PutsPerSecond / off.PutsPerSecond, 3) : null,
                cpuMicrosPerPut = JsonReport.Num(c.CpuMicrosPerPut, 2),
                cpuVsOff = c.Compression ? JsonReport.Num(c.CpuMicrosPerPut / off.CpuMicrosPerPut, 3) : null,
            };
        }),
    };
}

/// <summary>Allocated disk blocks of a directory tree.</summary>
internal static class DiskUsage
{
    /// <summary>du -sk: allocated KiB under <paramref name="path"/> (not the apparent size).</summary>
    public static long AllocatedKiB(string path)
    {
        using var du = Process.Start(new ProcessStartInfo("du", ["-sk", path]) { RedirectStandardOutput = true })!;
        var output = du.StandardOutput.ReadToEnd();
        du.WaitForExit();
        return long.Parse(output.Split('\t', ' ')[0], CultureInfo.InvariantCulture);
    }
}
