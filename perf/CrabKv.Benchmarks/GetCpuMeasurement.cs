using System.Diagnostics;
using System.Globalization;

namespace CrabKv.Benchmarks;

/// <summary>
/// `-- getcpu [rounds] [engine-ops]`: the two get-hit gaps of issue 12 as CPU time per
/// operation (<see cref="Process.TotalProcessorTime"/> deltas around a fixed op count, every
/// thread of the process included), in one process, in alternating rounds, so a loaded machine's
/// wall-clock noise does not decide the comparison:
/// <list type="bullet">
/// <item>engine: <see cref="GetBenchmarks"/> (1M keys, 100-byte values, one thread, read cache off;
/// the string get and the byte-key get into a reused buffer) against <see cref="FasterGetBenchmarks"/>
/// (FASTER KV, same data), the three in a rotating order, with the median of the byte-key
/// get's throughput ratio to FASTER over the rounds;</item>
/// <item>actors: <see cref="ActorBenchmarks.GetHitActors64"/> (64 client actors, 200,000 gets of
/// preloaded keys, write-through, 100 ms sync) against <see cref="ActorBenchmarks.AskCeiling64"/>
/// (64 callers asking an echo actor).</item>
/// </list>
/// The benchmark classes' own setup and measured methods run here unchanged. Bytes allocated
/// per op (<see cref="GC.GetTotalAllocatedBytes"/>, every thread) are printed beside.
/// Usage: <c>dotnet run -c Release --project perf/CrabKv.Benchmarks -- getcpu [rounds] [engine-ops]</c> (engine-ops 0: the actor rounds only; a third argument <c>get</c> or <c>ask</c> runs that side alone, for a profiler).
/// </summary>
internal static class GetCpuMeasurement
{
    private const int ActorGetOps = 200_000; // ActorBenchmarks.GetOps64
    private const int AskOps = 400_000;      // ActorBenchmarks.AskOps64

    public static int Run(string[] args)
    {
        var rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5;
        var engineOps = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 300_000;
        var calls = Math.Max(1, engineOps / GetBenchmarks.Ops);
        var only = args.Length > 2 ? args[2] : ""; // "get" or "ask": that side of the actor rounds alone (for a profiler)
        Console.WriteLine($"getcpu: CPU time per get (all threads), {rounds} alternating rounds; runtime {Environment.Version}, {Environment.ProcessorCount} cores, load {LoadAverage()}");

        if (engineOps > 0) // 0: the actor rounds only
        {
            var crab = new GetBenchmarks();
            var faster = new FasterGetBenchmarks();
            crab.Setup();
            faster.Setup();
            try
            {
                crab.RandomGet(); // warm-up: JIT and page cache
                crab.RandomGetBytes();
                faster.RandomGet();
                var byteRatios = new List<double>();
                for (var r = 1; r <= rounds; r++)
                {
                    // The three sides in a rotating order, so no side always runs first.
                    var sides = new (string Name, Action Get)[]
                    {
                        ("string", () => { for (var i = 0; i < calls; i++) { crab.RandomGet(); } }),
                        ("bytes", () => { for (var i = 0; i < calls; i++) { crab.RandomGetBytes(); } }),
                        ("FASTER", () => { for (var i = 0; i < calls; i++) { faster.RandomGet(); } }),
                    };
                    var measured = new Dictionary<string, (double Micros, double Bytes, double OpsPerSecond)>();
                    for (var k = 0; k < sides.Length; k++)
                    {
                        var side = sides[(k + r) % sides.Length];
                        measured[side.Name] = Measure(side.Get, calls * GetBenchmarks.Ops);
                    }
                    var (c, cb, cw) = measured["string"];
                    var (y, yb, yw) = measured["bytes"];
                    var (f, fb, fw) = measured["FASTER"];
                    byteRatios.Add(yw / fw);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"engine round {r}: CrabKv string key {c:N2} µs/get ({cb:N0} B, {cw:N0}/s), byte key into a buffer {y:N2} µs/get ({yb:N0} B, {yw:N0}/s), FASTER {f:N2} µs/get ({fb:N0} B, {fw:N0}/s); CPU ratio string/FASTER {c / f:N2}, throughput byte key ÷ FASTER {yw / fw:N2}"));
                }
                byteRatios.Sort();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"engine: median throughput byte key ÷ FASTER over {rounds} rounds {byteRatios[byteRatios.Count / 2]:N2} (min {byteRatios[0]:N2}, max {byteRatios[^1]:N2})"));
            }
            finally
            {
                faster.Cleanup();
                crab.Cleanup();
            }
        }

        var actors = new ActorBenchmarks();
        actors.Setup();
        try
        {
            actors.StartPreloaded();
            try
            {
                actors.GetHitActors64().GetAwaiter().GetResult(); // warm-up
                actors.AskCeiling64().GetAwaiter().GetResult();
                for (var r = 1; r <= rounds; r++)
                {
                    if (only is "get" or "ask")
                    {
                        var (o, ob, ow) = only == "get"
                            ? Measure(() => actors.GetHitActors64().GetAwaiter().GetResult(), ActorGetOps)
                            : Measure(() => actors.AskCeiling64().GetAwaiter().GetResult(), AskOps);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"actors round {r}: {only} alone {o:N2} µs/op ({ob:N0} B, {ow:N0} ops/s)"));
                        continue;
                    }
                    var (g, gb, gw) = Measure(() => actors.GetHitActors64().GetAwaiter().GetResult(), ActorGetOps);
                    var (a, ab, aw) = Measure(() => actors.AskCeiling64().GetAwaiter().GetResult(), AskOps);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"actors round {r}: get, 64 client actors {g:N2} µs/op ({gb:N0} B, {gw:N0} ops/s), Ask ceiling (64 callers) {a:N2} µs/op ({ab:N0} B, {aw:N0} ops/s), CPU ratio {g / a:N2}, throughput ratio {gw / aw:N2}"));
                }
            }
            finally
            {
                actors.Stop();
            }
        }
        finally
        {
            actors.Cleanup();
        }
        return 0;
    }

    /// <summary>CPU microseconds and bytes allocated (all threads) per op of <paramref name="action"/> (which runs <paramref name="ops"/> ops), and its ops per wall-clock second.</summary>
    private static (double Micros, double Bytes, double OpsPerSecond) Measure(Action action, int ops)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var process = Process.GetCurrentProcess();
        process.Refresh();
        var before = process.TotalProcessorTime;
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var wall = Stopwatch.StartNew();
        action();
        var seconds = wall.Elapsed.TotalSeconds;
        var bytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        process.Refresh();
        return ((process.TotalProcessorTime - before).TotalMicroseconds / ops, (double)bytes / ops, ops / seconds);
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
}
