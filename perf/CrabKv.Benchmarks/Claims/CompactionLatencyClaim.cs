using System.Diagnostics;
using System.Globalization;
using System.Text;
using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using Spectre.Console;

namespace CrabKv.Benchmarks.Claims;

/// <summary>
/// The seed's claim "async compaction: much lower latency (no blocking)". A store is filled
/// with mostly stale data (4 KiB random values overwriting 8,192 keys again and again, so
/// about nine tenths of the bytes are stale), then 100-byte puts arrive at a steady rate
/// (open loop, <see cref="Rate"/> puts/s) first while no compaction runs, then while a
/// compaction of the whole store runs. Two stores, the same data, the same schedule:
/// <list type="bullet">
/// <item>the actor store (<see cref="CrabKvStore"/> + <see cref="CrabKvClient"/>, 2 partitions,
/// sync interval 100 ms, auto-compaction off so the stale data waits): a <see cref="Compact"/>
/// request runs the merges on the compaction dispatcher while the partitions keep writing;</item>
/// <item>the embedded engine (<see cref="EmbeddedStore"/>, one thread, <c>Sync()</c> every 100 ms):
/// <see cref="EmbeddedStore.Compact"/> blocks its caller, so the put that starts it returns
/// when the merge is done and every put due meanwhile waits (the seed's "blocking" design).</item>
/// </list>
/// The "during compaction" phase holds the puts due between the start and the end of the compaction.
/// </summary>
internal static class CompactionLatencyClaim
{
    private const int ValueBytes = 4096;
    private const int LiveKeys = 8192;
    private const int BatchEntries = 64;

    /// <summary>Puts per second of the paced load.</summary>
    public const double Rate = 10_000;

    /// <summary>Paced puts before each store's first measured phase (JIT, first syncs), not measured.</summary>
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(1);

    public sealed record Phase(string Store, string Name, LatencyRecorder Latency, TimeSpan Window, double AchievedPerSecond);

    /// <summary>
    /// One store's compaction: its data before (<paramref name="Name"/> before: …), how it was
    /// compacted (<paramref name="How"/>), what the merge did and its wall time.
    /// </summary>
    public sealed record Compaction(string Name, string How, long TotalBytesBefore, long SegmentsBefore, long StaleBytesBefore, CompactionOutcome Outcome, TimeSpan Wall);

    public sealed record Result(long BuildBytes, IReadOnlyList<Phase> Phases, IReadOnlyList<Compaction> Compactions);

