using System.Diagnostics;
using Akka.Actor;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Node.Cli;
using CrabKv.Node.Hosting;
using CrabKv.Node.Output;
using Microsoft.Extensions.Logging;

namespace CrabKv.Node.Commands;

/// <summary>
/// <c>crabkv demo</c> (and <c>crabkv</c> with no arguments): the main job. Starts a store in this
/// process on the data directory, 64 concurrent writers put N keys with the configured
/// durability, read them, delete half, compact, print per-partition stats and stop gracefully;
/// every phase shows its progress on stderr, its result on stdout.
/// </summary>
public static class Demo
{
    private const int Writers = 64;

    /// <summary>The demo's data directory when neither <c>--data-dir</c> nor the config file names one: not a node's <c>./crabkv-data</c>.</summary>
    public const string DefaultDataDir = "crabkv-demo";

    /// <summary>The file that marks a directory as the demo's own (written on its first run there).</summary>
    public const string MarkerFile = "DEMO";

    /// <summary>Runs the demo.</summary>
    public static async Task<int> RunAsync(string? configFile, string? dataDir, int keys)
    {
        var configNamesDir = configFile is not null && NodeConfig.ReadFile(configFile).HasPath("crabkv.data-dir");
        var config = NodeConfig.ForStore(configFile, dataDir ?? (configNamesDir ? null : DefaultDataDir));
        var settings = CrabKvSettings.Create(config);
        var root = Path.GetFullPath(settings.DataDir);
        if (File.Exists(root))
        {
            throw new CliException(ExitCodes.Error, $"data directory '{root}' is a file, not a directory");
        }
        ClaimDirectory(root);
        using var system = StderrLogging.CreateSystem(NodeNames.SystemName, config, LogLevel.Warning);
        try
        {
            var store = CrabKvStore.Start(system, settings);
            var client = await CrabKvClient.ConnectAsync(store, settings.ClientTimeout);
            return await RunAsync(client, settings, keys);
        }
        finally
        {
            await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
        }
    }

    /// <summary>
    /// The demo overwrites keys <c>key:00000000</c>… and deletes half of them, so it runs only in
    /// a directory that is new, empty or its own (holding <see cref="MarkerFile"/>); a node's
    /// data is refused before anything is opened.
    /// </summary>
    private static void ClaimDirectory(string root)
    {
        var marker = Path.Combine(root, MarkerFile);
        if (Directory.Exists(root) && !File.Exists(marker) && Directory.EnumerateFileSystemEntries(root).Any())
        {
            throw new CliException(ExitCodes.Error,
                $"data directory '{root}' holds data the demo did not write (no {MarkerFile} file): the demo overwrites keys key:00000000… " +
                "and deletes half of them, so it runs only in a new or empty directory or in one of its own. Nothing was changed; " +
                $"name another directory with --data-dir (the default is ./{DefaultDataDir}).");
        }
        Directory.CreateDirectory(root);
        if (!File.Exists(marker))
        {
            File.WriteAllText(marker,
                "This directory belongs to `crabkv demo`: each run overwrites its keys key:00000000… and deletes half of them.\n");
        }
    }

    private static async Task<int> RunAsync(CrabKvClient client, CrabKvSettings settings, int keys)
    {
        var before = await client.GetStatsAsync(TimeSpan.FromMinutes(30)); // waits for recovery
        Consoles.Result($"CrabKv node demo in '{Path.GetFullPath(settings.DataDir)}': {before.Partitions.Count} partitions, {before.Keys:N0} keys recovered; {keys:N0} keys, {Writers} concurrent writers.");
        var value = new byte[100];
        await ProgressDisplay.RunAsync(async progress =>
        {
            var sw = Stopwatch.StartNew();
            var put = progress.Start("put (group commit)", keys);
            await Parallel.ForEachAsync(Enumerable.Range(0, keys), new ParallelOptions { MaxDegreeOfParallelism = Writers }, async (i, ct) =>
            {
                await client.PutAsync($"key:{i:D8}", value, cancellationToken: ct);
                if ((i & 0x3FF) == 0)
                {
                    put.Increment(0x400);
                }
            });
            var stats = await client.GetStatsAsync();
            var putSummary = $"{keys / sw.Elapsed.TotalSeconds:N0} puts/s, {(double)(stats.Fsyncs - before.Fsyncs) / keys:F3} fsyncs per put";
            put.Complete(putSummary);
            Consoles.Result($"put: {keys:N0} keys, {putSummary}");

            sw.Restart();
            var get = progress.Start("get", keys);
            var hits = 0;
            await Parallel.ForEachAsync(Enumerable.Range(0, keys), new ParallelOptions { MaxDegreeOfParallelism = Writers }, async (i, ct) =>
            {
                if (await client.GetAsync($"key:{(i * 7919L) % keys:D8}", cancellationToken: ct) is not null)
                {
                    Interlocked.Increment(ref hits);
                }
                if ((i & 0x3FF) == 0)
                {
                    get.Increment(0x400);
                }
            });
            get.Complete($"{hits:N0} hits");
            Consoles.Result($"get: {hits:N0}/{keys:N0} hits, {keys / sw.Elapsed.TotalSeconds:N0} gets/s");

            sw.Restart();
            var del = progress.Start("delete half", keys / 2);
            var deleted = 0;
            await Parallel.ForEachAsync(Enumerable.Range(0, keys / 2), new ParallelOptions { MaxDegreeOfParallelism = Writers }, async (i, ct) =>
            {
                if (await client.DeleteAsync($"key:{i:D8}", cancellationToken: ct))
                {
                    Interlocked.Increment(ref deleted);
                }
                if ((i & 0x3FF) == 0)
                {
                    del.Increment(0x400);
                }
            });
            del.Complete($"{deleted:N0} deleted");
            Consoles.Result($"delete: {deleted:N0} keys in {sw.Elapsed.TotalMilliseconds:N0} ms");

            var compact = progress.Start("compact", 100);
            var running = client.CompactAsync(TimeSpan.FromHours(1));
            using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
            while (!running.IsCompleted)
            {
                await Task.WhenAny(running, poll.WaitForNextTickAsync().AsTask());
                if (!running.IsCompleted)
                {
                    var s = await client.GetStatsAsync();
                    compact.Set(100 * s.Partitions.Average(p => p.CompactionProgress));
                }
            }
            var compacted = await running;
            compact.Complete($"{compacted.SegmentsMerged} segments");
            Consoles.Result($"compaction: {compacted.SegmentsMerged} segments, {compacted.BytesBefore:N0} → {compacted.BytesAfter:N0} bytes in {compacted.Duration.TotalMilliseconds:N0} ms");
            return 0;
        });
        StatsView.Table(Consoles.Results, null, await client.GetStatsAsync());
        Consoles.Result("Stopping gracefully. Run `crabkv demo` again to see the node recover from its hint files.");
        return ExitCodes.Ok;
    }
}
