using System.Diagnostics;
using System.Globalization;
using System.Text;
using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Benchmarks.Claims;
using Spectre.Console;

namespace CrabKv.Benchmarks.Scale;

/// <summary>
/// Resident memory under sustained write-back load: 64 callers put 4 KiB values through
/// <see cref="CrabKvClient"/> into an actor store (2 partitions, write-back on, sync interval
/// 100 ms, auto-compaction on) for a fixed time, over a key space of 50,000 keys (so the key
/// directory stops growing early and what can grow is the dirty buffer). The flush interval is
/// 30 s, longer than the run, so only the byte limit makes the partitions flush (at half their
/// share); max-value-bytes is 64 KiB so that the share is not raised to one 16 MiB value. Every 200 ms: the
/// process working set, the GC heap (not collected first: garbage included), and the dirty bytes
/// the partitions report. Run at two <c>crabkv.write-back.max-dirty-bytes</c> limits; a put
/// refused with WriteBackBufferFull is counted and its caller waits 1 ms.
/// </summary>
internal static class WriteBackMemory
{
    private const int Callers = 64;
    private const int KeySpace = 50_000;
    private const int ValueBytes = 4096;

    private sealed record Run_(long LimitBytes, long EffectiveBytes, double PutsPerSecond, long Refused, long PeakDirty, long PeakWorkingSet, long PeakHeap,
        long StartWorkingSet, long StartHeap, long EndHeapCollected, int Samples, long DiskBytes);

