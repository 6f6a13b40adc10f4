using Akka.Configuration;
using Akka.Hosting;
using CrabKv.Actors.Hosting;
using CrabKv.Actors.Tests.Support;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// Configuration validation: unknown keys under <c>crabkv</c> are refused naming the closest
/// known key, HOCON syntax errors name their source and line, and both fail a hosted start.
/// </summary>
public sealed class SettingsValidationTests : IDisposable
{
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static CrabKvConfigurationException Refused(string hocon) =>
        Assert.Throws<CrabKvConfigurationException>(() => CrabKvSettings.Create(ConfigurationFactory.ParseString(hocon)));

    [Theory]
    [InlineData("crabkv.sync-intervall = 5ms", "crabkv.sync-intervall", "crabkv.sync-interval")]
    [InlineData("crabkv.cache.max-entires = 5", "crabkv.cache.max-entires", "crabkv.cache.max-entries")]
    [InlineData("crabkv { write-back { enable = on } }", "crabkv.write-back.enable", "crabkv.write-back.enabled")]
    [InlineData("crabkv.datadir = \"x\"", "crabkv.datadir", "crabkv.data-dir")]
    [InlineData("crabkv.transfer.chunk-byte = 1 MiB", "crabkv.transfer.chunk-byte", "crabkv.transfer.chunk-bytes")]
    // A value where the reference has a plain setting is written as an object: its keys are unknown.
    [InlineData("crabkv.sync-interval { x = 1 }", "crabkv.sync-interval.x", "crabkv.sync-interval")]
    public void An_unknown_key_is_refused_naming_the_closest_known_one(string hocon, string key, string suggestion)
    {
        var e = Refused(hocon);
        Assert.Equal($"Invalid CrabKv configuration: unknown key {key}; did you mean {suggestion}?", e.Message);
        Assert.Equal(key, e.UnknownKey);
        Assert.Equal(suggestion, e.Suggestion);
        Assert.Equal(key["crabkv.".Length..], e.Key);
    }

    [Fact]
    public void Cluster_keys_and_dispatcher_sections_are_not_refused_by_the_store()
    {
        var s = CrabKvSettings.Create(ConfigurationFactory.ParseString("""
            crabkv.cluster.partitions = 8
            crabkv.cluster.role = "kv"
            crabkv.io-dispatcher-config.dedicated-thread-pool.thread-count = 2
            crabkv.io-dispatcher-config.executor = "fork-join-executor"
            crabkv.compaction-dispatcher-config.throughput = 5
            """));
        Assert.Equal("crabkv.io-dispatcher-config", s.IoDispatcher);
    }

    [Fact]
    public void A_dispatcher_of_its_own_under_crabkv_is_accepted_when_it_is_the_one_named()
    {
        var s = CrabKvSettings.Create(ConfigurationFactory.ParseString("""
            crabkv.io-dispatcher = "crabkv.my-io"
            crabkv.my-io { type = ForkJoinDispatcher, throughput = 10, dedicated-thread-pool.thread-count = 1 }
            """));
        Assert.Equal("crabkv.my-io", s.IoDispatcher);
        // Not named by io-dispatcher or compaction-dispatcher: an unknown key like any other.
        Assert.Equal("crabkv.my-io.type", Refused("crabkv.my-io { type = ForkJoinDispatcher }").UnknownKey);
    }

    [Fact]
    public void The_reference_and_every_shipped_preset_pass_both_checks()
    {
        var hoconDir = FindHoconDirectory();
        var files = Directory.GetFiles(hoconDir, "*.conf");
        Assert.Contains(files, f => f.EndsWith("crabkv.reference.conf", StringComparison.Ordinal));
        foreach (var file in files)
        {
            var config = CrabKvConfig.LoadFile(file); // syntax
            if (!file.EndsWith("cluster.reference.conf", StringComparison.Ordinal))
            {
                CrabKvSettings.Create(config); // keys and values (crabkv.cluster.* is the cluster's to check)
            }
        }
        Assert.NotEmpty(CrabKvSettings.KnownKeys);
        Assert.Contains("crabkv.write-back.max-dirty-bytes", CrabKvSettings.KnownKeys);
    }

