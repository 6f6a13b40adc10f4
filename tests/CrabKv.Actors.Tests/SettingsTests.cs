using Akka.Configuration;
using CrabKv.Actors.Hosting;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Files;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>HOCON → settings: defaults, validation, the Akka.Hosting options, and the shipped presets.</summary>
public sealed class SettingsTests
{
    private const long MiB = 1L << 20;

    private static CrabKvSettings FromHocon(string hocon) => CrabKvSettings.Create(ConfigurationFactory.ParseString(hocon));

    [Fact]
    public void Reference_config_gives_every_documented_default()
    {
        var s = CrabKvSettings.Create(CrabKvSettings.DefaultConfig());
        Assert.Equal("crabkv-data", s.DataDir);
        Assert.Equal(Environment.ProcessorCount, s.Partitions); // partitions = 0: one per core
        Assert.Equal(TimeSpan.Zero, s.SyncInterval);
        Assert.False(s.WriteBackEnabled);
        Assert.Equal(TimeSpan.FromSeconds(1), s.FlushInterval);
        Assert.Equal(128 * MiB, s.MaxDirtyBytes); // node budgets: 2 partitions get what each had before
        Assert.Equal(20_000, s.CacheMaxEntries);
        Assert.Equal(128 * MiB, s.CacheMaxBytes);
        Assert.True(s.CompressionEnabled);
        Assert.Equal(256, s.CompressionMinValueBytes);
        Assert.True(s.AutoCompaction);
        Assert.Equal(new CompactionThresholds(0.33, 1 * MiB, 8 * MiB), s.Compaction);
        Assert.Equal(32_768, s.CompactionInstallStep);
        Assert.Null(s.DefaultTtl); // default-ttl = 0: none
        Assert.Equal(TimeSpan.FromSeconds(1), s.TtlSweepInterval);
        Assert.Equal(4096, s.MaxKeyBytes);
        Assert.Equal((int)(16 * MiB), s.MaxValueBytes);
        Assert.Equal(64 * MiB, s.SegmentMaxBytes);
        Assert.Equal(512 * 1024, s.WriteBufferBytes);
        Assert.Equal(128 * MiB, s.SegmentPreallocateBytes);
        Assert.Equal(1, s.BudgetShare);
        Assert.Equal("crabkv.io-dispatcher-config", s.IoDispatcher);
        Assert.Equal(TimeSpan.FromSeconds(10), s.ClientTimeout);
        Assert.Same(FileLayer.Default, s.Files);

        // An empty user config falls back to the same reference, and so does the mirror in hocon/.
        Assert.Equal(s, CrabKvSettings.Create(ConfigurationFactory.Empty));
        var mirror = Path.Combine(RepoPaths.Root, "hocon", "crabkv.reference.conf");
        Assert.Equal(s, CrabKvSettings.Create(ConfigurationFactory.ParseString(File.ReadAllText(mirror))));
    }

    [Fact]
    public void Reference_defaults_match_the_engine_defaults()
    {
        // The node budgets split over two partitions give each the engine's (single partition) defaults.
        var options = CrabKvSettings.Create(CrabKvSettings.DefaultConfig()).PerPartition(2).ToStoreOptions();
        var engine = new CrabKv.Storage.StoreOptions();
        Assert.Equal(engine.MaxSegmentBytes, options.MaxSegmentBytes);
        Assert.Equal(engine.MaxKeyBytes, options.MaxKeyBytes);
        Assert.Equal(engine.MaxValueBytes, options.MaxValueBytes);
        Assert.Equal(engine.Compression, options.Compression);
        Assert.Equal(engine.CompressionMinValueBytes, options.CompressionMinValueBytes);
        Assert.Equal(engine.Compaction, options.Compaction);
        Assert.Equal(engine.ReadCacheEntries, options.ReadCacheEntries);
        Assert.Equal(engine.ReadCacheBytes, options.ReadCacheBytes);
        Assert.Equal(engine.WriteBack, options.WriteBack);
        Assert.Equal(engine.MaxDirtyBytes, options.MaxDirtyBytes);
        Assert.Equal(engine.WriteBufferBytes, options.WriteBufferBytes);
        Assert.Equal(engine.ToLogSettings().PreallocateBytes, CrabKvSettings.Create(CrabKvSettings.DefaultConfig()).PerPartition(2).ToLogSettings().PreallocateBytes);
    }

