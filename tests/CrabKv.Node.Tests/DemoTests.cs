using Xunit;

namespace CrabKv.Node.Tests;

/// <summary>
/// <c>crabkv demo</c> (also <c>crabkv</c> alone) overwrites keys <c>key:…</c> and deletes half of
/// them: it has a directory of its own by default and refuses any directory holding data it did
/// not write.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class DemoTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task The_demo_runs_in_its_own_default_directory_and_recovers_it_on_the_next_run()
    {
        using var dir = new TempDir();

        var first = await CrabKvProcess.RunInAsync(dir.Path, Timeout, "demo", "--keys", "300");
        var second = await CrabKvProcess.RunInAsync(dir.Path, Timeout, "demo", "--keys", "300");

        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.True(File.Exists(dir.Combine("crabkv-demo", "DEMO")));
        Assert.False(Directory.Exists(dir.Combine("crabkv-data")), "the demo must not use a node's default directory");
        Assert.Contains(", 0 keys recovered", first.Stdout);
        Assert.Contains(", 150 keys recovered", second.Stdout); // 300 put, half deleted
    }

    [Fact]
    public async Task The_demo_refuses_a_directory_with_data_it_did_not_write_and_changes_nothing()
    {
        using var dir = new TempDir();
        var data = await DemoDirectoryAsync(dir.Combine("node-data"));
        File.Delete(Path.Combine(data, "DEMO")); // now a store's data that the demo did not write
        var before = Snapshot(data);

        var refused = await CrabKvProcess.RunAsync(Timeout, "demo", "--keys", "300", "--data-dir", data);

        Assert.True(refused.ExitCode == 2, refused.ToString());
        Assert.Contains("holds data the demo did not write", refused.Stderr);
        Assert.Contains("Nothing was changed", refused.Stderr);
        Assert.Equal(before, Snapshot(data));
    }

    [Fact]
    public async Task A_demo_directory_that_a_node_has_served_is_the_nodes_and_the_demo_refuses_it()
    {
        using var dir = new TempDir();
        var data = await DemoDirectoryAsync(dir.Combine("d"));
        var partitions = int.Parse(File.ReadAllText(Path.Combine(data, "PARTITIONS")).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        using (var node = await TestNode.StartReadyAsync(TestNode.WriteConfig(dir, partitions), data, CrabKvProcess.FreePort()))
        {
            Assert.Contains("was the demo's directory", node.Process.Stdout);
            await node.OkAsync("put", "key:00000299", "the node's value");
            Assert.Equal(0, await node.StopAsync());
        }
        Assert.False(File.Exists(Path.Combine(data, "DEMO")));
        var before = Snapshot(data);

        var refused = await CrabKvProcess.RunAsync(Timeout, "demo", "--keys", "300", "--data-dir", data);

        Assert.True(refused.ExitCode == 2, refused.ToString());
        Assert.Equal(before, Snapshot(data));
    }

    /// <summary>A data directory written by a demo of 300 keys (<paramref name="extra"/>: more demo arguments); returns it.</summary>
    internal static async Task<string> DemoDirectoryAsync(string data, params string[] extra)
    {
        var made = await CrabKvProcess.RunAsync(Timeout, ["demo", "--keys", "300", "--data-dir", data, .. extra]);
        Assert.True(made.ExitCode == 0, made.ToString());
        return data;
    }

    /// <summary>Every file under <paramref name="root"/> with its bytes, by relative path.</summary>
    private static SortedDictionary<string, string> Snapshot(string root) =>
        new(Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f), f => Convert.ToHexString(File.ReadAllBytes(f))), StringComparer.Ordinal);
}
