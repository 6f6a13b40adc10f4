using Xunit;

namespace CrabKv.Node.Tests;

/// <summary>
/// Three <c>crabkv serve</c> processes on one machine forming one cluster: a load through one
/// node is read through another, and a node stopped with SIGTERM hands its partitions off
/// without losing a key.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class ThreeNodeTests
{
    [Fact]
    public async Task Load_through_one_get_through_another_sigterm_one_nothing_lost()
    {
        using var dir = new TempDir();
        var config = TestNode.WriteConfig(dir, 6, minMembers: 3);
        var ports = Enumerable.Range(0, 3).Select(_ => CrabKvProcess.FreePort()).ToArray();
        var seed = $"127.0.0.1:{ports[0]}";
        var nodes = ports.Select((port, i) => TestNode.Start(config, dir.Combine($"data-{i + 1}"), port, "--seed", seed)).ToList();
        try
        {
            await Task.WhenAll(nodes.Select(n => n.ReadyAsync()));
            foreach (var n in nodes)
            {
                Assert.Contains("(3 nodes up)", n.Process.Stdout);
            }

            var lines = Enumerable.Range(0, 200).Select(i => ($"k{i:D3}", $"value {i}")).ToList();
            var tsv = dir.Combine("load.tsv");
            File.WriteAllLines(tsv, lines.Select(l => $"{l.Item1}\t{l.Item2}"));
            Assert.Contains("loaded 200 lines", (await nodes[0].OkAsync("load", tsv)).Stdout);
            foreach (var i in new[] { 0, 57, 123, 199 })
            {
                var r = await nodes[2].OkAsync("get", lines[i].Item1);
                Assert.True(lines[i].Item2 == r.Stdout, $"get {lines[i].Item1}: expected '{lines[i].Item2}'; {r}");
            }

            Assert.Equal(0, await nodes[1].StopAsync());
            Assert.Contains("crabkv node stopped", nodes[1].Process.Stdout);

            // The partitions node 2 held are pulled by the others: every key is back once they serve.
            await TestNode.WaitUntilAsync(async () =>
            {
                var r = await nodes[0].RunAsync("stats", "--json");
                if (r.ExitCode != 0)
                {
                    return (false, r.Stderr);
                }
                var keys = System.Text.Json.JsonDocument.Parse(r.StdoutBytes).RootElement.GetProperty("keys").GetInt64();
                return (keys == lines.Count, $"{keys} keys");
            }, "all 200 keys after node 2 left");
            foreach (var i in new[] { 1, 42, 100, 150, 198 })
            {
                var r = await nodes[2].OkAsync("get", lines[i].Item1);
                Assert.True(lines[i].Item2 == r.Stdout, $"get {lines[i].Item1}: expected '{lines[i].Item2}'; {r}");
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The nodes' own logs say why (which partition waited for what): keep them with the failure.
            var log = Path.Combine(Path.GetTempPath(), $"crabkv-three-node-{Guid.NewGuid():N}.log");
            File.WriteAllText(log, string.Join("\n\n", nodes.Select((n, i) => $"==== node {i + 1} (port {n.Port}) stdout\n{n.Process.Stdout}\n==== stderr\n{n.Process.Stderr}")));
            throw new Xunit.Sdk.XunitException($"{e.Message}\n(the three nodes' logs: {log})");
        }
        finally
        {
            foreach (var n in nodes)
            {
                n.Dispose();
            }
        }
    }
}