    [Theory]
    [InlineData("crabkv.compaction.stale-ratio = 2", "compaction.stale-ratio")]
    [InlineData("crabkv.compaction.stale-ratio = 0", "compaction.stale-ratio")]
    [InlineData("crabkv.segment.max-bytes = 10", "segment.max-bytes")]
    [InlineData("crabkv.segment.max-bytes = 100 GiB", "segment.max-bytes")]
    [InlineData("crabkv.partitions = -1", "partitions")]
    [InlineData("crabkv.partitions = 5000", "partitions")]
    [InlineData("crabkv.partitions = many", "partitions")]
    [InlineData("crabkv.io-dispatcher = \"crabkv.no-such-dispatcher\"", "io-dispatcher")]
    [InlineData("crabkv.write-back.max-dirty-bytes = 100", "write-back.max-dirty-bytes")]
    [InlineData("crabkv.write-back.flush-interval = 0", "write-back.flush-interval")]
    [InlineData("crabkv.sync-interval = -5ms", "sync-interval")]
    [InlineData("crabkv.limits.max-key-bytes = 0", "limits.max-key-bytes")]
    [InlineData("crabkv.limits.max-key-bytes = 70000", "limits.max-key-bytes")]
    [InlineData("crabkv.client-timeout = 0", "client-timeout")]
    [InlineData("crabkv.data-dir = \"\"", "data-dir")]
    [InlineData("crabkv.compression.enabled = perhaps", "compression.enabled")]
    [InlineData("crabkv.segment.preallocate = -1", "segment.preallocate")]
    [InlineData("crabkv.segment.preallocate = lots", "segment.preallocate")]
    [InlineData("crabkv.segment.write-buffer = 100", "segment.write-buffer")]
    [InlineData("crabkv.segment.write-buffer = 2 GiB", "segment.write-buffer")]
    [InlineData("crabkv.cache.max-bytes = -1", "cache.max-bytes")]
    [InlineData("crabkv.compaction.install-step = 0", "compaction.install-step")]
    [InlineData("crabkv.compaction.install-step = 20000000", "compaction.install-step")]
    [InlineData("crabkv.compaction.install-step = some", "compaction.install-step")]
    [InlineData("crabkv.cache.max-entries = -1", "cache.max-entries")]
    [InlineData("crabkv.io-dispatcher-config.dedicated-thread-pool.thread-count = 0", "io-dispatcher")]
    [InlineData("crabkv.compaction-dispatcher-config.dedicated-thread-pool.thread-count = many", "compaction-dispatcher")]
    [InlineData("crabkv.limits = 5", "limits")]
    public void Bad_values_throw_naming_the_key(string hocon, string key)
    {
        var e = Assert.Throws<CrabKvConfigurationException>(() => FromHocon(hocon));
        Assert.Equal(key, e.Key);
        Assert.Contains("crabkv." + key, e.Message);
    }

