using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Actors.Internal;

namespace CrabKv.Benchmarks;

/// <summary>
/// <c>client [seconds] [callers] [row prefix] [client-only|actors-only|abba]</c>: the typed client's gap in one short run, for profiling
/// (dotnet-trace attaches to a steady loop) and same-run ratios: for put with write-back, put
/// with a 100 ms sync and get hit, <paramref name="callers"/> awaiting callers through
/// <see cref="CrabKvClient"/> beside as many client actors that Tell the partition directly,
/// each for a fixed time, with ops/s and bytes allocated per operation (whole process).
/// </summary>
internal static class ClientMeasurement
{
    private const int Keys = 200_000;

    public static int Run(string[] args)
    {
        var seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        var callers = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 64;
        var only = args.Length > 2 ? args[2] : "";
        var clientOnly = args.Length > 3 && args[3] == "client-only"; // for a profile of the client alone
        var actorsOnly = args.Length > 3 && args[3] == "actors-only"; // for a profile of the client actors alone
        // The mode measured first in a process runs the store's code before it is tiered up and
        // with a heap that has not grown yet; "abba" measures client, actors, actors, client.
        var abba = args.Length > 3 && args[3] == "abba";
        var keys = BenchData.Keys(Keys);
        var value = BenchData.Value();
        var root = BenchData.NewTempDirectory("client");
        try
        {
            // CPU per operation (whole process) is the steadier figure on a loaded machine: throughput
            // there depends on what else runs; when the machine is idle, ops/s follows CPU/op.
            Console.WriteLine($"| row ({callers} callers, {seconds} s each) | client ops/s | client B/op | client CPU µs/op | client actors ops/s | actors B/op | actors CPU µs/op | client / actors (ops/s) | actors CPU / client CPU |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var (name, hocon, get) in new[]
            {
                ("put, write-back", "crabkv.sync-interval = 100ms\ncrabkv.write-back.enabled = on", false),
                ("put, fsync every 100 ms", "crabkv.sync-interval = 100ms", false),
                ("get (hit)", "crabkv.sync-interval = 100ms", true),
            })
            {
                if (only.Length > 0 && !name.StartsWith(only, StringComparison.Ordinal))
                {
                    continue;
                }
                if (abba)
                {
                    var c1 = Measure(root, hocon, get, keys, value, seconds, callers, actors: false);
                    var a1 = Measure(root, hocon, get, keys, value, seconds, callers, actors: true);
                    var a2 = Measure(root, hocon, get, keys, value, seconds, callers, actors: true);
                    var c2 = Measure(root, hocon, get, keys, value, seconds, callers, actors: false);
                    Print($"{name} (client first)", c1, a1);
                    Print($"{name} (actors first)", c2, a2);
                    Print($"{name} (both)", Mean(c1, c2), Mean(a1, a2));
                    continue;
                }
                var client = actorsOnly ? (OpsPerSecond: double.NaN, BytesPerOp: double.NaN, CpuMicrosPerOp: double.NaN) : Measure(root, hocon, get, keys, value, seconds, callers, actors: false);
                var actors = clientOnly ? (OpsPerSecond: double.NaN, BytesPerOp: double.NaN, CpuMicrosPerOp: double.NaN) : Measure(root, hocon, get, keys, value, seconds, callers, actors: true);
                Print(name, client, actors);
            }
            return 0;
        }
        finally
        {
            BenchData.DeleteDirectory(root);
        }
    }

    private static void Print(string name, (double OpsPerSecond, double BytesPerOp, double CpuMicrosPerOp) client, (double OpsPerSecond, double BytesPerOp, double CpuMicrosPerOp) actors) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {client.OpsPerSecond:N0} | {client.BytesPerOp:N0} | {client.CpuMicrosPerOp:N2} | {actors.OpsPerSecond:N0} | {actors.BytesPerOp:N0} | {actors.CpuMicrosPerOp:N2} | {client.OpsPerSecond / actors.OpsPerSecond:N2} | {actors.CpuMicrosPerOp / client.CpuMicrosPerOp:N2} |"));

    private static (double OpsPerSecond, double BytesPerOp, double CpuMicrosPerOp) Mean(
        (double OpsPerSecond, double BytesPerOp, double CpuMicrosPerOp) a, (double OpsPerSecond, double BytesPerOp, double CpuMicrosPerOp) b) =>
        ((a.OpsPerSecond + b.OpsPerSecond) / 2, (a.BytesPerOp + b.BytesPerOp) / 2, (a.CpuMicrosPerOp + b.CpuMicrosPerOp) / 2);

