using System.Diagnostics;
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Recovery;

namespace CrabKv.Node;

/// <summary>
/// The <c>crabkv</c> command: runs a CrabKv node (an actor system hosting the store) and
/// the admin commands around it.
/// </summary>
public static class Program
{
    private const string Usage = """
        crabkv — CrabKv.Actors storage node

        usage:
          crabkv serve   [options]            run a node until Ctrl-C / SIGTERM (graceful: flushes and seals)
          crabkv demo    [options] [--keys N] start a node, write/read/delete/compact N keys (default 200000), stop
          crabkv put     KEY VALUE [--ttl MS] [options]
          crabkv get     KEY [options]
          crabkv delete  KEY [options]
          crabkv stats   [options]
          crabkv compact [options]
          crabkv verify  [options]            check every record of every partition; changes nothing
          crabkv repair  [options]            rewrite damaged segments keeping every intact record

        options:
          --data-dir DIR     data directory (default: crabkv.data-dir, "crabkv-data")
          --config FILE      HOCON file layered over the reference configuration,
                             e.g. hocon/balanced.conf, hocon/high-throughput.conf, hocon/max-safety.conf

        The node must not be running for verify and repair (they take each partition's LOCK).
        Exit codes: 0 ok, 1 not found / damage found, 2 usage, configuration or store error.
        """;