    public static Result Run(string root, bool quick, ProgressContext progress)
    {
        // 96 MiB quick, 384 MiB full: whole rounds over the live keys.
        var rounds = quick ? 3 : 12;
        var buildBytes = (long)rounds * LiveKeys * ValueBytes;
        var quietPhase = TimeSpan.FromSeconds(quick ? 2 : 5);
        var phases = new List<Phase>();
        var compactions = new List<Compaction>();
        var stale = new byte[ValueBytes];
        new Random(5).NextBytes(stale);
        var value = BenchData.Value();

        // ---- the actor store
        var actorDir = Path.Combine(root, "compaction-actors");
        using (var system = ActorSystem.Create("claims", ConfigurationFactory.ParseString($$"""
            akka.loglevel = WARNING
            akka.stdout-loglevel = WARNING
            crabkv.data-dir = "{{actorDir}}"
            crabkv.partitions = 2
            crabkv.sync-interval = 100ms
            crabkv.compaction.auto = off
            """).WithFallback(CrabKvSettings.DefaultConfig())))
        {
            var store = CrabKvStore.Start(system);
            var client = CrabKvClient.ConnectAsync(store, TimeSpan.FromMinutes(2)).GetAwaiter().GetResult();
            var build = progress.Step($"actor store: write {buildBytes >> 20} MiB, mostly stale", rounds);
            BuildThroughActors(client, rounds, stale, build);
            build.Done();
            var stats = client.GetStatsAsync().GetAwaiter().GetResult();
            var before = (Total: stats.Partitions.Sum(p => p.TotalBytes), Segments: stats.Partitions.Sum(p => (long)p.Segments), Stale: stats.Partitions.Sum(p => p.StaleBytes));
            BenchData.Quiesce();

            var warm = Stopwatch.StartNew();
            PaceActors(client, "w", value, () => warm.Elapsed >= WarmUp, null); // JIT, first fsyncs: not measured
            var quiet = progress.Step("actor store: paced puts, no compaction", quietPhase.TotalSeconds);
            var deadline = Stopwatch.StartNew();
            var (latency, window) = PaceActors(client, "q", value, () => deadline.Elapsed >= quietPhase, quiet);
            quiet.Done();
            phases.Add(new Phase("actor store (CrabKvClient)", "no compaction", latency, window, latency.Completed / window.TotalSeconds));

            var during = progress.Step("actor store: paced puts during Compact", 1);
            var watch = Stopwatch.StartNew();
            var compact = client.CompactAsync(TimeSpan.FromMinutes(10));
            (latency, window) = PaceActors(client, "c", value, () => compact.IsCompleted, null);
            var ok = compact.GetAwaiter().GetResult();
            var compactWall = watch.Elapsed;
            during.Done();
            phases.Add(new Phase("actor store (CrabKvClient)", "during compaction", latency, window, latency.Completed / window.TotalSeconds));
            compactions.Add(new Compaction("actor store", "actor store (Compact request, 2 partitions merged in parallel on the compaction dispatcher)",
                before.Total, before.Segments, before.Stale, ok.Outcome, compactWall));

            store.GracefulStop(TimeSpan.FromMinutes(2), new Shutdown()).GetAwaiter().GetResult();
        }
        BenchData.DeleteDirectory(actorDir);

        // ---- the embedded engine
        var engineDir = Path.Combine(root, "compaction-engine");
        using (var store = EmbeddedStore.Open(engineDir, new StoreOptions { AutoCompact = false }))
        {
            var build = progress.Step($"engine: write {buildBytes >> 20} MiB, mostly stale", rounds);
            for (var round = 0; round < rounds; round++)
            {
                for (var first = 0; first < LiveKeys; first += BatchEntries)
                {
                    store.PutBatch([.. Enumerable.Range(first, BatchEntries).Select(i => BatchEntry.Put(StaleKey(i), stale))]);
                }
                build.Increment(1);
            }
            store.Sync();
            build.Done();
            var stats = store.GetStats();
            BenchData.Quiesce();

            PaceEngine(store, "w", value, WarmUp, compact: false, null); // not measured
            var quiet = progress.Step("engine: paced puts, no compaction", quietPhase.TotalSeconds);
            var (latency, window, _) = PaceEngine(store, "q", value, quietPhase, compact: false, quiet);
            quiet.Done();
            phases.Add(new Phase("embedded engine (1 thread)", "no compaction", latency, window, latency.Completed / window.TotalSeconds));

            var during = progress.Step("engine: paced puts during Compact()", 1);
            var (latency2, window2, outcome) = PaceEngine(store, "c", value, TimeSpan.Zero, compact: true, null);
            during.Done();
            phases.Add(new Phase("embedded engine (1 thread)", "during compaction (blocking Compact)", latency2, window2, latency2.Completed / window2.TotalSeconds));
            compactions.Add(new Compaction("engine", "embedded engine (Compact() on the writing thread)", stats.TotalBytes, stats.Segments, stats.StaleBytes, outcome!, window2));
        }
        BenchData.DeleteDirectory(engineDir);
        return new Result(buildBytes, phases, compactions);
    }

    private static string StaleKey(int i) => "stale:" + i.ToString("D6", CultureInfo.InvariantCulture);

    private static string Describe(string what, CompactionOutcome o, TimeSpan wall) => string.Create(CultureInfo.InvariantCulture,
        $"{what}: {o.SegmentsMerged} segments merged into {o.SegmentsWritten}, {o.BytesBefore / 1048576.0:F0} MiB → {o.BytesAfter / 1048576.0:F0} MiB, {o.RecordsDropped:N0} records dropped; " +
        $"merge {o.Duration.TotalSeconds:F2} s, wall {wall.TotalSeconds:F2} s ({o.BytesBefore / 1048576.0 / o.Duration.TotalSeconds:F0} MiB/s read)");

