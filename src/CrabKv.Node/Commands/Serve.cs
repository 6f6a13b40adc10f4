using System.Diagnostics;
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Cluster;
using CrabKv.Node.Cli;
using CrabKv.Node.Hosting;
using CrabKv.Storage;
using Microsoft.Extensions.Logging;

namespace CrabKv.Node.Commands;

/// <summary>
/// <c>crabkv serve</c>: a node, i.e. a member of an Akka cluster (one node by default, joining
/// itself) hosting CrabKv partitions as Cluster.Sharding entities; the store endpoint is
/// <c>/user/crabkv</c> of the actor system <c>crabkv</c>. Runs until Ctrl-C or SIGTERM, which
/// run CoordinatedShutdown: the node leaves the cluster, its partitions are handed off through
/// their graceful stop (write-back flushed, fsynced, sealed) and the data directory is released.
/// </summary>
public static class Serve
{
    /// <summary>Longest wait for the node to become ready (recovery of big partitions, a cluster forming).</summary>
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromMinutes(30);

    /// <summary>How often a node that is still starting says on stdout what it waits for.</summary>
    private static readonly TimeSpan WaitNoteInterval = TimeSpan.FromSeconds(10);

    /// <summary>The line a script waits for: the node answers requests from here on.</summary>
    public const string ReadyLine = "crabkv node ready";

    /// <summary>
    /// A data directory another process holds is refused before the actor system starts: the
    /// refusal is then the only thing a second node prints. Only a probe (taken and released at
    /// once): the node takes the lock for good when it opens the directory, and a node that wins
    /// a race in between is refused there, as before.
    /// </summary>
    private static void RefuseIfLocked(string dataDir, CrabKv.Storage.Files.FileLayer files)
    {
        if (!Directory.Exists(dataDir))
        {
            return; // nobody holds a directory that does not exist; the node creates it
        }
        try
        {
            using var probe = CrabKv.Storage.DirectoryLock.Acquire(files, dataDir);
        }
        catch (CrabKv.Storage.StoreLockedException e)
        {
            throw new CliException(ExitCodes.Error, e.Message);
        }
    }

    /// <summary>
    /// A directory the demo had (its DEMO file) is a node's once a node serves it: the file goes,
    /// so the demo refuses the directory from now on instead of overwriting the node's keys.
    /// </summary>
    private static void ForgetDemo(string dataDir)
    {
        var marker = Path.Combine(dataDir, Demo.MarkerFile);
        if (File.Exists(marker))
        {
            File.Delete(marker);
            Console.WriteLine($"'{dataDir}' was the demo's directory; it is a node's now ({Demo.MarkerFile} removed: `crabkv demo` refuses it from now on)");
        }
    }

