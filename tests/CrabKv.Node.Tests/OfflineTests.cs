using Xunit;

namespace CrabKv.Node.Tests;

/// <summary>
/// <c>verify</c> and <c>repair</c> as a user runs them on a stopped node's directory, for what
/// used to pass as "clean" and then kept the node from starting or hid keys.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class OfflineTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    private static async Task<string> DataDirWithThreePartitionsAsync(TempDir dir)
    {
        var config = dir.Combine("three.conf");
        File.WriteAllText(config, "crabkv.partitions = 3\n");
        return await DemoTests.DemoDirectoryAsync(dir.Combine("d"), "--config", config);
    }

    [Fact]
    public async Task A_directory_named_like_a_segment_is_reported_by_verify_and_moved_aside_by_repair()
    {
        using var dir = new TempDir();
        var data = await DataDirWithThreePartitionsAsync(dir);
        var stray = Path.Combine(data, "p-001", "seg-00000099-000000.data");
        Directory.CreateDirectory(stray);

        var verify = await CrabKvProcess.RunAsync(Timeout, "verify", "--data-dir", data);
        var repair = await CrabKvProcess.RunAsync(Timeout, "repair", "--data-dir", data);
        var again = await CrabKvProcess.RunAsync(Timeout, "verify", "--data-dir", data);

        Assert.True(verify.ExitCode == 1, verify.ToString());
        Assert.Contains("it is a directory, not a file", verify.Stdout);
        Assert.True(repair.ExitCode == 0, repair.ToString());
        Assert.Contains("moved aside", repair.Stdout);
        Assert.DoesNotContain(": clean", repair.Stdout); // it changed something: it says what
        Assert.True(Directory.Exists(stray + ".not-a-segment"));
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains(": clean", again.Stdout);
    }

    [Fact]
    public async Task Partitions_past_the_recorded_count_fail_verify_and_are_left_alone()
    {
        using var dir = new TempDir();
        var data = await DataDirWithThreePartitionsAsync(dir);
        File.WriteAllText(Path.Combine(data, "PARTITIONS"), "1\n");

        var verify = await CrabKvProcess.RunAsync(Timeout, "verify", "--data-dir", data);
        var repair = await CrabKvProcess.RunAsync(Timeout, "repair", "--data-dir", data);

        Assert.True(verify.ExitCode == 1, verify.ToString());
        Assert.Contains("past them (p-001, p-002)", verify.Stdout);
        Assert.True(repair.ExitCode == 2, repair.ToString()); // the count is the user's to settle
        Assert.Equal("1\n", File.ReadAllText(Path.Combine(data, "PARTITIONS")));
    }
}