    private static void BuildThroughActors(CrabKvClient client, int rounds, byte[] stale, ProgressTask task)
    {
        var byPartition = Enumerable.Range(0, LiveKeys).Select(StaleKey).GroupBy(client.PartitionOf).Select(g => g.ToArray()).ToArray();
        var pending = new List<Task>();
        for (var round = 0; round < rounds; round++)
        {
            foreach (var keys in byPartition)
            {
                foreach (var chunk in keys.Chunk(BatchEntries))
                {
                    pending.Add(client.PutBatchAsync([.. chunk.Select(k => BatchEntry.Put(k, stale))], TimeSpan.FromMinutes(2)));
                    if (pending.Count >= 4)
                    {
                        Task.WaitAll([.. pending]);
                        pending.Clear();
                    }
                }
            }
            task.Increment(1);
        }
        Task.WaitAll([.. pending]);
    }

    /// <summary>
    /// Puts due every 1/<see cref="Rate"/> s from now, sent in 1 ms steps (open loop: a slow
    /// store does not slow the schedule), until <paramref name="stop"/>; then waits for them all.
    /// </summary>
    private static (LatencyRecorder, TimeSpan) PaceActors(CrabKvClient client, string prefix, byte[] value, Func<bool> stop, ProgressTask? task)
    {
        var recorder = new LatencyRecorder();
        var pending = new List<Task>();
        var start = Stopwatch.GetTimestamp();
        long sent = 0;
        while (!stop())
        {
            var due = (long)((Stopwatch.GetTimestamp() - start) * Rate / Stopwatch.Frequency);
            for (; sent < due; sent++)
            {
                var dueAt = start + (long)(sent * Stopwatch.Frequency / Rate);
                var started = Stopwatch.GetTimestamp();
                var put = client.PutAsync(prefix + sent.ToString("D8", CultureInfo.InvariantCulture), value);
                pending.Add(put.ContinueWith(t =>
                {
                    if (t.IsCompletedSuccessfully)
                    {
                        recorder.Record(dueAt, started, Stopwatch.GetTimestamp());
                    }
                    else
                    {
                        Interlocked.Increment(ref recorder.Errors);
                    }
                }, TaskContinuationOptions.ExecuteSynchronously));
            }
            if (task is not null)
            {
                task.Value = Math.Min(task.MaxValue, (double)(Stopwatch.GetTimestamp() - start) / Stopwatch.Frequency);
            }
            Thread.Sleep(1);
        }
        var window = Stopwatch.GetElapsedTime(start);
        Task.WaitAll([.. pending]);
        return (recorder, window);
    }

    /// <summary>
    /// The same schedule on the calling thread against the engine. With <paramref name="compact"/>,
    /// the first put is followed by <see cref="EmbeddedStore.Compact"/> (as an engine that compacts
    /// inline does when a write seals a segment), and the phase holds the puts due until it returned.
    /// </summary>
    private static (LatencyRecorder, TimeSpan, CompactionOutcome?) PaceEngine(EmbeddedStore store, string prefix, byte[] value, TimeSpan duration, bool compact, ProgressTask? task)
    {
        var recorder = new LatencyRecorder();
        var start = Stopwatch.GetTimestamp();
        var lastSync = start;
        var syncEvery = Stopwatch.Frequency / 10;
        long sent = 0;
        long? lastDue = compact ? null : (long)(duration.TotalSeconds * Rate);
        CompactionOutcome? outcome = null;
        long windowEnd = 0;
        while (lastDue is null || sent < lastDue)
        {
            var now = Stopwatch.GetTimestamp();
            var due = (long)((now - start) * Rate / Stopwatch.Frequency);
            if (lastDue is not null)
            {
                due = Math.Min(due, lastDue.Value);
            }
            for (; sent < due || (compact && sent == 0); sent++)
            {
                var dueAt = start + (long)(sent * Stopwatch.Frequency / Rate);
                var started = Stopwatch.GetTimestamp();
                store.Put(prefix + sent.ToString("D8", CultureInfo.InvariantCulture), value);
                if (compact && sent == 0)
                {
                    outcome = store.Compact();
                    windowEnd = Stopwatch.GetTimestamp();
                    lastDue = Math.Max(1, (long)((windowEnd - start) * Rate / Stopwatch.Frequency));
                }
                var ended = Stopwatch.GetTimestamp();
                if (ended - lastSync >= syncEvery)
                {
                    store.Sync();
                    lastSync = ended = Stopwatch.GetTimestamp();
                }
                recorder.Record(dueAt, started, ended);
            }
            if (task is not null)
            {
                task.Value = Math.Min(task.MaxValue, (double)(Stopwatch.GetTimestamp() - start) / Stopwatch.Frequency);
            }
            if (lastDue is null || sent < lastDue)
            {
                Thread.Sleep(1);
            }
        }
        var window = compact ? Stopwatch.GetElapsedTime(start, windowEnd) : Stopwatch.GetElapsedTime(start);
        return (recorder, window, outcome);
    }

