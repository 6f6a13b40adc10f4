using Xunit;

namespace CrabKv.Node.Tests;

/// <summary>
/// Every bad input gets one message naming what is wrong, on stderr, and its exit code (2 usage,
/// configuration or store error; 3 node unreachable); stdout stays empty; no stack traces.
/// </summary>
public sealed class CliErrorTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static async Task<CrabKvProcess.Completed> Fails(int code, params string[] args)
    {
        var r = await CrabKvProcess.RunAsync(Timeout, args);
        Assert.True(r.ExitCode == code, $"crabkv {string.Join(' ', args)}: expected exit {code}; {r}");
        Assert.Empty(r.StdoutBytes);
        Assert.DoesNotContain("   at ", r.Stderr); // no stack trace
        return r;
    }

    [Theory]
    [InlineData("crabkv get: missing KEY", "get")]
    [InlineData("crabkv put: missing KEY", "put")]
    [InlineData("crabkv put: missing VALUE (or --in FILE)", "put", "k")]
    [InlineData("crabkv put: give VALUE or --in FILE, not both", "put", "k", "v", "--in", "value.bin")]
    [InlineData("crabkv put: --in: missing value", "put", "k", "--in")]
    [InlineData("crabkv load: missing FILE", "load")]
    [InlineData("crabkv put: --ttl: 0 is not a positive duration", "put", "k", "v", "--ttl", "0")]
    [InlineData("crabkv put: --ttl: '30' has no unit", "put", "k", "v", "--ttl", "30")]
    [InlineData("crabkv put: --ttl: 'soon' is not a duration", "put", "k", "v", "--ttl", "soon")]
    [InlineData("crabkv put: --ttl: missing value", "put", "k", "v", "--ttl")]
    [InlineData("crabkv put: --ttl: 99999999d is too long a duration", "put", "k", "v", "--ttl", "99999999d")]
    [InlineData("crabkv put: --ttl: 9223372036854775807ms is too long a duration", "put", "k", "v", "--ttl", "9223372036854775807ms")]
    [InlineData("crabkv put: --ttl: 40000d is longer than the longest allowed, 36500d", "put", "k", "v", "--ttl", "40000d")]
    [InlineData("crabkv get: --timeout: 100d is longer than the longest allowed, 24d", "get", "k", "--timeout", "100d")]
    [InlineData("crabkv get: unknown option '--bogus'", "get", "k", "--bogus")]
    [InlineData("crabkv get: unexpected argument 'extra'", "get", "k", "extra")]
    [InlineData("crabkv: unknown command 'frobnicate'", "frobnicate")]
    [InlineData("crabkv get: --node: 'nowhere' is not HOST:PORT", "get", "k", "--node", "nowhere")]
    [InlineData("crabkv get: --node: 'localhost:99999' has no valid port", "get", "k", "--node", "localhost:99999")]
    [InlineData("crabkv serve: --port: 'http' is not a port", "serve", "--port", "http")]
    [InlineData("crabkv demo: --keys: '-5' is not a positive number", "demo", "--keys", "-5")]
    public async Task Usage_errors_name_what_is_wrong_with_exit_2(string message, params string[] args)
    {
        var r = await Fails(2, args);
        Assert.Contains(message, r.Stderr);
        Assert.Contains("--help' for usage", r.Stderr);
        Assert.DoesNotContain("Usage:", r.Stderr); // not the whole usage text
    }

    [Fact]
    public async Task A_put_from_a_file_that_cannot_be_read_fails_before_connecting()
    {
        // No node answers at port 1: a command that tried to connect would exit 3, not 2.
        using var dir = new TempDir();
        var missing = await Fails(2, "put", "k", "--in", dir.Combine("no-such-file"), "--node", "127.0.0.1:1");
        Assert.Contains("crabkv put: --in: cannot read", missing.Stderr);
        Assert.Contains("no-such-file", missing.Stderr);
        var directory = await Fails(2, "put", "k", "--in", dir.Path, "--node", "127.0.0.1:1");
        Assert.Contains("is a directory, not a file", directory.Stderr);
    }

    [Fact]
    public async Task A_get_into_a_directory_fails_before_connecting_and_says_it_is_one()
    {
        // Observed before: "Access to the path … is denied", after the node had been asked.
        using var dir = new TempDir();
        var r = await Fails(2, "get", "k", "--out", dir.Path, "--node", "127.0.0.1:1");
        Assert.Contains($"crabkv get: --out {dir.Path}: is a directory", r.Stderr);
    }

    [Fact]
    public async Task Help_shows_each_default_once()
    {
        var r = await CrabKvProcess.RunAsync(Timeout, "get", "--help");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("(default 10s)", r.Stdout);
        Assert.Contains("(default 127.0.0.1:7420)", r.Stdout);
        Assert.DoesNotContain("[default:", r.Stdout);
    }

    [Fact]
    public async Task Verify_of_a_missing_data_directory_is_an_error_and_creates_nothing()
    {
        using var dir = new TempDir();
        var data = dir.Combine("nothing-here");
        var r = await Fails(2, "verify", "--data-dir", data);
        Assert.Contains($"crabkv verify: data directory '{data}' does not exist", r.Stderr);
        Assert.False(Directory.Exists(data));
    }

    [Theory]
    [InlineData("verify")]
    [InlineData("repair")]
    [InlineData("serve")]
    public async Task A_data_directory_that_is_a_file_says_so(string command)
    {
        using var dir = new TempDir();
        var file = dir.Combine("a-file");
        File.WriteAllText(file, "not a directory");
        var r = await Fails(2, command, "--data-dir", file);
        Assert.Contains($"data directory '{file}' is a file, not a directory", r.Stderr);
    }

    [Fact]
    public async Task Serve_refuses_what_it_cannot_use_before_it_starts_anything()
    {
        // Observed before: the actor system started (about 17 log lines), LOCK, NODE-ID and
        // PARTITIONS were created, and then the error came.
        using var dir = new TempDir();
        var file = dir.Combine("a-file");
        File.WriteAllText(file, "not a directory");
        var under = await Fails(2, "serve", "--data-dir", Path.Combine(file, "sub"), "--port", "0");
        Assert.Contains($"cannot be created: '{file}' is a file", under.Stderr);

        var config = dir.Combine("transfer.conf");
        File.WriteAllText(config, "crabkv.transfer.window = 0\n");
        var data = dir.Combine("data");
        var window = await Fails(2, "serve", "--config", config, "--data-dir", data, "--port", "0");
        Assert.Contains("crabkv.transfer.window is 0; it must be at least 1", window.Stderr);
        foreach (var r in new[] { under, window })
        {
            Assert.True(r.Stderr.Trim().Split('\n').Length == 1, $"one line expected:\n{r.Stderr}");
        }
        Assert.False(Directory.Exists(data));
    }

    [Fact]
    public async Task A_missing_config_file_is_named()
    {
        var r = await Fails(2, "verify", "--config", "/nonexistent/crabkv.conf");
        Assert.Contains("--config: file '/nonexistent/crabkv.conf' does not exist", r.Stderr);
    }

    [Theory]
    [InlineData("serve")]
    [InlineData("verify")]
    public async Task A_misspelt_configuration_key_is_refused_naming_the_closest_known_one(string command)
    {
        using var dir = new TempDir();
        var conf = dir.Combine("typo.conf");
        File.WriteAllText(conf, "crabkv.sync-intervall = 1s\n");
        Directory.CreateDirectory(dir.Combine("data"));
        var r = await Fails(2, [command, "--config", conf, "--data-dir", dir.Combine("data"), .. command == "serve" ? new[] { "--port", "0" } : []]);
        Assert.Contains("unknown key crabkv.sync-intervall; did you mean crabkv.sync-interval?", r.Stderr);
    }

    [Fact]
    public async Task A_HOCON_syntax_error_says_so_with_the_file_and_line()
    {
        using var dir = new TempDir();
        var conf = dir.Combine("bad.conf");
        File.WriteAllText(conf, "crabkv {\n  sync-interval = \n}\n");
        var r = await Fails(2, "serve", "--config", conf, "--data-dir", dir.Combine("data"), "--port", "0");
        Assert.Contains($"{conf} line 2: HOCON syntax error", r.Stderr);
        Assert.False(Directory.Exists(dir.Combine("data")), "nothing is created before the configuration is valid");
    }

    [Fact]
    public async Task A_client_command_without_a_running_node_prints_one_line_and_exits_3()
    {
        var port = CrabKvProcess.FreePort(); // nobody listens there
        var r = await Fails(3, "get", "k", "--node", $"127.0.0.1:{port}", "--timeout", "5s");
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr:\n{r.Stderr}");
        Assert.StartsWith($"crabkv get: no crabkv node answers at 127.0.0.1:{port}", lines[0]);
        Assert.DoesNotContain("advertises", lines[0]); // an address: nothing to say about names

        // By name: a node answers only at the address it advertises (127.0.0.1 unless told otherwise).
        var byName = await Fails(3, "get", "k", "--node", $"localhost:{port}", "--timeout", "5s");
        Assert.Contains("a node answers only at the address it advertises", byName.Stderr);
        Assert.Contains("127.0.0.1 by default, not localhost", byName.Stderr);
    }

    [Fact]
    public async Task A_client_command_at_a_port_that_is_no_crabkv_node_prints_one_line_and_exits_3()
    {
        // Observed before: a DotNetty frame exception with its stack trace, then the exit-3 line.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource();
        var garbage = Task.Run(async () =>
        {
            for (var i = 0; i < 20 && !stop.IsCancellationRequested; i++) // bounded: the client connects a few times at most
            {
                try
                {
                    using var client = await listener.AcceptTcpClientAsync(stop.Token);
                    await client.GetStream().WriteAsync(Enumerable.Repeat((byte)0xFF, 200_000).ToArray(), stop.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or System.Net.Sockets.SocketException)
                {
                    // the client hung up, or the test is over
                }
            }
        });
        var r = await Fails(3, "get", "k", "--node", $"127.0.0.1:{port}", "--timeout", "3s");
        stop.Cancel();
        listener.Stop();
        await garbage;
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr:\n{r.Stderr}");
        Assert.StartsWith($"crabkv get: no crabkv node answers at 127.0.0.1:{port}", lines[0]);
    }

    [Fact]
    public async Task A_malformed_load_file_is_refused_with_its_line_number_before_connecting()
    {
        using var dir = new TempDir();
        var tsv = dir.Combine("bad.tsv");
        File.WriteAllLines(tsv, ["a\t1", "b\t2", "no tab on this line"]);
        // No node runs at this port: the file is refused before any connection is tried.
        var r = await Fails(2, "load", tsv, "--node", $"127.0.0.1:{CrabKvProcess.FreePort()}");
        Assert.Contains($"{tsv}:3: no TAB between key and value", r.Stderr);
    }

    [Fact]
    public async Task A_load_file_with_bytes_that_are_not_UTF_8_is_refused_naming_the_line_before_connecting()
    {
        // Observed before: loaded with exit 0, the bytes replaced by U+FFFD.
        using var dir = new TempDir();
        var tsv = dir.Combine("binary.tsv");
        var lines = Enumerable.Range(0, 5000).Select(i => $"k{i}\tvalue {i}\n").ToList(); // the bad line far past the reader's first buffer
        var bytes = new List<byte>(System.Text.Encoding.UTF8.GetBytes(string.Concat(lines)));
        bytes.AddRange([(byte)'b', (byte)'a', (byte)'d', (byte)'\t', 0xFF, 0xFE, (byte)'V', (byte)'\n']);
        bytes.AddRange(System.Text.Encoding.UTF8.GetBytes("after\tfine\n"));
        File.WriteAllBytes(tsv, bytes.ToArray());
        var r = await Fails(2, "load", tsv, "--node", $"127.0.0.1:{CrabKvProcess.FreePort()}");
        Assert.Contains($"{tsv}:5001: not valid UTF-8", r.Stderr);
        Assert.Contains("nothing was sent", r.Stderr);
    }

    [Theory]
    [InlineData("serve")]
    [InlineData("put")]
    [InlineData("get")]
    [InlineData("del")]
    [InlineData("load")]
    [InlineData("flush")]
    [InlineData("compact")]
    [InlineData("stats")]
    [InlineData("verify")]
    [InlineData("repair")]
    [InlineData("demo")]
    public async Task Every_command_has_help_with_the_exit_codes(string command)
    {
        var r = await CrabKvProcess.RunAsync(Timeout, command, "--help");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("Usage:", r.Stdout);
        Assert.Contains($"crabkv {command}", r.Stdout);
        Assert.Contains("3  node unreachable", r.Stdout);
    }
}

/// <summary>Every HOCON file of <c>hocon/</c> (the presets, the cluster examples) is accepted by <c>--config</c>.</summary>
public sealed class ConfigFileTests
{
    public static TheoryData<string> HoconFiles()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "CrabKv.Actors.sln")))
        {
            dir = dir.Parent;
        }
        Assert.NotNull(dir);
        var files = Directory.GetFiles(Path.Combine(dir.FullName, "hocon"), "*.conf").Order(StringComparer.Ordinal).ToList();
        Assert.Contains(files, f => f.EndsWith("cluster-node-3.conf", StringComparison.Ordinal));
        var data = new TheoryData<string>();
        foreach (var f in files)
        {
            data.Add(f);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(HoconFiles))]
    public async Task A_hocon_file_is_read_and_validated(string file)
    {
        using var dir = new TempDir();
        var data = dir.Combine("no-data");
        // The settings are read and validated first; only then is the (missing) data directory refused.
        var r = await CrabKvProcess.RunAsync(TimeSpan.FromSeconds(60), "verify", "--config", file, "--data-dir", data);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains($"data directory '{data}' does not exist", r.Stderr);
    }
}