    [Theory]
    [InlineData("crabkv = 5", "crabkv is a section of keys (crabkv.")]
    [InlineData("crabkv.limits = 5", "crabkv.limits is a section of keys (crabkv.limits.max-key-bytes, crabkv.limits.max-value-bytes), not a value")]
    [InlineData("crabkv.cache.max-entries = -1", "crabkv.cache.max-entries is -1; it must be between 0 and")] // a count, not bytes
    public void Messages_say_what_is_wrong(string hocon, string message)
    {
        // Before: `crabkv = 5` failed inside the key check with "startIndex cannot be larger than
        // length of string", and `crabkv.limits = 5` suggested crabkv.partitions.
        var e = Assert.Throws<CrabKvConfigurationException>(() => FromHocon(hocon));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Lower_bounds_are_accepted()
    {
        var s = FromHocon("""
            crabkv.segment.max-bytes = 4096
            crabkv.write-back.max-dirty-bytes = 4096
            crabkv.compaction.stale-ratio = 1
            crabkv.partitions = 1024
            crabkv.limits.max-key-bytes = 1
            crabkv.limits.max-value-bytes = 0
            crabkv.compaction.install-step = 1
            """);
        Assert.Equal(4096, s.SegmentMaxBytes);
        Assert.Equal(1, s.CompactionInstallStep);
        Assert.Equal(4096, s.MaxDirtyBytes);
        Assert.Equal(1.0, s.Compaction.StaleRatio);
        Assert.Equal(1024, s.Partitions);
        Assert.Equal(1, s.MaxKeyBytes);
        Assert.Equal(0, s.MaxValueBytes);
    }

    [Fact]
    public void ToHocon_emits_only_the_properties_that_are_set()
    {
        Assert.Equal("", new CrabKvOptions().ToHocon());
        var hocon = new CrabKvOptions { Partitions = 3, WriteBack = true, SyncInterval = TimeSpan.FromMilliseconds(250) }.ToHocon();
        var lines = hocon.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["crabkv.partitions = 3", "crabkv.sync-interval = 250ms", "crabkv.write-back.enabled = on"], lines.Order(StringComparer.Ordinal));

        // Unset properties keep the reference value.
        var s = FromHocon(hocon);
        Assert.Equal(3, s.Partitions);
        Assert.True(s.WriteBackEnabled);
        Assert.Equal(TimeSpan.FromMilliseconds(250), s.SyncInterval);
        var reference = CrabKvSettings.Create(CrabKvSettings.DefaultConfig());
        Assert.Equal(reference with { Partitions = 3, WriteBackEnabled = true, SyncInterval = TimeSpan.FromMilliseconds(250) }, s);
    }

    [Fact]
    public void Every_option_round_trips_through_hocon_into_settings()
    {
        var options = new CrabKvOptions
        {
            DataDir = "/var/lib/crab kv/\"quoted\"\\dir",
            Partitions = 7,
            SyncInterval = TimeSpan.FromMilliseconds(42),
            WriteBack = true,
            FlushInterval = TimeSpan.FromSeconds(3),
            MaxDirtyBytes = 5 * MiB,
            CacheMaxEntries = 123,
            CacheMaxBytes = 7 * MiB,
            Compression = false,
            CompressionMinValueBytes = 1000,
            AutoCompaction = false,
            StaleRatio = 0.55,
            CompactionMinTotalBytes = 2 * MiB,
            CompactionMaxStaleBytes = 9 * MiB,
            CompactionInstallStep = 4096,
            DefaultTtl = TimeSpan.FromMinutes(5),
            TtlSweepInterval = TimeSpan.Zero,
            MaxKeyBytes = 200,
            MaxValueBytes = 3_000_000,
            SegmentMaxBytes = 32 * MiB,
            WriteBufferBytes = 3 * MiB,
            SegmentPreallocateBytes = 40 * MiB,
            ClientTimeout = TimeSpan.FromSeconds(4),
        };
        var s = FromHocon(options.ToHocon());
        Assert.Equal(options.DataDir, s.DataDir);
        Assert.Equal(7, s.Partitions);
        Assert.Equal(TimeSpan.FromMilliseconds(42), s.SyncInterval);
        Assert.True(s.WriteBackEnabled);
        Assert.Equal(TimeSpan.FromSeconds(3), s.FlushInterval);
        Assert.Equal(5 * MiB, s.MaxDirtyBytes);
        Assert.Equal(123, s.CacheMaxEntries);
        Assert.Equal(7 * MiB, s.CacheMaxBytes);
        Assert.False(s.CompressionEnabled);
        Assert.Equal(1000, s.CompressionMinValueBytes);
        Assert.False(s.AutoCompaction);
        Assert.Equal(new CompactionThresholds(0.55, 2 * MiB, 9 * MiB), s.Compaction);
        Assert.Equal(4096, s.CompactionInstallStep);
        Assert.Equal(TimeSpan.FromMinutes(5), s.DefaultTtl);
        Assert.Equal(TimeSpan.Zero, s.TtlSweepInterval);
        Assert.Equal(200, s.MaxKeyBytes);
        Assert.Equal(3_000_000, s.MaxValueBytes);
        Assert.Equal(32 * MiB, s.SegmentMaxBytes);
        Assert.Equal((int)(3 * MiB), s.WriteBufferBytes);
        Assert.Equal(40 * MiB, s.SegmentPreallocateBytes);
        Assert.Equal(TimeSpan.FromSeconds(4), s.ClientTimeout);
        Assert.Equal(options.ToString(), options.ToHocon());
    }

