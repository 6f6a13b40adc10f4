using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Actors.Transfer;
using CrabKv.Storage.Files;

namespace CrabKv.Benchmarks;

/// <summary>
/// `-- transfer [MB] [runs] [chunk-KiB] [window]`: the time to move a partition of about MB megabytes (default 100)
/// between two ActorSystems on 127.0.0.1 (PartitionTransferSource → PartitionTransferSink:
/// manifest, 1 MiB chunks with a window of 8, fsync, checksum and record verification,
/// install), beside a plain copy of the same files in the same run — once without fsync and
/// once with an fsync per file — so the ratio shows what Akka, remoting and verification
/// cost over the disk. One warm-up transfer, then `runs` (default 3) of each; medians.
/// Chunk size and window default to the reference configuration (1 MiB, 8).
/// </summary>
internal static class TransferMeasurement
{
    public static int Run(string[] args)
    {
        var megabytes = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100;
        var runs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3;
        var chunkKiB = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 0; // 0: crabkv.transfer.chunk-bytes
        var window = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 0; // 0: crabkv.transfer.window
        var root = Path.Combine(Path.GetTempPath(), "crabkv-transfer-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var sourceData = Path.Combine(root, "source");
            var partition = DataDirectory.PartitionDirectory(sourceData, 0);
            var bytes = WritePartition(partition, megabytes);
            Console.WriteLine($"partition: {bytes / 1e6:F1} MB in {Directory.GetFiles(partition, "seg-*").Length} files ({partition})");

            var copy = new List<double>();
            var copySync = new List<double>();
            var move = new List<double>();
            var config = ConfigurationFactory.ParseString("""
                akka.loglevel = WARNING
                akka.stdout-loglevel = WARNING
                akka.actor.provider = remote
                akka.remote.dot-netty.tcp.hostname = 127.0.0.1
                akka.remote.dot-netty.tcp.port = 0
                """).WithFallback(CrabKvSettings.DefaultConfig());
            using var sourceSystem = ActorSystem.Create("source", config);
            using var sinkSystem = ActorSystem.Create("sink", config);
            var settings = TransferSettings.Create(sinkSystem);
            settings = settings with
            {
                ChunkBytes = chunkKiB > 0 ? chunkKiB << 10 : settings.ChunkBytes,
                Window = window > 0 ? window : settings.Window,
            };
            Console.WriteLine($"chunk {settings.ChunkBytes >> 10} KiB, window {settings.Window}");
            sourceSystem.ActorOf(PartitionTransferSource.Props(sourceData, TransferSettings.Create(sourceSystem)), "transfer-source");
            var address = ((ExtendedActorSystem)sourceSystem).Provider.DefaultAddress;
            var source = sinkSystem.ActorSelection($"{address}/user/transfer-source").ResolveOne(TimeSpan.FromSeconds(30)).Result;

            for (var run = -1; run < runs; run++)
            {
                var target = Path.Combine(root, $"sink-{run + 1}");
                var sw = Stopwatch.StartNew();
                var outcome = Move(sinkSystem, source, target, settings);
                sw.Stop();
                if (outcome is not TransferCompleted done)
                {
                    Console.WriteLine($"transfer failed: {outcome}");
                    return 1;
                }
                if (run >= 0)
                {
                    move.Add(sw.Elapsed.TotalSeconds);
                }
                Directory.Delete(target, recursive: true);

                if (run >= 0)
                {
                    copy.Add(Copy(partition, Path.Combine(root, $"copy-{run}"), fsync: false));
                    copySync.Add(Copy(partition, Path.Combine(root, $"copysync-{run}"), fsync: true));
                }
            }
            sinkSystem.Terminate().Wait();
            sourceSystem.Terminate().Wait();

            double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);
            double MBps(double seconds) => bytes / 1e6 / seconds;
            Console.WriteLine();
            Console.WriteLine("| what | median time | MB/s | transfer time / this |");
            Console.WriteLine("|---|---:|---:|---:|");
            Row("transfer over loopback (2 ActorSystems)", Median(move));
            Row("file copy (no fsync)", Median(copy));
            Row("file copy + fsync per file", Median(copySync));
            void Row(string what, double seconds) =>
                Console.WriteLine($"| {what} | {seconds * 1000:F0} ms | {MBps(seconds):F0} | {Median(move) / seconds:F2} |");
            Console.WriteLine($"runs: transfer {string.Join(", ", move.Select(s => $"{s * 1000:F0}"))} ms; copy {string.Join(", ", copy.Select(s => $"{s * 1000:F0}"))} ms; copy+fsync {string.Join(", ", copySync.Select(s => $"{s * 1000:F0}"))} ms");
            return 0;
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    /// <summary>A stopped partition of about <paramref name="megabytes"/> MB: 4 KiB random (incompressible) values, 64 MiB segments, one compaction (hints).</summary>
    private static long WritePartition(string directory, int megabytes)
    {
        var random = new Random(1);
        var value = new byte[4096];
        var count = megabytes * 1_000_000L / (value.Length + 40);
        using (var store = EmbeddedStore.Open(directory, new StoreOptions { AutoCompact = false }))
        {
            for (var i = 0L; i < count; i++)
            {
                random.NextBytes(value);
                store.Put($"bench:{i:D9}", value);
            }
            store.Compact();
        }
        return Directory.GetFiles(directory, "seg-*").Sum(f => new FileInfo(f).Length);
    }

    private static object Move(ActorSystem system, IActorRef source, string targetDataDir, TransferSettings settings)
    {
        var done = new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);
        var requester = system.ActorOf(Props.Create(() => new Requester(done)));
        system.ActorOf(PartitionTransferSink.Props(source, 0, targetDataDir, requester, settings));
        return done.Task.WaitAsync(TimeSpan.FromMinutes(5)).Result;
    }

    /// <summary>Copies the segment and hint files (what a transfer moves); with <paramref name="fsync"/>, each file and the directory are fsynced. Seconds.</summary>
    private static double Copy(string from, string to, bool fsync)
    {
        var sw = Stopwatch.StartNew();
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "seg-*"))
        {
            var dest = Path.Combine(to, Path.GetFileName(file));
            File.Copy(file, dest);
            if (fsync)
            {
                using var h = File.OpenHandle(dest, FileMode.Open, FileAccess.ReadWrite);
                RandomAccess.FlushToDisk(h);
            }
        }
        if (fsync)
        {
            FileLayer.Default.SyncDirectory(to);
        }
        sw.Stop();
        Directory.Delete(to, recursive: true);
        return sw.Elapsed.TotalSeconds;
    }

    private sealed class Requester : ReceiveActor
    {
        public Requester(TaskCompletionSource<object> done) => ReceiveAny(m =>
        {
            done.TrySetResult(m);
            Context.Stop(Self);
        });
    }
}