    /// <summary>Runs the node; returns the exit code.</summary>
    public static async Task<int> RunAsync(ServeOptions options)
    {
        var clock = Stopwatch.StartNew();
        var config = NodeConfig.ForServe(options);
        // Validated before anything starts, so a bad key fails with its name and nothing half-started.
        var storeSettings = CrabKvSettings.Create(config);
        var clusterSettings = CrabKvClusterSettings.Create(config);
        _ = CrabKv.Actors.Transfer.TransferSettings.Create(config); // read when partitions move: refused now, not then
        var dataDir = Path.GetFullPath(storeSettings.DataDir);
        if (File.Exists(dataDir))
        {
            throw new CliException(ExitCodes.Error, $"data directory '{dataDir}' is a file, not a directory");
        }
        for (var parent = Path.GetDirectoryName(dataDir); parent is not null; parent = Path.GetDirectoryName(parent))
        {
            if (File.Exists(parent))
            {
                throw new CliException(ExitCodes.Error, $"data directory '{dataDir}' cannot be created: '{parent}' is a file");
            }
        }
        RefuseIfLocked(dataDir, storeSettings.Files);
        // The key as configured: the settings resolve its default 0 to the core count.
        var localPartitions = config.GetInt("crabkv.partitions", 0);
        if (localPartitions != 0 && localPartitions != clusterSettings.Partitions)
        {
            // Documented, but easy to miss: a node's partitions are the cluster's.
            Console.Error.WriteLine($"crabkv serve: warning: crabkv.partitions = {localPartitions} is not used by a node; " +
                $"the cluster has crabkv.cluster.partitions = {clusterSettings.Partitions} partitions (set that one instead)");
        }

        ActorSystem system;
        try
        {
            // Client commands connect and disconnect all the time: their comings and goings are not logged.
            system = StderrLogging.CreateSystem(NodeNames.SystemName, config, LogLevel.Information,
                drop: m => m.Contains($"{NodeNames.ClientSystemName}@", StringComparison.Ordinal));
        }
        catch (Exception e) when (e is not CliException)
        {
            var host = config.GetString("akka.remote.dot-netty.tcp.hostname");
            var port = config.GetInt("akka.remote.dot-netty.tcp.port");
            var cause = Innermost(e).Message;
            var hint = cause.Contains("in use", StringComparison.OrdinalIgnoreCase) ? " (another node on this port? use --port)"
                : cause.Contains("Name or service not known", StringComparison.Ordinal) || cause.Contains("assign requested address", StringComparison.OrdinalIgnoreCase)
                    ? " (not an address of this machine: check --host)" : "";
            throw new CliException(ExitCodes.Error, $"cannot listen on {host}:{port}: {cause}{hint}");
        }

        var stopRequested = false;
        void Stop()
        {
            stopRequested = true;
            _ = CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
        }
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            Stop();
        };
        Console.CancelKeyPress += onCancel;
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            Stop();
        });
        try
        {
            // Takes the lock of the whole data directory first: a second node on it is refused here.
            var node = CrabKvCluster.Start(system, storeSettings, clusterSettings, NodeNames.EndpointName);
            var cluster = Akka.Cluster.Cluster.Get(system);
            var seeds = system.Settings.Config.GetStringList("akka.cluster.seed-nodes");
            if (seeds.Count == 0)
            {
                cluster.Join(cluster.SelfAddress); // no seed: a cluster of its own
            }
            Console.WriteLine($"crabkv node {cluster.SelfAddress} (data dir {dataDir}, {clusterSettings.Partitions} partitions in the cluster)");
            Console.WriteLine(seeds.Count == 0 ? "joining itself: a one-node cluster" : $"joining the cluster through {string.Join(", ", seeds)}");

            var failure = await WaitReadyAsync(system, node, clusterSettings);
            if (failure is not null)
            {
                Console.Error.WriteLine($"crabkv serve: {failure}");
                await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
                // A full disk is not damage: verify and repair would only send the user round.
                var advice = failure.Contains("No space left on device", StringComparison.Ordinal)
                    ? $" The disk of '{dataDir}' is full ({CrabKvSettings.FreeBytesAt(dataDir) / (1 << 20)} MiB free): free space and start it again."
                    : failure.Contains("failed to open", StringComparison.Ordinal) ? " See `crabkv verify` and `crabkv repair`." : "";
                Console.Error.WriteLine($"crabkv serve: the node did not start (stopped cleanly).{advice}");
                return ExitCodes.Error;
            }
            if (stopRequested || system.WhenTerminated.IsCompleted || node.Ready.IsFaulted)
            {
                await system.WhenTerminated;
                Console.WriteLine("crabkv node stopped before it was ready.");
                return stopRequested || CoordinatedShutdown.Get(system).ShutdownReason is CoordinatedShutdown.ClrExitReason ? ExitCodes.Ok : ExitCodes.Error;
            }
            var region = await node.Ready;
            ForgetDemo(dataDir);
            var (held, keys, recovery) = await HeldAsync(system, node, region);
            var members = cluster.State.Members.Count(m => m.Status == Akka.Cluster.MemberStatus.Up);
            Console.WriteLine($"partitions held here: {held} of {clusterSettings.Partitions} ({members} node{(members == 1 ? "" : "s")} up), {keys:N0} key{(keys == 1 ? "" : "s")} in the cluster, ready in {Durations.Format(clock.Elapsed)}");
            if (recovery is not null)
            {
                Console.WriteLine(recovery);
            }
            Console.WriteLine($"{ReadyLine}: serving at {cluster.SelfAddress}/user/{NodeNames.EndpointName}; Ctrl-C or SIGTERM stops it gracefully");

            await system.WhenTerminated;
            // A SIGTERM may also reach Akka's own CLR-exit hook first: the same graceful stop.
            var reason = CoordinatedShutdown.Get(system).ShutdownReason;
            if (!stopRequested && reason is not CoordinatedShutdown.ClrExitReason)
            {
                Console.Error.WriteLine($"crabkv serve: the node was stopped by the cluster ({reason?.GetType().Name ?? "unknown reason"}: downed, or its partition count differs from the cluster's); see the log above");
                return ExitCodes.Error;
            }
            Console.WriteLine("crabkv node stopped: left the cluster; partitions handed off or flushed, fsynced and sealed.");
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is CrabKvConfigurationException or CrabKvException)
        {
            var advice = e is NotASegmentException
                ? " `crabkv verify` lists every such file; `crabkv repair` moves aside (renames, keeps) those that hold no CrabKv data."
                : "";
            throw new CliException(ExitCodes.Error, e.Message + advice);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            // On every early exit (refused lock, failed partitions, timeout) the node stops gracefully.
            await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
            await system.WhenTerminated;
        }
    }

    /// <summary>
    /// Waits until every partition of the cluster answers GetStats (partitions answer only once
    /// they have opened or failed to) and checks those held here; null when ready (or stopping),
    /// otherwise why the node cannot serve.
    /// </summary>
    private static async Task<string?> WaitReadyAsync(ActorSystem system, CrabKvClusterNode node, CrabKvClusterSettings settings)
    {
        var deadline = DateTime.UtcNow + ReadyTimeout;
        var started = DateTime.UtcNow;
        var nextNote = started + WaitNoteInterval;
        // What a long wait waits for, on stdout every WaitNoteInterval: silence looked like a hang.
        void NoteWait(string what)
        {
            if (DateTime.UtcNow >= nextNote)
            {
                Console.WriteLine($"still starting ({Durations.Format(DateTime.UtcNow - started)}): {what}");
                nextNote = DateTime.UtcNow + WaitNoteInterval;
            }
        }
        string ClusterWait()
        {
            var cluster = Akka.Cluster.Cluster.Get(system);
            var up = cluster.State.Members.Count(m => m.Status == Akka.Cluster.MemberStatus.Up);
            var minimum = system.Settings.Config.GetInt("akka.cluster.min-nr-of-members", 1);
            return up == 0
                ? "not in a cluster yet (joining through its seed nodes: are they running and reachable?)"
                : $"{up} cluster member{(up == 1 ? "" : "s")} up; the cluster serves once akka.cluster.min-nr-of-members = {minimum} are";
        }
        Task ready;
        while (true)
        {
            ready = await Task.WhenAny(node.Ready, system.WhenTerminated, Task.Delay(WaitNoteInterval));
            if (ready == node.Ready || ready == system.WhenTerminated)
            {
                break;
            }
            NoteWait(ClusterWait());
        }
        if (ready != node.Ready)
        {
            return null; // stopping
        }
        if (node.Ready.IsFaulted)
        {
            // Stopped by Ctrl-C or SIGTERM while starting (e.g. waiting for an unreachable seed): not a failure.
            return CoordinatedShutdown.Get(system).ShutdownReason is CoordinatedShutdown.ClrExitReason
                ? null
                : node.Ready.Exception!.InnerException!.Message;
        }
        var region = node.Ready.Result;
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        while (!system.WhenTerminated.IsCompleted)
        {
            if (DateTime.UtcNow > deadline)
            {
                return $"not every partition answered within {ReadyTimeout}";
            }
            object? reply;
            try
            {
                // A stop during the wait ends it: a pending Ask outlives the actor system until its timeout.
                reply = await UnlessStopped(system, node.Endpoint.Ask<object>(new GetStats(), settings.FanOutTimeout + TimeSpan.FromSeconds(5)));
            }
            catch (Exception e) when (e is TimeoutException or AskTimeoutException or TaskCanceledException)
            {
                await UnlessStopped(system, poll.WaitForNextTickAsync().AsTask());
                continue;
            }
            // Every partition answered itself (one still waiting for its holder is not ready yet).
            if (reply is StoreStats waiting && waiting.Partitions.Where(p => p.Unavailable).ToList() is { Count: > 0 } away)
            {
                NoteWait($"{settings.Partitions - away.Count} of {settings.Partitions} partitions answer; waiting for {away.Count}, e.g. partition {away[0].Partition}: {away[0].FailureReason}");
            }
            else if (reply is not StoreStats)
            {
                NoteWait(ClusterWait());
            }
            if (reply is StoreStats stats && stats.Partitions.Count == settings.Partitions && !stats.Partitions.Any(p => p.Unavailable))
            {
                var held = await HeldShardsAsync(system, region);
                var failures = stats.Partitions
                    .Where(p => p.ReadOnly && held.Contains(p.Partition))
                    .Select(p => $"partition {DataDirectory.PartitionDirectoryName(p.Partition)} failed to open: {p.FailureReason}")
                    .ToList();
                if (failures.Count > 0)
                {
                    return string.Join(Environment.NewLine + "crabkv serve: ", failures) +
                           $"{Environment.NewLine}crabkv serve: {failures.Count} of {settings.Partitions} partitions could not open";
                }
                return null;
            }
            await UnlessStopped(system, poll.WaitForNextTickAsync().AsTask());
        }
        return null;
    }

    /// <summary>
    /// The result of <paramref name="wait"/>, or default once the actor system has terminated
    /// (a stop requested while the node starts): an Ask pending then would only end at its timeout.
    /// </summary>
    private static async Task<T?> UnlessStopped<T>(ActorSystem system, Task<T> wait)
    {
        var first = await Task.WhenAny(wait, system.WhenTerminated);
        return first == wait ? await wait : default;
    }

    private static async Task<HashSet<int>> HeldShardsAsync(ActorSystem system, IActorRef region)
    {
        try
        {
            var state = await UnlessStopped(system, region.Ask<CurrentShardRegionState>(GetShardRegionState.Instance, TimeSpan.FromSeconds(20)));
            return state is null ? [] : state.Shards.Select(s => int.TryParse(s.ShardId, out var p) ? p : -1).Where(p => p >= 0).ToHashSet();
        }
        catch (Exception e) when (e is TimeoutException or AskTimeoutException)
        {
            return [];
        }
    }

    private static async Task<(int Held, long Keys, string? Recovery)> HeldAsync(ActorSystem system, CrabKvClusterNode node, IActorRef region)
    {
        var heldShards = await HeldShardsAsync(system, region);
        try
        {
            var stats = await UnlessStopped(system, node.Endpoint.Ask<object>(new GetStats(), node.Settings.FanOutTimeout + TimeSpan.FromSeconds(5)));
            return stats is StoreStats s ? (heldShards.Count, s.Keys, RecoveryLine(s, heldShards)) : (heldShards.Count, 0, null);
        }
        catch (Exception e) when (e is TimeoutException or AskTimeoutException or TaskCanceledException)
        {
            return (heldShards.Count, 0, null); // the summary line only; the node serves
        }
    }

    /// <summary>How the partitions held here opened: "recovered 64 partitions: 60 from hint files, 3 scanned, 1 empty; slowest 12 ms".</summary>
    private static string? RecoveryLine(StoreStats stats, HashSet<int> held)
    {
        var mine = stats.Partitions.Where(p => held.Contains(p.Partition)).ToList();
        if (mine.Count == 0)
        {
            return null;
        }
        var modes = mine.GroupBy(p => p.RecoveryMode)
            .OrderBy(g => g.Key)
            .Select(g => g.Key switch
            {
                RecoveryMode.Hints => $"{g.Count()} from hint files",
                RecoveryMode.Scan => $"{g.Count()} by scanning their segments",
                RecoveryMode.Mixed => $"{g.Count()} from hints and a scan of newer segments",
                _ => $"{g.Count()} empty",
            });
        var slowest = mine.Max(p => p.RecoveryDuration);
        return $"recovered {mine.Count} partitions: {string.Join(", ", modes)}; slowest {Durations.Format(slowest)}, {mine.Sum(p => p.SegmentsFromHints + p.SegmentsScanned)} segments";
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null)
        {
            e = e.InnerException;
        }
        return e;
    }
}