    /// <summary>Entry point.</summary>
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0)
        {
            args = ["demo"];
        }
        var positional = new List<string>();
        string? dataDir = null, configFile = null;
        var keys = 200_000;
        long? ttlMs = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--data-dir" when i + 1 < args.Length: dataDir = args[++i]; break;
                case "--config" when i + 1 < args.Length: configFile = args[++i]; break;
                case "--keys" when i + 1 < args.Length && int.TryParse(args[i + 1], out var k) && k > 0: keys = k; i++; break;
                case "--ttl" when i + 1 < args.Length && long.TryParse(args[i + 1], out var t) && t > 0: ttlMs = t; i++; break;
                case "-h" or "--help": Console.WriteLine(Usage); return 0;
                default:
                    if (args[i].StartsWith("--", StringComparison.Ordinal))
                    {
                        Console.Error.WriteLine($"crabkv: unknown or incomplete option '{args[i]}'.\n\n{Usage}");
                        return 2;
                    }
                    positional.Add(args[i]);
                    break;
            }
        }
        try
        {
            var config = LoadConfig(configFile, dataDir);
            var settings = CrabKvSettings.Create(config);
            return positional switch
            {
                ["serve"] => await Serve(config, settings),
                ["demo"] => await WithNode(config, settings, c => Demo(c, settings, keys)),
                ["put", var key, var value] => await WithNode(config, settings, async c =>
                {
                    await c.PutAsync(key, value, ttlMs is null ? null : TimeSpan.FromMilliseconds(ttlMs.Value));
                    await c.FlushAsync();
                    Console.WriteLine("OK");
                    return 0;
                }),
                ["get", var key] => await WithNode(config, settings, async c =>
                {
                    var v = await c.GetStringAsync(key);
                    Console.WriteLine(v ?? "(not found)");
                    return v is null ? 1 : 0;
                }),
                ["delete", var key] => await WithNode(config, settings, async c =>
                {
                    var existed = await c.DeleteAsync(key);
                    await c.FlushAsync();
                    Console.WriteLine(existed ? "deleted" : "(not found)");
                    return existed ? 0 : 1;
                }),
                ["stats"] => await WithNode(config, settings, async c =>
                {
                    PrintStats(await c.GetStatsAsync());
                    return 0;
                }),
                ["compact"] => await WithNode(config, settings, async c =>
                {
                    var r = await c.CompactAsync(TimeSpan.FromHours(1));
                    Console.WriteLine($"compacted {r.SegmentsMerged} segments: {r.BytesBefore:N0} → {r.BytesAfter:N0} bytes in {r.Duration.TotalMilliseconds:N0} ms");
                    return 0;
                }),
                ["verify"] => VerifyOrRepair(settings, repair: false),
                ["repair"] => VerifyOrRepair(settings, repair: true),
                _ => UsageError(),
            };
        }
        catch (CrabKvConfigurationException e)
        {
            Console.Error.WriteLine($"crabkv: {e.Message}");
            return 2;
        }
        catch (CrabKvRequestException e)
        {
            Console.Error.WriteLine($"crabkv: {e.Code}: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is Storage.CrabKvException or ArgumentException or IOException or UnauthorizedAccessException or TimeoutException)
        {
            Console.Error.WriteLine($"crabkv: {e.Message}");
            return 2;
        }
    }

    private static int UsageError()
    {
        Console.Error.WriteLine(Usage);
        return 2;
    }

    private static Config LoadConfig(string? configFile, string? dataDir)
    {
        var config = ConfigurationFactory.ParseString("akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING");
        if (configFile is not null)
        {
            if (!File.Exists(configFile))
            {
                throw new CrabKvConfigurationException("(file)", $"file '{configFile}' does not exist");
            }
            config = ConfigurationFactory.ParseString(File.ReadAllText(configFile)).WithFallback(config);
        }
        if (dataDir is not null)
        {
            config = ConfigurationFactory.ParseString($"crabkv.data-dir = \"{dataDir.Replace("\\", "\\\\").Replace("\"", "\\\"")}\"").WithFallback(config);
        }
        return config.WithFallback(CrabKvSettings.DefaultConfig());
    }

    private static async Task<int> WithNode(Config config, CrabKvSettings settings, Func<CrabKvClient, Task<int>> action)
    {
        using var system = ActorSystem.Create("crabkv", config);
        try
        {
            var store = CrabKvStore.Start(system, settings);
            var client = await CrabKvClient.ConnectAsync(store, settings.ClientTimeout);
            return await action(client);
        }
        finally
        {
            await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
        }
    }

    /// <summary>How long <c>serve</c> waits for its partitions to open (recovery scans or reads hints).</summary>
    private static readonly TimeSpan OpenTimeout = TimeSpan.FromMinutes(30);

    private static async Task<int> Serve(Config config, CrabKvSettings settings)
    {
        using var system = ActorSystem.Create("crabkv", config);
        try
        {
            // Takes the lock of the whole data directory first: a second node is refused here.
            var store = CrabKvStore.Start(system, settings, "crabkv", out var resolved);
            var client = await CrabKvClient.ConnectAsync(store, settings.ClientTimeout);
            // Partitions answer GetStats only once they have opened (or failed to): this is the
            // readiness check. A node that cannot serve every partition does not start.
            var stats = await client.GetStatsAsync(OpenTimeout);
            var failures = Unopened(stats, resolved.Partitions);
            if (failures.Count > 0)
            {
                foreach (var failure in failures)
                {
                    Console.Error.WriteLine($"crabkv: {failure}");
                }
                await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
                Console.Error.WriteLine($"crabkv: the node did not start: {failures.Count} of {resolved.Partitions} partitions of '{Path.GetFullPath(settings.DataDir)}' could not open " +
                                        "(stopped cleanly). See `crabkv verify` and `crabkv repair`.");
                return 2;
            }
            Console.WriteLine($"crabkv node serving '{Path.GetFullPath(settings.DataDir)}': {resolved.Partitions} partitions, {stats.Keys:N0} keys, " +
                              $"sync-interval {settings.SyncInterval.TotalMilliseconds} ms, write-back {(settings.WriteBackEnabled ? "on" : "off")}. Ctrl-C or SIGTERM stops it gracefully.");
            Console.WriteLine($"store actor: {store.Path}");
            void Stop() => _ = CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
            Console.CancelKeyPress += (_, e) =>
            {
                e.Cancel = true;
                Stop();
            };
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
            {
                ctx.Cancel = true;
                Stop();
            });
            await system.WhenTerminated;
            Console.WriteLine("crabkv node stopped: write-back entries flushed, segments sealed.");
            return 0;
        }
        finally
        {
            // On every early exit (refused lock, failed partitions, timeout) the store stops gracefully.
            await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
        }
    }

    /// <summary>One line per partition that did not open: read-only with its reason, or absent (its actor stopped).</summary>
    private static List<string> Unopened(StoreStats stats, int partitions)
    {
        var failures = stats.Partitions.Where(p => p.ReadOnly)
            .Select(p => $"partition {Storage.DataDirectory.PartitionDirectoryName(p.Partition)} failed to open: {p.FailureReason}")
            .ToList();
        var present = stats.Partitions.Select(p => p.Partition).ToHashSet();
        failures.AddRange(Enumerable.Range(0, partitions).Where(i => !present.Contains(i)).Select(i => $"partition {Storage.DataDirectory.PartitionDirectoryName(i)} stopped before it opened"));
        return failures;
    }

    private static int VerifyOrRepair(CrabKvSettings settings, bool repair)
    {
        var root = Path.GetFullPath(settings.DataDir);
        if (!Directory.Exists(root))
        {
            Console.Error.WriteLine($"crabkv: data directory '{root}' does not exist.");
            return 2;
        }
        var partitions = Directory.GetDirectories(root, "p-*").Order(StringComparer.Ordinal).ToList();
        var clean = true;
        foreach (var dir in partitions)
        {
            var report = repair ? Repair.Run(dir, Console.WriteLine) : Repair.Verify(dir);
            foreach (var n in report.NotSegments)
            {
                Console.WriteLine($"not a segment: {n}");
            }
            foreach (var d in report.Damaged)
            {
                Console.WriteLine($"damaged: {d.Path}: ranges {string.Join(", ", d.DamagedRanges.Select(r => $"[{r.Start}, {r.End})"))}, intact records {d.RecordsKept}, dropped from broken batches {d.RecordsDropped}");
            }
            Console.WriteLine($"{Path.GetFileName(dir)}: {report.SegmentsChecked} segments checked, {report.Damaged.Count} damaged{(repair && report.Damaged.Count > 0 ? " (rewritten)" : "")}");
            clean &= report.Clean;
        }
        Console.WriteLine($"{(repair ? "repair" : "verify")}: {partitions.Count} partitions in '{root}'");
        return clean || repair ? 0 : 1;
    }

    private static void PrintStats(StoreStats stats)
    {
        foreach (var p in stats.Partitions)
        {
            Console.WriteLine($"p-{p.Partition:D3}: {p.Keys:N0} keys, {p.Segments} segments, {p.TotalBytes:N0} bytes ({p.StaleBytes:N0} stale), " +
                              $"{p.Puts:N0} puts, {p.Gets:N0} gets, {p.Fsyncs:N0} fsyncs, cache {p.CacheHits:N0}/{p.CacheHits + p.CacheMisses:N0} hits, " +
                              $"{p.Compactions} compactions{(p.ReadOnly ? $", READ-ONLY: {p.FailureReason}" : "")}");
        }
    }

    private static async Task<int> Demo(CrabKvClient client, CrabKvSettings settings, int keys)
    {
        var before = await client.GetStatsAsync();
        Console.WriteLine($"CrabKv node demo in '{Path.GetFullPath(settings.DataDir)}': {settings.Partitions} partitions, {before.Keys:N0} keys recovered; {keys:N0} keys, 64 concurrent writers.");
        var value = new byte[100];
        var sw = Stopwatch.StartNew();
        var bar = new ConsoleProgress("put (fsync, group commit)");
        var done = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, keys), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) =>
        {
            await client.PutAsync($"key:{i:D8}", value, cancellationToken: ct);
            var n = Interlocked.Increment(ref done);
            if ((n & 0x3FFF) == 0)
            {
                bar.Report(new MergeProgress(n, keys));
            }
        });
        var stats = await client.GetStatsAsync();
        bar.Done($"{keys / sw.Elapsed.TotalSeconds:N0} puts/s, {(double)(stats.Fsyncs - before.Fsyncs) / keys:F3} fsyncs per put");

        sw.Restart();
        var hits = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, keys), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) =>
        {
            if (await client.GetAsync($"key:{(i * 7919L) % keys:D8}", cancellationToken: ct) is not null)
            {
                Interlocked.Increment(ref hits);
            }
        });
        Console.WriteLine($"get: {hits:N0}/{keys:N0} hits, {keys / sw.Elapsed.TotalSeconds:N0} gets/s");

        sw.Restart();
        var deleted = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, keys / 2), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) =>
        {
            if (await client.DeleteAsync($"key:{i:D8}", cancellationToken: ct))
            {
                Interlocked.Increment(ref deleted);
            }
        });
        Console.WriteLine($"deleted {deleted:N0} keys in {sw.Elapsed.TotalMilliseconds:N0} ms");

        var compacted = await client.CompactAsync(TimeSpan.FromHours(1));
        Console.WriteLine($"compaction: {compacted.SegmentsMerged} segments, {compacted.BytesBefore:N0} → {compacted.BytesAfter:N0} bytes in {compacted.Duration.TotalMilliseconds:N0} ms");
        PrintStats(await client.GetStatsAsync());
        Console.WriteLine("Stopping gracefully. Run `crabkv demo` again to see the node recover from its hint files.");
        return 0;
    }
}

/// <summary>A one-line console progress bar (a final line only when output is redirected).</summary>
internal sealed class ConsoleProgress(string label) : IProgress<MergeProgress>
{
    private int _lastPercent = -1;

    public void Report(MergeProgress value)
    {
        var percent = (int)(value.Fraction * 100);
        if (percent == _lastPercent || Console.IsOutputRedirected)
        {
            return;
        }
        _lastPercent = percent;
        var filled = percent / 5;
        Console.Write($"\r{label,-28} [{new string('#', filled)}{new string('.', 20 - filled)}] {percent,3}%");
    }

    public void Done(string summary)
    {
        if (!Console.IsOutputRedirected)
        {
            Console.Write($"\r{label,-28} [{new string('#', 20)}] 100%");
            Console.WriteLine($"  {summary}");
            return;
        }
        Console.WriteLine($"{label}: {summary}");
    }
}
