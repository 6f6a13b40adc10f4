using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Cluster;

namespace CrabKv.Benchmarks;

/// <summary>
/// `-- handoff [MB] [partitions]`: the time to move partitions holding <c>MB</c> megabytes
/// through Cluster.Sharding. Two kv nodes on 127.0.0.1 (A, B); 64 KiB values are written in
/// batches into the partitions A hosts until they hold <c>MB</c>, then A leaves gracefully
/// (CoordinatedShutdown): its partitions stop (flushed, sealed), B's new entities pull them
/// (manifest, 1 MiB chunks, every record verified, atomic install), the registry names B, and A
/// terminates once nothing is recorded as its own. Reported: the bytes moved, the time from the
/// leave to B answering for every key written (GetStats through B waits for partitions still
/// moving) and to A's termination (which adds Akka's own leave phases); then a sample of keys
/// read back through B.
/// </summary>
internal static class HandoffMeasurement
{
    private const int ValueBytes = 64 * 1024;

    public static int Run(string[] args)
    {
        var megabytes = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100;
        var partitions = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 4;
        var root = Path.Combine(Path.GetTempPath(), "crabkv-handoff-bench-" + Guid.NewGuid().ToString("N"));
        var a = ActorSystem.Create("crabkv-bench", Node(Path.Combine(root, "a"), partitions));
        var b = ActorSystem.Create("crabkv-bench", Node(Path.Combine(root, "b"), partitions));
        try
        {
            var nodeA = CrabKvCluster.Start(a);
            var nodeB = CrabKvCluster.Start(b);
            var seed = Akka.Cluster.Cluster.Get(a).SelfAddress;
            Akka.Cluster.Cluster.Get(a).Join(seed);
            Akka.Cluster.Cluster.Get(b).Join(seed);
            Task.WhenAll(nodeA.Ready, nodeB.Ready).Wait(TimeSpan.FromMinutes(2));
            var client = CrabKvClient.ConnectAsync(nodeA.Endpoint, TimeSpan.FromSeconds(60)).GetAwaiter().GetResult();
            WaitUntil(() => client.GetStatsAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult().Partitions.Count == partitions, "every partition open");
            var region = nodeA.Ready.GetAwaiter().GetResult();
            var onA = region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult()
                .Shards.Select(s => int.Parse(s.ShardId, CultureInfo.InvariantCulture)).ToHashSet();
            if (onA.Count == 0)
            {
                Console.Error.WriteLine("Node A hosts no partition; nothing to move.");
                return 2;
            }

            // Fill A's partitions: batches of 16 values (1 MiB) per partition, round robin.
            var value = new byte[ValueBytes];
            new Random(7).NextBytes(value);
            var keys = new List<string>();
            var target = (long)megabytes * 1024 * 1024;
            var written = 0L;
            var candidates = Enumerable.Range(0, int.MaxValue).Select(i => $"handoff:{i:D9}")
                .Where(k => onA.Contains(KeyPartitioner.PartitionOf(k, partitions)));
            var load = Stopwatch.StartNew();
            foreach (var group in candidates.Chunk(16 * onA.Count))
            {
                var batches = group.GroupBy(k => KeyPartitioner.PartitionOf(k, partitions))
                    .Select(g => client.PutBatchAsync(g.Select(k => BatchEntry.Put(k, value)).ToList(), TimeSpan.FromSeconds(60)));
                Task.WaitAll(batches.ToArray());
                keys.AddRange(group);
                written += (long)group.Length * ValueBytes;
                if (written >= target)
                {
                    break;
                }
            }
            client.FlushAsync(TimeSpan.FromSeconds(60)).GetAwaiter().GetResult();
            Console.WriteLine($"wrote {written / 1048576.0:N0} MiB ({keys.Count:N0} values of 64 KiB) into partitions {string.Join(", ", onA.Order())} on node A in {load.Elapsed.TotalSeconds:N1} s");
            var onDisk = onA.Sum(p => DirectoryBytes(DataDirectory.PartitionDirectory(Path.Combine(root, "a"), p)));

            var clientB = CrabKvClient.ConnectAsync(nodeB.Endpoint, TimeSpan.FromSeconds(60)).GetAwaiter().GetResult();
            var watch = Stopwatch.StartNew();
            _ = CoordinatedShutdown.Get(a).Run(CoordinatedShutdown.ClusterLeavingReason.Instance);
            var regionB = nodeB.Ready.GetAwaiter().GetResult();
            WaitUntil(() => regionB.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult().Shards.Count == partitions
                            && clientB.GetStatsAsync(TimeSpan.FromSeconds(30)).GetAwaiter().GetResult() is { } s
                            && s.Partitions.Count == partitions && s.Keys == keys.Count, "node B hosting every partition and answering for every key");
            var served = watch.Elapsed;
            a.WhenTerminated.Wait(TimeSpan.FromMinutes(5));
            var leaveDone = watch.Elapsed;
            var sample = keys.Where((_, i) => i % Math.Max(1, keys.Count / 200) == 0).ToList();
            var wrong = sample.Count(k => clientB.GetAsync(k, TimeSpan.FromSeconds(30)).GetAwaiter().GetResult() is not { Length: ValueBytes } v || !v.AsSpan().SequenceEqual(value));
            var onB = onA.Sum(p => DirectoryBytes(DataDirectory.PartitionDirectory(Path.Combine(root, "b"), p)));
            var leftOnA = onA.Sum(p => DirectoryBytes(DataDirectory.PartitionDirectory(Path.Combine(root, "a"), p)));

            Console.WriteLine();
            Console.WriteLine($"| move of {onA.Count} partitions by a graceful leave | time to B serving every key | MiB/s | time to A's termination | sample read back |");
            Console.WriteLine("|---|---:|---:|---:|---:|");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {written / 1048576.0:N0} MiB of values ({onDisk / 1048576.0:N0} MiB of segment files, preallocation included) | {served.TotalSeconds:N2} s | {written / 1048576.0 / served.TotalSeconds:N1} | {leaveDone.TotalSeconds:N2} s | {sample.Count - wrong}/{sample.Count} |"));
            Console.WriteLine($"bytes now on B for those partitions: {onB / 1048576.0:N1} MiB; left on A: {leftOnA / 1048576.0:N1} MiB");
            return wrong == 0 ? 0 : 1;
        }
        finally
        {
            Task.WhenAll(new[] { b, a }.Select(s => CoordinatedShutdown.Get(s).Run(CoordinatedShutdown.ClrExitReason.Instance))).Wait(TimeSpan.FromMinutes(1));
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

    private static long DirectoryBytes(string dir) =>
        Directory.Exists(dir) ? Directory.EnumerateFiles(dir, "seg-*.data").Sum(f => new FileInfo(f).Length) : 0;

    private static void WaitUntil(Func<bool> condition, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(3))
        {
            try
            {
                if (condition())
                {
                    return;
                }
            }
            catch (Exception e) when (e is TimeoutException or CrabKvRequestException or AggregateException)
            {
                // Still moving: ask again.
            }
            Thread.Sleep(100); // perf program, not a test: a plain poll
        }
        throw new TimeoutException($"Waited 3 minutes for {what}.");
    }

    private static Config Node(string dataDir, int partitions) => ConfigurationFactory.ParseString($$"""
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.cluster.roles = [crabkv]
        akka.cluster.min-nr-of-members = 2
        akka.coordinated-shutdown.exit-clr = off
        crabkv.cluster.partitions = {{partitions}}
        crabkv.cluster.leave-drain-timeout = 25s
        crabkv.data-dir = "{{dataDir}}"
        crabkv.sync-interval = 100ms
        """).WithFallback(CrabKvClusterSettings.FullDefaultConfig());
}