    private static string FindHoconDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "hocon");
            if (File.Exists(Path.Combine(candidate, "crabkv.reference.conf")))
            {
                return candidate;
            }
        }
        throw new InvalidOperationException("hocon/ not found above " + AppContext.BaseDirectory);
    }

    [Theory]
    [InlineData("crabkv {\n  a = 1\n  b =\n}\n", 3, "the key 'b' has no value")]
    [InlineData("crabkv {\n  a = 1\n  b == 2\n}\n", 3, "unexpected '='")]
    [InlineData("crabkv {\n  a = 1\n\n  c = [1, 2\n}\n", 5, "unexpected '}' inside the array opened on line 4")]
    [InlineData("crabkv {\n  a = [1, 2\n", 2, "'[' is never closed")]
    [InlineData("crabkv {\n  a = 1\n  b { x = 1\n", 3, "'{' is never closed")]
    [InlineData("crabkv {\n  a = 1\n", 1, "'{' is never closed")]
    [InlineData("crabkv.a = \"unterminated\ncrabkv.b = 1\n", 1, "a quoted string is not closed on its line")]
    [InlineData("crabkv {\n  a = 1 }\n}\n", 3, "unexpected '}' (no '{' to close)")]
    [InlineData("crabkv {\n  a = 1\n  c 3\n}\n", 3, "expected '=', ':' or '{' after the key 'c 3'")]
    [InlineData("crabkv.a = ${crabkv\n", 1, "a substitution '${' is not closed on its line")]
    public void A_syntax_error_is_called_one_with_its_source_and_line(string hocon, int line, string problem)
    {
        var e = Assert.Throws<CrabKvConfigurationException>(() => CrabKvConfig.ParseString(hocon, "hocon/x.conf"));
        Assert.StartsWith($"hocon/x.conf line {line}: HOCON syntax error: ", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Theory]
    [InlineData("crabkv.a = 1")]
    [InlineData("{ crabkv { a = 1, b = \"x\" } }")]
    [InlineData("crabkv { a = 10ms\n b = 128 MiB // comment\n c = ${crabkv.a} # comment\n d = [\"x\", y,\n z]\n e += 1\n f : \"\"\"multi\nline\"\"\"\n \"quoted.key\" = on }")]
    [InlineData("akka.actor.deployment { /user/x { router = round-robin-pool } }\nakka.remote.dot-netty.tcp.hostname = 127.0.0.1")]
    [InlineData("crabkv.a = ${?HOME}")]
    public void Valid_HOCON_passes_the_syntax_check(string hocon) =>
        Assert.NotNull(CrabKvConfig.ParseString(hocon, "valid.conf"));

    [Fact]
    public void LoadFile_names_the_file_and_line_of_a_syntax_error_and_reads_a_good_file()
    {
        var bad = Path.Combine(_dir.Path, "bad.conf");
        File.WriteAllText(bad, "# comment\ncrabkv {\n  sync-interval = 5ms\n  cache.max-bytes =\n}\n");
        var e = Assert.Throws<CrabKvConfigurationException>(() => CrabKvConfig.LoadFile(bad));
        Assert.StartsWith($"{bad} line 4: HOCON syntax error: the key 'cache.max-bytes' has no value", e.Message);

        var good = Path.Combine(_dir.Path, "good.conf");
        File.WriteAllText(good, "crabkv {\n  sync-interval = 5ms\n}\n");
        Assert.Equal(TimeSpan.FromMilliseconds(5), CrabKvSettings.Create(CrabKvConfig.LoadFile(good)).SyncInterval);

        var missing = Assert.Throws<CrabKvConfigurationException>(() => CrabKvConfig.LoadFile(Path.Combine(_dir.Path, "none.conf")));
        Assert.Contains("cannot be read", missing.Message);
    }

    [Fact]
    public void LoadFile_reads_included_files_relative_to_the_including_one_and_checks_them_too()
    {
        File.WriteAllText(Path.Combine(_dir.Path, "base.conf"), "crabkv.sync-interval = 7ms\ncrabkv.partitions = 3\n");
        var main = Path.Combine(_dir.Path, "main.conf");
        File.WriteAllText(main, "include \"base.conf\"\ncrabkv.partitions = 2\n");
        var s = CrabKvSettings.Create(CrabKvConfig.LoadFile(main));
        Assert.Equal(TimeSpan.FromMilliseconds(7), s.SyncInterval);
        Assert.Equal(2, s.Partitions);

        File.WriteAllText(Path.Combine(_dir.Path, "broken.conf"), "crabkv {\n  a =\n}\n");
        var withBroken = Path.Combine(_dir.Path, "with-broken.conf");
        File.WriteAllText(withBroken, "include \"broken.conf\"\n");
        var e = Assert.Throws<CrabKvConfigurationException>(() => CrabKvConfig.LoadFile(withBroken));
        Assert.StartsWith(Path.Combine(_dir.Path, "broken.conf") + " line 2: HOCON syntax error", e.Message);

        var withMissing = Path.Combine(_dir.Path, "with-missing.conf");
        File.WriteAllText(withMissing, "include \"nope.conf\"\n");
        Assert.Contains("the included file 'nope.conf' does not exist", Assert.Throws<CrabKvConfigurationException>(() => CrabKvConfig.LoadFile(withMissing)).Message);
    }

    [Theory]
    [InlineData("crabkv.sync-interval", "crabkv.sync-interval", 0)]
    [InlineData("crabkv.sync-intervall", "crabkv.sync-interval", 1)]
    [InlineData("kitten", "sitting", 3)]
    [InlineData("", "abc", 3)]
    public void Edit_distance(string a, string b, int distance) => Assert.Equal(distance, CrabKvConfig.EditDistance(a, b));

    private static async Task<List<Exception>> HostStartFailure(Action<AkkaConfigurationBuilder> configure)
    {
        using var host = new HostBuilder()
            .ConfigureServices(services => services.AddAkka("crabkv-validation-test", (builder, _) =>
            {
                builder.AddHocon("akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING", HoconAddMode.Prepend);
                configure(builder);
            }))
            .Build();
        var e = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.IsNotType<TimeoutException>(e);
        await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var all = new List<Exception>();
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            all.Add(x);
        }
        return all;
    }

    [Fact]
    public async Task WithCrabKv_fails_the_host_start_on_an_unknown_key()
    {
        var all = await HostStartFailure(b => b.WithCrabKv(new CrabKvOptions { DataDir = _dir.Path, Partitions = 1 }, hocon: "crabkv.sync-intervall = 5ms"));
        Assert.Contains(all, x => x.Message.Contains("unknown key crabkv.sync-intervall; did you mean crabkv.sync-interval?", StringComparison.Ordinal));
    }

    [Fact]
    public async Task WithCrabKv_fails_the_host_start_on_a_HOCON_syntax_error()
    {
        var all = await HostStartFailure(b => b.WithCrabKv(new CrabKvOptions { DataDir = _dir.Path, Partitions = 1 }, hocon: "crabkv {\n  sync-interval = 5ms\n  cache.max-bytes =\n}"));
        Assert.Contains(all, x => x.Message.StartsWith("WithCrabKv hocon line 3: HOCON syntax error", StringComparison.Ordinal));
    }
}