    /// <summary>The markdown of a result.</summary>
    public static void Print(Result r, StringBuilder md)
    {
        md.AppendLine(CultureInfo.InvariantCulture, $"### Async compaction: put latency while a compaction of {r.BuildBytes >> 20} MiB runs");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture,
            $"100-byte puts due at {Rate:N0}/s (open loop, sent in 1 ms steps). Service = call to completion; response = due time to completion (includes waiting behind a blocked store). Milliseconds.");
        md.AppendLine();
        md.AppendLine("| store | phase | puts | window | puts/s done | service p50 / p99 / p99.9 / max | response p50 / p99 / p99.9 / max | errors |");
        md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (var p in r.Phases)
        {
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {p.Store} | {p.Name} | {p.Latency.Completed:N0} | {p.Window.TotalSeconds:F2} s | {p.AchievedPerSecond:N0} | {LatencyRecorder.Percentiles(p.Latency.Service)} | {LatencyRecorder.Percentiles(p.Latency.Response)} | {p.Latency.Errors} |");
        }
        md.AppendLine();
        foreach (var c in r.Compactions)
        {
            md.AppendLine(CultureInfo.InvariantCulture,
                $"- {c.Name} before: {c.TotalBytesBefore / 1048576.0:F0} MiB in {c.SegmentsBefore} segments, {c.StaleBytesBefore / 1048576.0:F0} MiB stale");
            md.AppendLine("- " + Describe(c.How, c.Outcome, c.Wall));
        }
        md.AppendLine();
    }

    /// <summary>The JSON object of a result: every figure <see cref="Print"/> writes (latencies in µs rather than ms).</summary>
    public static object Json(Result r) => new
    {
        buildBytes = r.BuildBytes,
        putValueBytes = BenchData.Value().Length,
        putsDuePerSecond = Rate,
        phases = r.Phases.Select(p => new
        {
            store = p.Store,
            phase = p.Name,
            puts = p.Latency.Completed,
            windowSeconds = JsonReport.Num(p.Window.TotalSeconds, 3),
            putsPerSecondDone = JsonReport.Num(p.AchievedPerSecond, 1),
            service = LatencyRecorder.Json(p.Latency.Service),
            response = LatencyRecorder.Json(p.Latency.Response),
            errors = p.Latency.Errors,
        }),
        compactions = r.Compactions.Select(c => new
        {
            store = c.Name,
            how = c.How,
            totalBytesBefore = c.TotalBytesBefore,
            segmentsBefore = c.SegmentsBefore,
            staleBytesBefore = c.StaleBytesBefore,
            segmentsMerged = c.Outcome.SegmentsMerged,
            segmentsWritten = c.Outcome.SegmentsWritten,
            bytesBefore = c.Outcome.BytesBefore,
            bytesAfter = c.Outcome.BytesAfter,
            recordsDropped = c.Outcome.RecordsDropped,
            mergeSeconds = JsonReport.Num(c.Outcome.Duration.TotalSeconds, 3),
            wallSeconds = JsonReport.Num(c.Wall.TotalSeconds, 3),
            readMiBPerSecond = JsonReport.Num(c.Outcome.BytesBefore / 1048576.0 / c.Outcome.Duration.TotalSeconds, 1),
        }),
    };
}
