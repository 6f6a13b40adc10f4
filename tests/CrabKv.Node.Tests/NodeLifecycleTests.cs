using System.Text;
using System.Text.RegularExpressions;
using Xunit;

namespace CrabKv.Node.Tests;

/// <summary>
/// One node, end to end as a user runs it: serve, then put/get/load/del through the CLI, a
/// kill -9 (fsync before every acknowledgement, the default), a restart with every
/// acknowledged write present, verify clean after a graceful stop, and verify failing on a
/// flipped byte, naming the file and the offset.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class NodeLifecycleTests
{
    [Fact]
    public async Task Load_streams_a_file_in_chunks_and_a_key_written_many_times_keeps_its_last_value()
    {
        using var dir = new TempDir();
        var config = TestNode.WriteConfig(dir, 4);
        // 6,000 lines over 4 partitions: several 512-entry chunks per partition, and one key
        // that comes back every 7 lines, so its values cross chunk boundaries.
        var tsv = dir.Combine("many.tsv");
        var last = "";
        var lines = new List<string>();
        for (var i = 0; i < 6000; i++)
        {
            if (i % 7 == 0)
            {
                last = $"v{i}";
                lines.Add($"hot\t{last}");
            }
            else
            {
                lines.Add($"k{i:D5}\tvalue {i}");
            }
        }
        File.WriteAllLines(tsv, lines);
        using var node = await TestNode.StartReadyAsync(config, dir.Combine("data"), CrabKvProcess.FreePort());

        var load = await node.OkAsync("load", tsv);

        Assert.Contains("loaded 6,000 lines", load.Stdout);
        Assert.Equal(last, (await node.OkAsync("get", "hot")).Stdout);
        Assert.Equal("value 1", (await node.OkAsync("get", "k00001")).Stdout);
        Assert.Equal("value 5998", (await node.OkAsync("get", "k05998")).Stdout);
        Assert.Equal("v5999", last); // the last line is one of "hot"
        Assert.Equal(1 + 6000 - 858, await node.KeysAsync());
    }

    [Fact]
    public async Task Load_makes_its_batches_fit_the_nodes_segments()
    {
        // A batch is never split across segments. The test nodes roll segments at 1 MiB: 512
        // lines of 3,000-byte values (1.5 MiB) used to be refused whole ("one batch must fit one
        // segment"), and the load wrote nothing.
        using var dir = new TempDir();
        var config = TestNode.WriteConfig(dir, 2);
        var tsv = dir.Combine("wide.tsv");
        File.WriteAllLines(tsv, Enumerable.Range(0, 1500).Select(i => $"w{i:D4}\t" + new string((char)('a' + i % 26), 3000)));
        using var node = await TestNode.StartReadyAsync(config, dir.Combine("data"), CrabKvProcess.FreePort());

        var load = await node.OkAsync("load", tsv);

        Assert.Contains("loaded 1,500 lines", load.Stdout);
        Assert.Equal(1500, await node.KeysAsync());
        Assert.Equal(new string((char)('a' + 1499 % 26), 3000), (await node.OkAsync("get", "w1499")).Stdout);
    }

    [Fact]
    public async Task A_SIGTERM_during_a_load_stops_the_node_at_once_and_the_load_reports_exactly_what_was_written()
    {
        // Before: batches that reached the one node's shard region after its partitions were
        // handed off stayed there until the shutdown phase timed out (75 s), and the load called
        // them "written or not, unknown" (exit 3).
        using var dir = new TempDir();
        var data = dir.Combine("data");
        var config = TestNode.WriteConfig(dir, 4);
        const int Lines = 1_000_000;
        var tsv = dir.Combine("big.tsv");
        File.WriteAllLines(tsv, Enumerable.Range(0, Lines).Select(i => $"k{i:D7}\t" + new string('v', 20)));
        using (var node = await TestNode.StartReadyAsync(config, data, CrabKvProcess.FreePort()))
        {
            // Segments roll every MiB (the test configuration): a few new ones mean the load is writing.
            int Segments() => Directory.EnumerateFiles(data, "seg-*.data", SearchOption.AllDirectories).Count();
            var before = Segments();
            var load = node.RunAsync("load", tsv);
            await TestNode.WaitUntilAsync(() => Task.FromResult((load.IsCompleted || Segments() >= before + 4, $"{Segments()} segments")), "the load's first MiBs");
            if (load.IsCompleted)
            {
                Assert.Fail($"the load ended before the node could be stopped during it: {await load}");
            }

            var clock = System.Diagnostics.Stopwatch.StartNew();
            Assert.Equal(0, await node.StopAsync());
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"the node took {clock.Elapsed} to stop during a load:\n{node.Process.Stderr}");
            Assert.Contains("crabkv node stopped: left the cluster", node.Process.Stdout);

            var result = await load;
            Assert.True(result.ExitCode == 2, $"expected the load to fail with exit 2 (refused, not written): {result}");
            Assert.Contains("the others were not written", result.Stderr);
            Assert.DoesNotContain("unknown", result.Stderr);
            var acknowledged = Regex.Match(result.Stderr, @"([0-9,]+) of 1,000,000 lines acknowledged");
            Assert.True(acknowledged.Success, result.ToString());
            var written = long.Parse(acknowledged.Groups[1].Value.Replace(",", ""));

            // What it says was written is what the node has after a restart: no more, no less.
            using var again = await TestNode.StartReadyAsync(config, data, CrabKvProcess.FreePort());
            Assert.Equal(written, await again.KeysAsync());
        }
    }

    [Fact]
    public async Task Merges_in_steps_under_a_write_load_lose_no_acknowledged_write_through_a_kill_9_and_a_restart()
    {
        using var dir = new TempDir();
        var data = dir.Combine("data");
        var config = TestNode.WriteConfig(dir, 2);
        // Small steps: each merge's live records are taken and its keys moved over many messages,
        // with the load's batches handled between them.
        File.AppendAllText(config, "\ncrabkv.compaction.install-step = 16\n");
        const int Keys = 40_000;
        string Value(int round, int i) => $"r{round}-{i}-" + new string((char)('a' + round), 40);
        string Load(int round)
        {
            var file = dir.Combine($"round{round}.tsv");
            File.WriteAllLines(file, Enumerable.Range(0, Keys).Select(i => $"k{i:D6}\t{Value(round, i)}"));
            return file;
        }

        using (var node = await TestNode.StartReadyAsync(config, data, CrabKvProcess.FreePort()))
        {
            // Rounds 1 and 2 are acknowledged in full; each later round overwrites every key, so
            // sealed segments turn stale and merges start on their own.
            Assert.Contains("loaded 40,000 lines", (await node.OkAsync("load", Load(1))).Stdout);
            Assert.Contains("loaded 40,000 lines", (await node.OkAsync("load", Load(2))).Stdout);
            // Round 3 is killed as soon as a merge starts during it (bounded wait).
            var before = node.Process.StderrLines("compacting");
            var load = node.RunAsync("load", Load(3));
            var merged = node.Process.StderrLinesAsync("compacting", before + 1);
            await Task.WhenAny(merged, load).WaitAsync(TestNode.Patience);
            Assert.True(merged.IsCompleted, $"no merge started during the third load:\n{node.Process.Stderr}");
            node.Process.KillHard();
            await load; // failed or finished: which of its batches were acknowledged is not known here
        }

        using (var node = await TestNode.StartReadyAsync(config, data, CrabKvProcess.FreePort()))
        {
            Assert.Equal(Keys, await node.KeysAsync());
            // Round 4, acknowledged in full while merges run, then a compaction of everything:
            // a merge that moved a key back over a newer write would now be on disk.
            Assert.Contains("loaded 40,000 lines", (await node.OkAsync("load", Load(4))).Stdout);
            await node.OkAsync("compact");
            Assert.Equal(0, await node.StopAsync());
        }
        var verify = await CrabKvProcess.RunAsync(TestNode.Patience, "verify", "--data-dir", data);
        Assert.True(verify.ExitCode == 0, verify.ToString());

        // Read offline: after the kill every key had its round-2 or round-3 value (round 2 was
        // acknowledged), and now every key has exactly its round-4 value.
        var found = 0;
        for (var p = 0; p < 2; p++)
        {
            using var store = CrabKv.Storage.EmbeddedStore.Open(CrabKv.Storage.DataDirectory.PartitionDirectory(data, p));
            for (var i = 0; i < Keys; i++)
            {
                if (store.GetString($"k{i:D6}") is { } value)
                {
                    found++;
                    Assert.Equal(Value(4, i), value);
                }
            }
        }
        Assert.Equal(Keys, found);
    }

    [Fact]
    public async Task Acknowledged_writes_survive_kill_9_and_verify_finds_a_flipped_byte()
    {
        using var dir = new TempDir();
        var data = dir.Combine("data");
        var config = TestNode.WriteConfig(dir, 8);
        const string greeting = "héllo wörld\twith a tab, two  spaces and no newline";
        var expected = new Dictionary<string, string> { ["greeting"] = greeting };

        using (var node = await TestNode.StartReadyAsync(config, data, CrabKvProcess.FreePort()))
        {
            Assert.Contains($"127.0.0.1:{node.Port}", node.Process.Stdout);
            Assert.Contains("partitions held here: 8 of 8", node.Process.Stdout);
            Assert.Contains(Path.GetFullPath(data), node.Process.Stdout);

            var put = await node.OkAsync("put", "greeting", greeting);
            Assert.Equal("OK\n", put.Stdout);

            // stdout of get is exactly the value's bytes.
            var get = await node.OkAsync("get", "greeting");
            Assert.Equal(Encoding.UTF8.GetBytes(greeting), get.StdoutBytes);
            var file = dir.Combine("value.bin");
            var getOut = await node.OkAsync("get", "greeting", "--out", file);
            Assert.Empty(getOut.StdoutBytes);
            Assert.Equal(Encoding.UTF8.GetBytes(greeting), File.ReadAllBytes(file));

            // Any bytes, not only text: put --in FILE, and --in - from standard input.
            var binary = Enumerable.Range(0, 256).Select(i => (byte)i).Concat(new byte[] { 0xFF, 0xFE, 0x00, 0x0A }).ToArray();
            var binaryFile = dir.Combine("binary.in");
            File.WriteAllBytes(binaryFile, binary);
            Assert.Equal("OK\n", (await node.OkAsync("put", "binary", "--in", binaryFile)).Stdout);
            Assert.Equal(binary, (await node.OkAsync("get", "binary")).StdoutBytes);
            var reversed = binary.Reverse().ToArray();
            var piped = await node.RunWithInputAsync(reversed, "put", "piped", "--in", "-");
            Assert.True(piped.ExitCode == 0, piped.ToString());
            Assert.Equal(reversed, (await node.OkAsync("get", "piped")).StdoutBytes);
            var emptyFile = dir.Combine("empty.in");
            File.WriteAllBytes(emptyFile, []);
            await node.OkAsync("put", "empty", "--in", emptyFile);
            Assert.Empty((await node.OkAsync("get", "empty")).StdoutBytes); // found (exit 0), zero bytes
            var tooLarge = dir.Combine("too-large.in");
            File.WriteAllBytes(tooLarge, new byte[17 * 1024 * 1024]); // over the default max-value-bytes, 16 MiB
            var refused = await node.RunAsync("put", "too-large", "--in", tooLarge);
            Assert.True(refused.ExitCode == 2, refused.ToString());
            Assert.Contains("ValueTooLarge", refused.Stderr);
            Assert.Equal(1, (await node.RunAsync("get", "too-large")).ExitCode);
            // A line over the node's limits is refused before anything is sent (observed before:
            // the batches of other partitions were written, then the load failed).
            var oversized = dir.Combine("oversized.tsv");
            File.WriteAllLines(oversized, [.. Enumerable.Range(0, 600).Select(i => $"fits-{i}\tv"), $"{new string('k', 5000)}\tv", "fits-last\tv"]);
            var refusedLoad = await node.RunAsync("load", oversized);
            Assert.True(refusedLoad.ExitCode == 2, refusedLoad.ToString());
            Assert.Contains($"{oversized}:601: key of 5,000 bytes; the node's limit (crabkv.limits.max-key-bytes) is 4,096; nothing was sent", refusedLoad.Stderr);
            Assert.Equal(1, (await node.RunAsync("get", "fits-0")).ExitCode);
            Assert.Equal(1, (await node.RunAsync("get", "fits-last")).ExitCode);

            // load reads its file twice (check, then send): a pipe is copied first, not read empty.
            var pipedLoad = await node.RunWithInputAsync(Encoding.UTF8.GetBytes("piped-1\tone\npiped-2\ttwo\n"), "load", "/dev/stdin");
            Assert.True(pipedLoad.ExitCode == 0, pipedLoad.ToString());
            Assert.Contains("loaded 2 lines", pipedLoad.Stdout);
            Assert.Equal("two", (await node.OkAsync("get", "piped-2")).Stdout);
            foreach (var key in new[] { "binary", "piped", "empty", "piped-1", "piped-2" })
            {
                await node.OkAsync("del", key); // the rest of the test counts the text keys alone
            }

            var missing = await node.RunAsync("get", "no-such-key");
            Assert.Equal(1, missing.ExitCode);
            Assert.Empty(missing.StdoutBytes);
            Assert.Contains("key 'no-such-key' not found", missing.Stderr);

            var lines = Enumerable.Range(0, 300).Select(i => ($"user:{i:D4}", $"{{\"id\":{i},\"note\":\"tab\there\"}}")).ToList();
            var tsv = dir.Combine("users.tsv");
            File.WriteAllLines(tsv, lines.Select(l => $"{l.Item1}\t{l.Item2}"));
            var load = await node.OkAsync("load", tsv);
            Assert.Contains("loaded 300 lines", load.Stdout);
            foreach (var (k, v) in lines)
            {
                expected[k] = v;
            }

            Assert.Equal("deleted\n", (await node.OkAsync("del", "user:0000")).Stdout);
            expected.Remove("user:0000");
            var again = await node.RunAsync("delete", "user:0000");
            Assert.Equal(1, again.ExitCode);

            await node.OkAsync("put", "session", "s-1", "--ttl", "1h");
            expected["session"] = "s-1";

            Assert.Equal(expected.Count, await node.KeysAsync());
            node.Process.KillHard(); // kill -9: no flush, no seal
        }

        using (var node = await TestNode.StartReadyAsync(config, data, CrabKvProcess.FreePort()))
        {
            Assert.Equal(expected.Count, await node.KeysAsync());
            foreach (var key in new[] { "greeting", "session", "user:0001", "user:0150", "user:0299" })
            {
                var r = await node.OkAsync("get", key);
                Assert.True(expected[key] == r.Stdout, $"get {key}: expected '{expected[key]}'; {r}");
            }
            Assert.Equal(1, (await node.RunAsync("get", "user:0000")).ExitCode);
            var stats = await node.OkAsync("stats");
            Assert.Contains("p-007", stats.Stdout);
            Assert.Contains("total", stats.Stdout);
            Assert.Equal(0, await node.StopAsync());
            Assert.Contains("crabkv node stopped", node.Process.Stdout);
        }

        var verify = await CrabKvProcess.RunAsync(TestNode.Patience, "verify", "--data-dir", data);
        Assert.True(verify.ExitCode == 0, verify.ToString());
        Assert.Contains("clean", verify.Stdout);

        // Flip one byte in the middle of the largest segment.
        var segment = Directory.GetFiles(data, "seg-*.data", SearchOption.AllDirectories).MaxBy(f => new FileInfo(f).Length)!;
        var bytes = File.ReadAllBytes(segment);
        var offset = bytes.Length / 2;
        bytes[offset] ^= 0xFF;
        File.WriteAllBytes(segment, bytes);

        var damaged = await CrabKvProcess.RunAsync(TestNode.Patience, "verify", "--data-dir", data);
        Assert.True(damaged.ExitCode == 1, damaged.ToString());
        var line = damaged.Stdout.Split('\n').SingleOrDefault(l => l.StartsWith("damaged: ", StringComparison.Ordinal) && l.Contains(segment, StringComparison.Ordinal));
        Assert.True(line is not null, $"no 'damaged:' line names {segment}:\n{damaged}");
        var ranges = Regex.Matches(line, @"\[(\d+), (\d+)\)").Select(m => (Start: long.Parse(m.Groups[1].Value), End: long.Parse(m.Groups[2].Value))).ToList();
        Assert.Contains(ranges, r => r.Start <= offset && offset < r.End);
    }
}
