using System.Text.Json;
using Xunit;

namespace CrabKv.Node.Tests;

/// <summary>
/// A <c>crabkv serve</c> child process on 127.0.0.1 at a port from the OS, with the helpers the
/// process-level tests share: the client commands against it, a bounded wait for a condition.
/// </summary>
public sealed class TestNode : IDisposable
{
    /// <summary>Generous: a node (or three) starts an actor system on a shared 2-core machine.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    /// <summary>A client command's bound.</summary>
    public static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    private TestNode(CrabKvProcess process, int port)
    {
        Process = process;
        Port = port;
    }

    public CrabKvProcess Process { get; }

    public int Port { get; }

    /// <summary>The value of <c>--node</c> for this node.</summary>
    public string Address => $"127.0.0.1:{Port}";

    /// <summary>A node configuration for tests: few partitions (fast start), small files.</summary>
    public static string WriteConfig(TempDir dir, int partitions, int minMembers = 1, string name = "node.conf")
    {
        var path = dir.Combine(name);
        File.WriteAllText(path, $"""
            crabkv.cluster.partitions = {partitions}
            akka.cluster.min-nr-of-members = {minMembers}
            crabkv.segment.max-bytes = 1 MiB
            crabkv.segment.preallocate = 3 MiB
            crabkv.cache.max-bytes = 1 MiB
            crabkv.write-back.max-dirty-bytes = 1 MiB
            crabkv.io-dispatcher-config.dedicated-thread-pool.thread-count = 2
            crabkv.compaction-dispatcher-config.dedicated-thread-pool.thread-count = 1
            """);
        return path;
    }

    /// <summary>Starts <c>serve</c> (not waiting).</summary>
    public static TestNode Start(string config, string dataDir, int port, params string[] extra) =>
        new(CrabKvProcess.Start(["serve", "--config", config, "--data-dir", dataDir, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), .. extra]), port);

    /// <summary>Waits (bounded) for the ready line; fails with the node's output if it exits instead.</summary>
    public async Task ReadyAsync()
    {
        var outcome = await Process.ServingOrExitAsync(Patience);
        Assert.True(outcome == CrabKvProcess.Outcome.Serving, $"the node on port {Port} exited instead of serving:\n{Process.Stdout}\n{Process.Stderr}");
    }

    /// <summary>Starts <c>serve</c> and waits until it is ready.</summary>
    public static async Task<TestNode> StartReadyAsync(string config, string dataDir, int port, params string[] extra)
    {
        var node = Start(config, dataDir, port, extra);
        await node.ReadyAsync();
        return node;
    }

    /// <summary>Runs a client command against this node.</summary>
    public Task<CrabKvProcess.Completed> RunAsync(params string[] args) =>
        CrabKvProcess.RunAsync(CommandTimeout, [.. args, "--node", Address, "--timeout", "30s"]);

    /// <summary><see cref="RunAsync"/> with <paramref name="stdin"/> on the command's standard input.</summary>
    public Task<CrabKvProcess.Completed> RunWithInputAsync(byte[] stdin, params string[] args) =>
        CrabKvProcess.RunAsync(CommandTimeout, stdin, [.. args, "--node", Address, "--timeout", "30s"]);

    /// <summary>Runs a client command that must succeed; returns its result.</summary>
    public async Task<CrabKvProcess.Completed> OkAsync(params string[] args)
    {
        var r = await RunAsync(args);
        Assert.True(r.ExitCode == 0, $"crabkv {string.Join(' ', args)} --node {Address}: {r}");
        return r;
    }

    /// <summary>The keys of the cluster according to <c>stats --json</c>.</summary>
    public async Task<long> KeysAsync()
    {
        var r = await OkAsync("stats", "--json");
        using var json = JsonDocument.Parse(r.StdoutBytes);
        foreach (var p in json.RootElement.GetProperty("partitions").EnumerateArray())
        {
            // Names, as the README documents them, not enum numbers or internal fields.
            Assert.Contains(p.GetProperty("recoveryMode").GetString(), new[] { "none", "hints", "scan", "mixed" });
            Assert.Matches("^seg-[0-9]{8}-[0-9]{6}\\.data$", p.GetProperty("activeSegment").GetString());
        }
        return json.RootElement.GetProperty("keys").GetInt64();
    }

    /// <summary>SIGTERM and a bounded wait for the exit code.</summary>
    public async Task<int> StopAsync()
    {
        Process.Terminate();
        return await Process.ExitAsync(Patience);
    }

    /// <summary>
    /// A bounded poll: checks <paramref name="condition"/> every 500 ms until it holds or
    /// <see cref="Patience"/> ends (then fails naming <paramref name="what"/> and the last value seen).
    /// </summary>
    public static async Task WaitUntilAsync(Func<Task<(bool Done, string Seen)>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        var seen = "";
        using var poll = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
        while (DateTime.UtcNow < deadline)
        {
            (var done, seen) = await condition();
            if (done)
            {
                return;
            }
            await poll.WaitForNextTickAsync();
        }
        Assert.Fail($"waited {Patience} for {what}; last seen: {seen}");
    }

    public void Dispose() => Process.Dispose();
}

/// <summary>The tests that run nodes share two cores: they run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class NodeCollection
{
    public const string Name = "nodes";
}
