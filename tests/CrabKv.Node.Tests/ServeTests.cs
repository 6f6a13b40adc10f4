using CrabKv.Storage;
using Xunit;

namespace CrabKv.Node.Tests;

/// <summary>
/// <c>crabkv serve</c> as a process, for the defects a new user found: two nodes on one data
/// directory, and a node that serves nothing saying it serves.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class ServeTests
{
    private static readonly TimeSpan Timeout = TestNode.Patience;

    [Fact]
    public async Task Two_nodes_started_at_once_on_one_fresh_directory_exactly_one_serves()
    {
        // Observed before: in 3 of 10 trials both printed "serving", each holding some partitions.
        for (var round = 0; round < 2; round++)
        {
            using var dir = new TempDir();
            var data = dir.Combine("data"); // fresh: does not exist yet
            var config = TestNode.WriteConfig(dir, 4);
            using var a = TestNode.Start(config, data, CrabKvProcess.FreePort());
            using var b = TestNode.Start(config, data, CrabKvProcess.FreePort());
            var outcomes = await Task.WhenAll(a.Process.ServingOrExitAsync(Timeout), b.Process.ServingOrExitAsync(Timeout));

            Assert.True(outcomes.Count(o => o == CrabKvProcess.Outcome.Serving) == 1,
                $"round {round}: expected exactly one node serving, got {outcomes[0]} and {outcomes[1]}.\nA: {a.Process.Stdout}\n{a.Process.Stderr}\nB: {b.Process.Stdout}\n{b.Process.Stderr}");
            var (winner, loser) = outcomes[0] == CrabKvProcess.Outcome.Serving ? (a, b) : (b, a);
            Assert.Equal(2, loser.Process.ExitCode);
            Assert.DoesNotContain("ready", loser.Process.Stdout);
            Assert.Contains("is in use by another process", loser.Process.Stderr);
            Assert.Contains($"pid {winner.Process.Id} on {Environment.MachineName} since ", loser.Process.Stderr);

            Assert.Equal(0, await winner.StopAsync());
            Assert.Contains("crabkv node stopped", winner.Process.Stdout);
            Assert.Equal("4", File.ReadAllText(Path.Combine(data, DataDirectory.PartitionsFileName)).Trim());
        }
    }

    [Fact]
    public async Task A_second_node_on_a_served_directory_is_refused_before_it_starts_anything()
    {
        using var dir = new TempDir();
        var data = dir.Combine("data");
        var config = TestNode.WriteConfig(dir, 2);
        using var serving = await TestNode.StartReadyAsync(config, data, CrabKvProcess.FreePort());
        await serving.OkAsync("put", "k", "v");

        var second = await CrabKvProcess.RunAsync(Timeout, "serve", "--config", config, "--data-dir", data, "--port", "0");
        Assert.True(second.ExitCode == 2, second.ToString());
        Assert.Empty(second.StdoutBytes);
        Assert.Contains($"is in use by another process or store instance (its LOCK file is held by pid {serving.Process.Id}", second.Stderr);
        // Refused before the actor system started: no remoting, no cluster, nothing to shut down.
        Assert.DoesNotContain("remoting", second.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Cluster Node", second.Stderr);

        Assert.Equal("v", (await serving.OkAsync("get", "k")).Stdout); // the serving node is unharmed
        Assert.Equal(0, await serving.StopAsync());
        Assert.DoesNotContain("warning", serving.Process.Stderr); // crabkv.partitions is not set: nothing to warn about

        // crabkv.partitions set for a node: said once, and the node serves the cluster's count.
        File.AppendAllText(config, "\ncrabkv.partitions = 3\n");
        using var warned = await TestNode.StartReadyAsync(config, data, CrabKvProcess.FreePort());
        Assert.Contains("warning: crabkv.partitions = 3 is not used by a node; the cluster has crabkv.cluster.partitions = 2", warned.Process.Stderr);
        Assert.Contains("partitions held here: 2 of 2", warned.Process.Stdout);
        Assert.Equal(0, await warned.StopAsync());
    }

    [Fact]
    public async Task A_second_node_on_a_port_in_use_does_not_start_and_clients_reach_the_first()
    {
        // Observed before: both bound the port (SO_REUSEPORT) and the kernel split the clients
        // between them: a get found its key on one node and missed it on the other.
        using var dir = new TempDir();
        var config = TestNode.WriteConfig(dir, 2);
        using var first = await TestNode.StartReadyAsync(config, dir.Combine("first"), CrabKvProcess.FreePort());
        await first.OkAsync("put", "where", "first");

        var second = await CrabKvProcess.RunAsync(Timeout, "serve", "--config", config, "--data-dir", dir.Combine("second"), "--port", first.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(second.ExitCode == 2, second.ToString());
        Assert.Contains($"crabkv serve: cannot listen on 127.0.0.1:{first.Port}", second.Stderr);
        Assert.DoesNotContain("ready", second.Stdout);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("first", (await first.OkAsync("get", "where")).Stdout);
        }
        Assert.Equal(0, await first.StopAsync());
    }

    [Theory]
    [InlineData(new[] { 0, 1 })] // every partition
    [InlineData(new[] { 1 })]    // any partition
    public async Task A_node_whose_partitions_cannot_open_does_not_start(int[] broken)
    {
        // Observed before: "serving", running, and exit code 0 on SIGTERM, with no partition open.
        using var dir = new TempDir();
        var data = dir.Combine("data");
        File.WriteAllText(Path.Combine(Directory.CreateDirectory(data).FullName, DataDirectory.PartitionsFileName), "2\n");
        foreach (var p in broken)
        {
            // Files named like segments that are not: the first is sealed, in a non-last position.
            var partition = Directory.CreateDirectory(DataDirectory.PartitionDirectory(data, p)).FullName;
            var garbage = string.Concat(Enumerable.Repeat("this is not a crabkv segment. ", 10));
            File.WriteAllText(Path.Combine(partition, "seg-00000001-000000.data"), garbage);
            File.WriteAllText(Path.Combine(partition, "seg-00000002-000000.data"), garbage);
        }

        using var node = TestNode.Start(TestNode.WriteConfig(dir, 2), data, CrabKvProcess.FreePort());
        var outcome = await node.Process.ServingOrExitAsync(Timeout);
        if (outcome == CrabKvProcess.Outcome.Serving)
        {
            await node.StopAsync();
        }

        Assert.True(outcome == CrabKvProcess.Outcome.Exited, $"the node said it serves:\n{node.Process.Stdout}\n{node.Process.Stderr}");
        Assert.Equal(2, node.Process.ExitCode);
        Assert.DoesNotContain("ready", node.Process.Stdout);
        Assert.Contains("not a CrabKv segment", node.Process.Stderr);
        // A clean stop: the locks are free again, so verify can take each partition's LOCK.
        var verify = await CrabKvProcess.RunAsync(Timeout, "verify", "--data-dir", data);
        Assert.True(verify.ExitCode == 1, verify.ToString()); // 1: damage found
        Assert.Contains("not a segment", verify.Stdout);
    }
}
