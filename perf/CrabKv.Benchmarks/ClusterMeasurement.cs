using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Cluster;

namespace CrabKv.Benchmarks;

/// <summary>
/// `-- cluster [ops] [partitions]`: puts (sync every 100 ms) and gets by 64 concurrent
/// callers through <see cref="CrabKvClient"/>, first against a local single-node store (the
/// baseline, 2 partitions), then through the shard region of a two-node cluster on
/// 127.0.0.1 (callers on kv node A, so about half the shards are remote), then through a
/// client-only node's shard-region proxy (every request remote), all in the same run; ops/s
/// and the ratio to the local row. Then the same three paths again with 64 client actors that
/// each keep 16 requests outstanding (Tell). Each phase warms up with a tenth of <c>ops</c> first.
/// </summary>
internal static class ClusterMeasurement
{
    private const int Callers = 64;

    public static int Run(string[] args)
    {
        var ops = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200_000;
        var partitions = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 16;
        var root = Path.Combine(Path.GetTempPath(), "crabkv-cluster-bench-" + Guid.NewGuid().ToString("N"));
        var keys = Enumerable.Range(0, ops).Select(i => $"key:{i:D8}").ToArray();
        var value = new byte[100];
        new Random(42).NextBytes(value);
        var rows = new List<Row>();
        var actorRows = new List<Row>();
        try
        {
            // Baseline: the local actor path, same callers, same client.
            using (var local = ActorSystem.Create("local", Common(Path.Combine(root, "local")).WithFallback(CrabKvSettings.DefaultConfig())))
            {
                var store = CrabKvStore.Start(local, CrabKvSettings.Create(local) with { Partitions = 2, ConfiguredPartitions = 2 });
                var client = CrabKvClient.ConnectAsync(store).GetAwaiter().GetResult();
                rows.Add(Measure("local store (2 partitions), 64 callers", client, keys, value));
                actorRows.Add(MeasureActors($"local store (2 partitions), {Callers} client actors x {Window} outstanding", local, store, keys, value));
            }

            var a = ActorSystem.Create("crabkv-bench", Node(Path.Combine(root, "a"), partitions));
            var b = ActorSystem.Create("crabkv-bench", Node(Path.Combine(root, "b"), partitions));
            var c = ActorSystem.Create("crabkv-bench", Node(null, partitions));
            try
            {
                var nodeA = CrabKvCluster.Start(a);
                CrabKvCluster.Start(b);
                var nodeC = CrabKvCluster.Start(c);
                var seed = Akka.Cluster.Cluster.Get(a).SelfAddress;
                foreach (var s in new[] { a, b, c })
                {
                    Akka.Cluster.Cluster.Get(s).Join(seed);
                }
                Task.WhenAll(nodeA.Ready, nodeC.Ready).Wait(TimeSpan.FromMinutes(2));
                var viaKvNode = CrabKvClient.ConnectAsync(nodeA.Endpoint, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
                // Every partition opened (GetStats fans out to all of them) before timing.
                WaitForAllPartitions(viaKvNode, partitions);
                rows.Add(Measure($"cluster, 2 kv nodes ({partitions} partitions), callers on a kv node", viaKvNode, keys, value));
                actorRows.Add(MeasureActors($"cluster, 2 kv nodes ({partitions} partitions), {Callers} client actors x {Window} outstanding on a kv node", a, nodeA.Endpoint, keys, value));
                var viaProxy = CrabKvClient.ConnectAsync(nodeC.Endpoint, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
                rows.Add(Measure($"cluster, 2 kv nodes ({partitions} partitions), callers on a client-only node (proxy)", viaProxy, keys, value));
                actorRows.Add(MeasureActors($"cluster, 2 kv nodes ({partitions} partitions), {Callers} client actors x {Window} outstanding on a client-only node", c, nodeC.Endpoint, keys, value));
            }
            finally
            {
                Task.WhenAll(new[] { c, b, a }.Select(s => CoordinatedShutdown.Get(s).Run(CoordinatedShutdown.ClrExitReason.Instance)))
                    .Wait(TimeSpan.FromMinutes(1));
            }

            var baseline = rows[0];
            Console.WriteLine();
            Console.WriteLine($"| path ({ops:N0} ops per phase, 100-byte values, sync every 100 ms) | puts/s | × local | gets/s | × local | CPU µs per put | CPU µs per get |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
            foreach (var r in rows.Concat(actorRows))
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {r.Name} | {r.Puts:N0} | {r.Puts / baseline.Puts:F2} | {r.Gets:N0} | {r.Gets / baseline.Gets:F2} | {r.PutCpu:F1} | {r.GetCpu:F1} |"));
            }
            Console.WriteLine("(CPU µs per op: the whole process's CPU time over the phase divided by its operations — every node of the run is in this process; less sensitive to a shared machine's load than ops/s.)");
            return 0;
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // A system still closing its files; the OS temp cleaner takes it.
            }
        }
    }

    private static Config Common(string dataDir) => ConfigurationFactory.ParseString($$"""
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        crabkv.data-dir = "{{dataDir}}"
        crabkv.sync-interval = 100ms
        crabkv.segment.max-bytes = 16 MiB
        """);

    private static Config Node(string? dataDir, int partitions) => ConfigurationFactory.ParseString($$"""
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.cluster.roles = {{(dataDir is null ? "[]" : "[crabkv]")}}
        akka.cluster.min-nr-of-members = 2
        akka.coordinated-shutdown.exit-clr = off
        crabkv.cluster.partitions = {{partitions}}
        """).WithFallback(Common(dataDir ?? "unused")).WithFallback(CrabKvClusterSettings.FullDefaultConfig());

    private static void WaitForAllPartitions(CrabKvClient client, int partitions)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(2))
        {
            try
            {
                if (client.GetStatsAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult().Partitions.Count == partitions)
                {
                    return;
                }
            }
            catch (Exception e) when (e is TimeoutException or CrabKvRequestException)
            {
                // Still forming: ask again.
            }
        }
        throw new TimeoutException($"The cluster did not open its {partitions} partitions within 2 minutes.");
    }

    private sealed record Row(string Name, double Puts, double Gets, double PutCpu, double GetCpu);

    private static TimeSpan Cpu() => Process.GetCurrentProcess().TotalProcessorTime;

    private static (double OpsPerSecond, double CpuMicrosPerOp) Timed(int count, Func<double> run)
    {
        var before = Cpu();
        var opsPerSecond = run();
        return (opsPerSecond, (Cpu() - before).TotalMicroseconds / count);
    }

    private static Row Measure(string name, CrabKvClient client, string[] keys, byte[] value)
    {
        Run(client, keys, keys.Length / 10, (c, k) => c.PutAsync(k, value)); // warm-up
        var puts = Timed(keys.Length, () => Run(client, keys, keys.Length, (c, k) => c.PutAsync(k, value)));
        Run(client, keys, keys.Length / 10, (c, k) => c.GetAsync(k));
        var gets = Timed(keys.Length, () => Run(client, keys, keys.Length, (c, k) => c.GetAsync(k)));
        Console.WriteLine($"{name}: {puts.OpsPerSecond:N0} puts/s ({puts.CpuMicrosPerOp:F1} CPU µs each), {gets.OpsPerSecond:N0} gets/s ({gets.CpuMicrosPerOp:F1} CPU µs each)");
        return new Row(name, puts.OpsPerSecond, gets.OpsPerSecond, puts.CpuMicrosPerOp, gets.CpuMicrosPerOp);
    }

    /// <summary>
    /// The same operations by <see cref="Callers"/> client actors that each keep
    /// <see cref="Window"/> requests outstanding (Tell, no Ask): what the endpoint and the
    /// partitions sustain when callers pipeline, as Akka applications do.
    /// </summary>
    private static Row MeasureActors(string name, ActorSystem system, IActorRef endpoint, string[] keys, byte[] value)
    {
        RunActors(system, endpoint, keys, keys.Length / 10, k => new Put(k, value)); // warm-up
        var puts = Timed(keys.Length, () => RunActors(system, endpoint, keys, keys.Length, k => new Put(k, value)));
        RunActors(system, endpoint, keys, keys.Length / 10, k => new Get(k));
        var gets = Timed(keys.Length, () => RunActors(system, endpoint, keys, keys.Length, k => new Get(k)));
        Console.WriteLine($"{name}: {puts.OpsPerSecond:N0} puts/s ({puts.CpuMicrosPerOp:F1} CPU µs each), {gets.OpsPerSecond:N0} gets/s ({gets.CpuMicrosPerOp:F1} CPU µs each)");
        return new Row(name, puts.OpsPerSecond, gets.OpsPerSecond, puts.CpuMicrosPerOp, gets.CpuMicrosPerOp);
    }

    private const int Window = 16;

    private static double RunActors(ActorSystem system, IActorRef endpoint, string[] keys, int count, Func<string, ICrabKvRequest> request)
    {
        var shared = new SharedCounter();
        var done = Enumerable.Range(0, Callers).Select(_ => new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var watch = Stopwatch.StartNew();
        var actors = done.Select(tcs => system.ActorOf(Props.Create(() => new WindowCaller(endpoint, keys, count, shared, request, tcs)))).ToList();
        Task.WaitAll(done.Select(d => d.Task).ToArray(), TimeSpan.FromMinutes(10));
        var elapsed = watch.Elapsed;
        foreach (var actor in actors)
        {
            system.Stop(actor);
        }
        var errors = done.Sum(d => d.Task.IsCompletedSuccessfully ? d.Task.Result : 0);
        if (errors > 0)
        {
            Console.WriteLine($"  ({errors:N0} error replies)");
        }
        return count / elapsed.TotalSeconds;
    }

    private sealed class SharedCounter
    {
        private int _next = -1;

        public int Take() => Interlocked.Increment(ref _next);
    }

    /// <summary>A caller that keeps <see cref="Window"/> requests outstanding until the shared count is used up.</summary>
    private sealed class WindowCaller : ReceiveActor
    {
        private readonly IActorRef _endpoint;
        private readonly string[] _keys;
        private readonly int _count;
        private readonly SharedCounter _shared;
        private readonly Func<string, ICrabKvRequest> _request;
        private readonly TaskCompletionSource<int> _done;
        private int _outstanding;
        private int _errors;
        private bool _exhausted;

        public WindowCaller(IActorRef endpoint, string[] keys, int count, SharedCounter shared, Func<string, ICrabKvRequest> request, TaskCompletionSource<int> done)
        {
            _endpoint = endpoint;
            _keys = keys;
            _count = count;
            _shared = shared;
            _request = request;
            _done = done;
            Receive<ICrabKvReply>(reply =>
            {
                _errors += reply is CrabKvError ? 1 : 0;
                _outstanding--;
                SendNext();
                if (_exhausted && _outstanding == 0)
                {
                    _done.TrySetResult(_errors);
                }
            });
        }

        protected override void PreStart()
        {
            for (var i = 0; i < Window; i++)
            {
                SendNext();
            }
            if (_outstanding == 0)
            {
                _done.TrySetResult(0);
            }
        }

        private void SendNext()
        {
            if (_exhausted)
            {
                return;
            }
            var i = _shared.Take();
            if (i >= _count)
            {
                _exhausted = true;
                return;
            }
            _outstanding++;
            _endpoint.Tell(_request(_keys[i]), Self);
        }
    }

    /// <summary>64 callers share <paramref name="count"/> operations (each takes the next index); ops/s.</summary>
    private static double Run(CrabKvClient client, string[] keys, int count, Func<CrabKvClient, string, Task> op)
    {
        var next = -1;
        var watch = Stopwatch.StartNew();
        var callers = Enumerable.Range(0, Callers).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                await op(client, keys[i]).ConfigureAwait(false);
            }
        }).ToArray();
        Task.WaitAll(callers);
        return count / watch.Elapsed.TotalSeconds;
    }
}