    [Fact]
    public void Options_win_over_user_hocon_in_the_hosting_order()
    {
        // WithCrabKv prepends the user HOCON, then the options (so options come first and win).
        var user = ConfigurationFactory.ParseString("crabkv.partitions = 5\ncrabkv.sync-interval = 1s");
        var options = ConfigurationFactory.ParseString(new CrabKvOptions { Partitions = 2 }.ToHocon());
        var s = CrabKvSettings.Create(options.WithFallback(user));
        Assert.Equal(2, s.Partitions);
        Assert.Equal(TimeSpan.FromSeconds(1), s.SyncInterval);
    }

    [Fact]
    public void A_missing_crabkv_section_falls_back_to_the_reference()
    {
        var s = CrabKvSettings.Create(ConfigurationFactory.ParseString("akka.loglevel = INFO"));
        Assert.Equal("crabkv-data", s.DataDir);
    }

    [PresetFact("high-throughput.conf")]
    public void High_throughput_preset_is_write_back_with_a_100ms_sync() =>
        AssertPreset("high-throughput.conf", s =>
        {
            Assert.True(s.WriteBackEnabled);
            Assert.Equal(TimeSpan.FromMilliseconds(100), s.SyncInterval);
            Assert.True(s.CompressionEnabled);
            Assert.True(s.FlushInterval > TimeSpan.Zero);
        });

    [PresetFact("balanced.conf")]
    public void Balanced_preset_is_write_through_with_a_50ms_sync_and_compression() =>
        AssertPreset("balanced.conf", s =>
        {
            Assert.False(s.WriteBackEnabled);
            Assert.Equal(TimeSpan.FromMilliseconds(50), s.SyncInterval);
            Assert.True(s.CompressionEnabled);
        });

    [PresetFact("max-safety.conf")]
    public void Max_safety_preset_fsyncs_every_write_without_compression() =>
        AssertPreset("max-safety.conf", s =>
        {
            Assert.False(s.WriteBackEnabled);
            Assert.Equal(TimeSpan.Zero, s.SyncInterval);
            Assert.False(s.CompressionEnabled);
        });

    private static void AssertPreset(string file, Action<CrabKvSettings> check)
    {
        var text = File.ReadAllText(RepoPaths.Preset(file));
        var config = ConfigurationFactory.ParseString(text);
        Assert.True(config.HasPath("crabkv"), $"{file} has no crabkv section");
        var settings = CrabKvSettings.Create(config); // validates every value
        check(settings);
        // Layered over user settings the way WithCrabKv(hocon: ...) does, it still validates.
        check(CrabKvSettings.Create(config.WithFallback(ConfigurationFactory.ParseString("crabkv.data-dir = \"/tmp/x\"\ncrabkv.partitions = 2"))));
    }
}

/// <summary>Locates the repository (the directory holding CrabKv.Actors.sln) from the test binaries.</summary>
internal static class RepoPaths
{
    private static readonly Lazy<string> LazyRoot = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "CrabKv.Actors.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"CrabKv.Actors.sln not found above {AppContext.BaseDirectory}");
    });

    public static string Root => LazyRoot.Value;

    public static string Preset(string file) => Path.Combine(Root, "hocon", file);
}

/// <summary>A fact that is skipped (not failed) while the preset file has not been written yet.</summary>
public sealed class PresetFactAttribute : FactAttribute
{
    public PresetFactAttribute(string file)
    {
        if (!File.Exists(RepoPaths.Preset(file)))
        {
            Skip = $"hocon/{file} does not exist yet";
        }
    }
}
