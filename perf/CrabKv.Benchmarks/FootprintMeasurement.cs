using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors;

namespace CrabKv.Benchmarks;

/// <summary>
/// `-- footprint [partitions] [node|old] [writes]`: the disk and memory a store of `partitions` (default
/// 64) partitions takes on an empty data directory, once open. `node` (default) runs with the
/// reference node budgets (crabkv.cache.max-bytes, write-back.max-dirty-bytes, segment.write-buffer,
/// segment.preallocate shared by the partitions); `old` sets each budget to partitions x the former
/// per-partition value (64 MiB cache, 64 MiB dirty, 256 KiB buffer, 64 MiB preallocated segment),
/// which reproduces the behaviour before budgets. With `writes` > 0, that many 1 KiB values are
/// then written through write-back and flushed, and the figures taken again.
/// Disk: allocated blocks (du -sk), beside the apparent size. Memory: working set, GC heap after a
/// full collection, and the GC's committed bytes, minus the same figures of the process before the
/// store started (an ActorSystem alone).
/// </summary>
internal static class FootprintMeasurement
{
    public static int Run(string[] args)
    {
        var partitions = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 64;
        var mode = args.Length > 1 ? args[1] : "node";
        var writes = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 0;
        var budgets = mode switch
        {
            "node" => "",
            "old" => $"""
                crabkv.cache.max-entries = {10_000L * partitions}
                crabkv.cache.max-bytes = {64L * partitions} MiB
                crabkv.write-back.max-dirty-bytes = {64L * partitions} MiB
                crabkv.segment.write-buffer = {256L * partitions} KiB
                crabkv.segment.preallocate = {64L * partitions} MiB
                """,
            _ => throw new ArgumentException("mode is node or old"),
        };
        var root = Path.Combine(Path.GetTempPath(), "crabkv-footprint-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        try
        {
            var config = ConfigurationFactory.ParseString($"""
                akka.loglevel = WARNING
                crabkv.data-dir = "{root}"
                crabkv.partitions = {partitions}
                crabkv.write-back.enabled = on
                crabkv.sync-interval = 100ms
                {budgets}
                """).WithFallback(CrabKvSettings.DefaultConfig());
            using var system = ActorSystem.Create("footprint", config);
            var before = Memory.Take();
            var watch = Stopwatch.StartNew();
            var store = CrabKvStore.Start(system, null, "crabkv", out var settings);
            var stats = store.Ask<StoreStats>(new GetStats(), TimeSpan.FromMinutes(5)).GetAwaiter().GetResult();
            var opened = watch.Elapsed;
            var share = settings.PerPartition(partitions);
            Console.WriteLine($"footprint: {partitions} partitions ({stats.Partitions.Count} open in {opened.TotalSeconds:F1} s), budgets '{mode}'");
            Console.WriteLine($"  per partition: cache {share.CacheMaxEntries} entries / {Mib(share.CacheMaxBytes)}, dirty {Mib(share.EffectiveMaxDirtyBytes)}, write buffer {share.WriteBufferBytes / 1024} KiB, preallocation step {Mib(share.ToLogSettings().PreallocateBytes)}");
            Report("empty store", root, before);

            if (writes > 0)
            {
                var value = new byte[1024];
                Random.Shared.NextBytes(value);
                var pending = new List<Task>();
                for (var i = 0; i < writes; i++)
                {
                    pending.Add(store.Ask<object>(new Put($"key-{i:D8}", value), TimeSpan.FromMinutes(1)));
                    if (pending.Count == 1000)
                    {
                        Task.WaitAll([.. pending]);
                        pending.Clear();
                    }
                }
                Task.WaitAll([.. pending]);
                store.Ask<object>(new Flush(), TimeSpan.FromMinutes(5)).GetAwaiter().GetResult();
                Report($"after {writes} x 1 KiB puts", root, before);
            }
            store.GracefulStop(TimeSpan.FromMinutes(2), new Shutdown()).GetAwaiter().GetResult();
            system.Terminate().Wait(TimeSpan.FromMinutes(1));
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
            }
        }
    }

    private static void Report(string title, string root, Memory before)
    {
        var now = Memory.Take();
        var apparent = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        Console.WriteLine($"  {title}:");
        Console.WriteLine($"    disk: {AllocatedKiB(root) / 1024.0:F1} MiB allocated (du -sk), {apparent / 1048576.0:F1} MiB apparent");
        Console.WriteLine($"    memory: working set {Mib(now.WorkingSet)} (+{Mib(now.WorkingSet - before.WorkingSet)} over the bare actor system), " +
            $"GC heap {Mib(now.Heap)} (+{Mib(now.Heap - before.Heap)}), GC committed {Mib(now.Committed)} (+{Mib(now.Committed - before.Committed)})");
    }

    private static string Mib(long bytes) => $"{bytes / 1048576.0:F1} MiB";

    /// <summary>Allocated disk blocks under <paramref name="path"/>: du -sk (not the apparent size).</summary>
    private static long AllocatedKiB(string path)
    {
        using var du = Process.Start(new ProcessStartInfo("du", ["-sk", path]) { RedirectStandardOutput = true })!;
        var output = du.StandardOutput.ReadToEnd();
        du.WaitForExit();
        return long.Parse(output.Split('\t', ' ')[0], CultureInfo.InvariantCulture);
    }

    private readonly record struct Memory(long WorkingSet, long Heap, long Committed)
    {
        public static Memory Take()
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            GC.Collect();
            using var self = Process.GetCurrentProcess();
            self.Refresh();
            return new Memory(self.WorkingSet64, GC.GetTotalMemory(false), GC.GetGCMemoryInfo().TotalCommittedBytes);
        }
    }
}