    private static (double OpsPerSecond, double BytesPerOp, double CpuMicrosPerOp) Measure(string root, string hocon, bool get, string[] keys, byte[] value, double seconds, int callers, bool actors)
    {
        var directory = Path.Combine(root, Guid.NewGuid().ToString("N"));
        var config = ConfigurationFactory.ParseString($"""
            akka.loglevel = WARNING
            crabkv.data-dir = "{directory}"
            crabkv.partitions = 0
            crabkv.compaction.auto = off
            {hocon}
            """).WithFallback(CrabKvSettings.DefaultConfig());
        var system = ActorSystem.Create("client-bench", config);
        try
        {
            var store = CrabKvStore.Start(system);
            var client = CrabKvClient.ConnectAsync(store).GetAwaiter().GetResult();
            var partitions = LocalStores.PartitionsOf(store)!.GetAwaiter().GetResult();
            if (get)
            {
                Loops(callers, TimeSpan.FromMinutes(5), Keys, i => client.PutAsync(keys[i], value)).GetAwaiter().GetResult();
                client.FlushAsync().GetAwaiter().GetResult();
            }
            // Warm-up, then the measured run.
            Run(system, client, partitions, get, keys, value, TimeSpan.FromSeconds(Math.Min(1, seconds / 3)), callers, actors);
            var allocated = GC.GetTotalAllocatedBytes(precise: true);
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            var ops = Run(system, client, partitions, get, keys, value, TimeSpan.FromSeconds(seconds), callers, actors);
            var elapsed = clock.Elapsed.TotalSeconds;
            var bytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
            var cpuMicros = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMicroseconds;
            return (ops / elapsed, (double)bytes / ops, cpuMicros / ops);
        }
        finally
        {
            system.Terminate().Wait(TimeSpan.FromSeconds(30));
            BenchData.DeleteDirectory(directory);
        }
    }

    private static long Run(ActorSystem system, CrabKvClient client, IActorRef[] partitions, bool get, string[] keys, byte[] value, TimeSpan duration, int callers, bool actors)
    {
        if (!actors)
        {
            return get
                ? Loops(callers, duration, int.MaxValue, i => client.GetAsync(keys[(int)(i * 7919L % Keys)])).GetAwaiter().GetResult()
                : Loops(callers, duration, int.MaxValue, i => client.PutAsync(keys[i % Keys], value)).GetAwaiter().GetResult();
        }
        var deadline = Environment.TickCount64 + (long)duration.TotalMilliseconds;
        var total = 0L;
        var remaining = callers;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Action<long> finished = n =>
        {
            Interlocked.Add(ref total, n);
            if (Interlocked.Decrement(ref remaining) == 0)
            {
                done.TrySetResult();
            }
        };
        for (var c = 0; c < callers; c++)
        {
            var first = c;
            system.ActorOf(Props.Create(() => new TimedClientActor(first, callers, deadline, partitions, get, keys, value, finished)));
        }
        done.Task.GetAwaiter().GetResult();
        return total;
    }

    private static async Task<long> Loops(int callers, TimeSpan duration, int limit, Func<int, Task> request)
    {
        var deadline = Environment.TickCount64 + (long)duration.TotalMilliseconds;
        var loops = new Task<long>[callers];
        for (var c = 0; c < callers; c++)
        {
            var first = c;
            loops[c] = Task.Run(async () =>
            {
                var n = 0L;
                for (var i = first; i < limit && ((n & 15) != 0 || Environment.TickCount64 < deadline); i += callers)
                {
                    await request(i).ConfigureAwait(false);
                    n++;
                }
                return n;
            });
        }
        return (await Task.WhenAll(loops).ConfigureAwait(false)).Sum();
    }

    /// <summary>Tells request i, i + step, … to the key's partition, each after the previous reply, until the deadline.</summary>
    private sealed class TimedClientActor : ReceiveActor
    {
        private readonly int _step;
        private readonly long _deadline;
        private readonly IActorRef[] _partitions;
        private readonly bool _get;
        private readonly string[] _keys;
        private readonly byte[] _value;
        private readonly Action<long> _done;
        private int _next;
        private long _count;

        public TimedClientActor(int first, int step, long deadline, IActorRef[] partitions, bool get, string[] keys, byte[] value, Action<long> done)
        {
            (_next, _step, _deadline, _partitions, _get, _keys, _value, _done) = (first, step, deadline, partitions, get, keys, value, done);
            Receive<CrabKvError>(e => throw new InvalidOperationException($"Benchmark request failed: {e.Message}"));
            Receive<GetResult>(r =>
            {
                if (!r.Found)
                {
                    throw new InvalidOperationException($"Benchmark get of '{r.Key}' missed.");
                }
                SendNext();
            });
            ReceiveAny(_ => SendNext());
        }

        protected override void PreStart() => SendNext();

        private void SendNext()
        {
            if ((_count & 15) == 0 && Environment.TickCount64 >= _deadline)
            {
                _done(_count);
                Context.Stop(Self);
                return;
            }
            _count++;
            var key = _keys[_get ? (int)(_next * 7919L % Keys) : _next % Keys];
            _next += _step;
            // A copy, as the typed client makes (the store owns what it receives).
            object request = _get ? new Get(key) : new Put(key, _value.ToArray());
            _partitions[KeyPartitioner.PartitionOf(key, _partitions.Length)].Tell(request);
        }
    }
}