    /// <summary>Measures both limits, appends the markdown to <paramref name="md"/> and returns the same figures as a JSON object.</summary>
    public static object Run(string root, bool quick, ProgressContext progress, StringBuilder md)
    {
        var duration = TimeSpan.FromSeconds(quick ? 6 : 20);
        var runs = new List<Run_>();
        foreach (var limitMiB in new[] { 16, 128 })
        {
            var task = progress.Step($"write-back load, max-dirty-bytes = {limitMiB} MiB", duration.TotalSeconds);
            runs.Add(Measure(Path.Combine(root, $"wb-{limitMiB}"), limitMiB, duration, task));
            task.Done();
        }
        md.AppendLine(CultureInfo.InvariantCulture,
            $"### Memory under sustained write-back load (actor store, 2 partitions, {Callers} callers, {ValueBytes / 1024} KiB values over {KeySpace:N0} keys, flush-interval 30 s, {duration.TotalSeconds:F0} s per limit)");
        md.AppendLine();
        md.AppendLine("| max-dirty-bytes (node) | in force (sum of partitions) | puts/s | refused (buffer full) | peak dirty bytes | working set at start → peak | GC heap at start → peak (sampled) | GC heap at end (after full GC) | disk at end |");
        md.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in runs)
        {
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {Mib(r.LimitBytes)} | {Mib(r.EffectiveBytes)} | {r.PutsPerSecond:N0} | {r.Refused:N0} | {Mib(r.PeakDirty)} | {Mib(r.StartWorkingSet)} → {Mib(r.PeakWorkingSet)} | {Mib(r.StartHeap)} → {Mib(r.PeakHeap)} | {Mib(r.EndHeapCollected)} | {Mib(r.DiskBytes)} |");
        }
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"({runs[0].Samples} samples per run, every 200 ms; working set = Process.WorkingSet64 of the whole process, which also holds the runtime, Akka and the benchmark.)");
        md.AppendLine();
        return new
        {
            partitions = 2,
            callers = Callers,
            valueBytes = ValueBytes,
            keySpace = KeySpace,
            flushIntervalSeconds = 30,
            secondsPerLimit = duration.TotalSeconds,
            sampleIntervalMillis = 200,
            runs = runs.Select(r => new
            {
                maxDirtyBytes = r.LimitBytes,
                inForceBytes = r.EffectiveBytes,
                putsPerSecond = JsonReport.Num(r.PutsPerSecond, 0),
                refused = r.Refused,
                peakDirtyBytes = r.PeakDirty,
                workingSetStartBytes = r.StartWorkingSet,
                workingSetPeakBytes = r.PeakWorkingSet,
                gcHeapStartBytes = r.StartHeap,
                gcHeapPeakBytes = r.PeakHeap,
                gcHeapEndBytesAfterFullGc = r.EndHeapCollected,
                diskEndBytes = r.DiskBytes,
                samples = r.Samples,
            }),
        };
    }

    private static string Mib(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:F1} MiB");

    private static Run_ Measure(string dir, int limitMiB, TimeSpan duration, ProgressTask task)
    {
        BenchData.Quiesce();
        using var system = ActorSystem.Create("scale", ConfigurationFactory.ParseString($$"""
            akka.loglevel = WARNING
            akka.stdout-loglevel = WARNING
            crabkv.data-dir = "{{dir}}"
            crabkv.partitions = 2
            crabkv.sync-interval = 100ms
            crabkv.write-back.enabled = on
            crabkv.write-back.max-dirty-bytes = {{limitMiB}} MiB
            crabkv.write-back.flush-interval = 30s
            crabkv.limits.max-value-bytes = 64 KiB
            """).WithFallback(CrabKvSettings.DefaultConfig()));
        var store = CrabKvStore.Start(system, null, "crabkv", out var settings);
        var client = CrabKvClient.ConnectAsync(store, TimeSpan.FromMinutes(2)).GetAwaiter().GetResult();
        var effective = settings.PerPartition(2).EffectiveMaxDirtyBytes * 2;
        using var self = Process.GetCurrentProcess();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        self.Refresh();
        var (startWs, startHeap) = (self.WorkingSet64, GC.GetTotalMemory(false));
        var keys = BenchData.Keys(KeySpace);
        var value = new byte[ValueBytes];
        new Random(9).NextBytes(value);

        long puts = 0, refused = 0;
        var watch = Stopwatch.StartNew();
        var callers = Enumerable.Range(0, Callers).Select(c => Task.Run(async () =>
        {
            var rng = new Random(c);
            while (watch.Elapsed < duration)
            {
                try
                {
                    await client.PutAsync(keys[rng.Next(KeySpace)], value).ConfigureAwait(false);
                    Interlocked.Increment(ref puts);
                }
                catch (CrabKvRequestException e) when (e.Code == CrabKvErrorCode.WriteBackBufferFull)
                {
                    Interlocked.Increment(ref refused);
                    await Task.Delay(1).ConfigureAwait(false);
                }
            }
        })).ToArray();

        long peakDirty = 0, peakWs = startWs, peakHeap = startHeap;
        var samples = 0;
        while (!Task.WhenAll(callers).Wait(200))
        {
            self.Refresh();
            peakWs = Math.Max(peakWs, self.WorkingSet64);
            peakHeap = Math.Max(peakHeap, GC.GetTotalMemory(false));
            try
            {
                var stats = client.GetStatsAsync(TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();
                peakDirty = Math.Max(peakDirty, stats.Partitions.Sum(p => p.DirtyBytes));
            }
            catch (TimeoutException)
            {
                // A busy store: the next sample asks again.
            }
            samples++;
            task.Value = Math.Min(task.MaxValue, watch.Elapsed.TotalSeconds);
        }
        var elapsed = watch.Elapsed;
        client.FlushAsync(TimeSpan.FromMinutes(2)).GetAwaiter().GetResult();
        var endHeap = GC.GetTotalMemory(forceFullCollection: true);
        var disk = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        store.GracefulStop(TimeSpan.FromMinutes(2), new Shutdown()).GetAwaiter().GetResult();
        system.Terminate().Wait(TimeSpan.FromMinutes(1));
        BenchData.DeleteDirectory(dir);
        return new Run_(limitMiB * 1048576L, effective, Interlocked.Read(ref puts) / elapsed.TotalSeconds, Interlocked.Read(ref refused), peakDirty, peakWs, peakHeap,
            startWs, startHeap, endHeap, samples, disk);
    }
}
