using Akka.Actor;
using Akka.Configuration;
using CrabKv.Storage;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Files;
using CrabKv.Storage.Segments;

namespace CrabKv.Actors;

/// <summary>
/// Immutable settings of a CrabKv node, built from the <c>crabkv</c> HOCON section in one
/// place (<see cref="Create(Config)"/>) and validated there: a bad value fails with a
/// <see cref="CrabKvConfigurationException"/> naming the key, and so does a key under
/// <c>crabkv</c> that the reference configuration does not have ("unknown key
/// crabkv.sync-intervall; did you mean crabkv.sync-interval?"). Keys under <c>crabkv.cluster</c>
/// are left to CrabKv.Cluster's settings; those of the dispatcher sections are Akka's.
/// </summary>
public sealed record CrabKvSettings
{
    /// <summary>Data directory (partitions live in sub-directories).</summary>
    public required string DataDir { get; init; }

    private readonly int _partitions;
    private readonly int _configuredPartitions;

    /// <summary>
    /// Number of local partitions (resolved: never 0). <c>CrabKvStore.Start</c>
    /// settles it against the data directory: with <c>crabkv.partitions = 0</c> a directory
    /// keeps the count it was created with. Setting it (an initializer or <c>with</c>) makes it
    /// an explicit count: <see cref="ConfiguredPartitions"/> follows it.
    /// </summary>
    public required int Partitions
    {
        get => _partitions;
        init
        {
            _partitions = value;
            _configuredPartitions = value;
        }
    }

    /// <summary>
    /// <c>crabkv.partitions</c> as configured: 0 means "one per core for a new data directory,
    /// the recorded count for an existing one"; any other value is explicit, and a data
    /// directory created with another count is refused. Set it after <see cref="Partitions"/>.
    /// </summary>
    public int ConfiguredPartitions
    {
        get => _configuredPartitions;
        init => _configuredPartitions = value;
    }

    /// <summary>Zero: acknowledge after fsync (group commit). Positive: fsync on a SyncTick timer.</summary>
    public required TimeSpan SyncInterval { get; init; }

    /// <summary>Write-back caching on.</summary>
    public required bool WriteBackEnabled { get; init; }

    /// <summary>Write-back flush interval.</summary>
    public required TimeSpan FlushInterval { get; init; }

    /// <summary>
    /// Write-back byte limit: the node budget (<c>crabkv.write-back.max-dirty-bytes</c>), or one
    /// partition's share of it after <see cref="PerPartition"/>.
    /// </summary>
    public required long MaxDirtyBytes { get; init; }

    /// <summary>
    /// The write-back limit in force: a flush is one atomic batch and a batch must fit one
    /// segment, so at most one segment's worth (<see cref="WriteLimits.EffectiveMaxDirtyBytes"/>).
    /// </summary>
    public long EffectiveMaxDirtyBytes => ToWriteLimits().EffectiveMaxDirtyBytes;

    /// <summary>Read cache entries (0 = off): the node budget, or one partition's share after <see cref="PerPartition"/>.</summary>
    public required int CacheMaxEntries { get; init; }

    /// <summary>Read cache bytes: the node budget, or one partition's share after <see cref="PerPartition"/>.</summary>
    public required long CacheMaxBytes { get; init; }

    /// <summary>Compression on.</summary>
    public required bool CompressionEnabled { get; init; }

    /// <summary>Smallest value considered for compression.</summary>
    public required int CompressionMinValueBytes { get; init; }

    /// <summary>Automatic compaction on.</summary>
    public required bool AutoCompaction { get; init; }

    /// <summary>Compaction thresholds.</summary>
    public required CompactionThresholds Compaction { get; init; }

    /// <summary>Relocations a partition applies per message when it installs a finished merge (requests are served between steps).</summary>
    public int CompactionInstallStep { get; init; } = 32_768;

    /// <summary>Default TTL (null = none).</summary>
    public required TimeSpan? DefaultTtl { get; init; }

    /// <summary>Active TTL sweep interval (zero = off).</summary>
    public required TimeSpan TtlSweepInterval { get; init; }

    /// <summary>Key limit in UTF-8 bytes.</summary>
    public required int MaxKeyBytes { get; init; }

    /// <summary>Value limit in bytes.</summary>
    public required int MaxValueBytes { get; init; }

    /// <summary>Segment roll size.</summary>
    public required long SegmentMaxBytes { get; init; }

    /// <summary>Append buffers: the node budget (<c>crabkv.segment.write-buffer</c>), or one partition's buffer after <see cref="PerPartition"/>.</summary>
    public required int WriteBufferBytes { get; init; }

    /// <summary>
    /// Preallocated active-segment bytes (<c>crabkv.segment.preallocate</c>): the node budget, or
    /// one partition's preallocation step after <see cref="PerPartition"/>. 0 = no preallocation.
    /// </summary>
    public long SegmentPreallocateBytes { get; init; } = DefaultPreallocateBudget;

    /// <summary>Default of <c>crabkv.segment.preallocate</c>: 128 MiB per node.</summary>
    public const long DefaultPreallocateBudget = 128L << 20;

    /// <summary>
    /// How many partitions the node budgets were divided among: 1 for node settings (the
    /// budgets as configured), the partition count for the settings a partition runs with
    /// (<see cref="PerPartition"/>).
    /// </summary>
    public int BudgetShare { get; init; } = 1;

    /// <summary>Config path of the I/O dispatcher.</summary>
    public required string IoDispatcher { get; init; }

    /// <summary>Config path of the dispatcher running merges (apart from the writers, so a merge never delays a write).</summary>
    public required string CompactionDispatcher { get; init; }

    /// <summary>Default client timeout.</summary>
    public required TimeSpan ClientTimeout { get; init; }

    /// <summary>
    /// The file system every partition's WAL writer and compactor work through (not
    /// configurable from HOCON). Default <see cref="FileLayer.Default"/>; tests put a wrapper
    /// here that makes writes or fsyncs fail, parks them, or simulates a power cut.
    /// </summary>
    public FileLayer Files { get; init; } = FileLayer.Default;

    /// <summary>The embedded reference configuration (crabkv section and its dispatcher).</summary>
    public static Config DefaultConfig() =>
        ConfigurationFactory.FromResource<CrabKvSettings>("CrabKv.Actors.reference.conf");

    /// <summary>Every key of the reference configuration under <c>crabkv</c> (the known keys of <see cref="CrabKvConfig.CheckKeys"/>).</summary>
    public static IReadOnlyCollection<string> KnownKeys => ReferenceKeys.Value;

    private static readonly Lazy<HashSet<string>> ReferenceKeys = new(() => new HashSet<string>(CrabKvConfig.KeysUnderCrabKv(DefaultConfig()), StringComparer.Ordinal));

    /// <summary>
    /// Sections under <c>crabkv</c> whose keys are not the store's: the dispatcher configurations
    /// (Akka's keys) and <c>crabkv.cluster</c> (checked by CrabKv.Cluster's settings).
    /// </summary>
    internal static readonly string[] DispatcherSections = ["crabkv.io-dispatcher-config", "crabkv.compaction-dispatcher-config"];

    private static readonly string[] StoreOpenSections = [.. DispatcherSections, "crabkv.cluster"];

    /// <summary>Reads the settings of an actor system (its config falls back to the reference).</summary>
    public static CrabKvSettings Create(ActorSystem system) => Create(system.Settings.Config);

    /// <summary>Reads and validates the <c>crabkv</c> section of <paramref name="config"/> (with the reference as fallback).</summary>
    public static CrabKvSettings Create(Config config)
    {
        var root = config.WithFallback(DefaultConfig());
        if (!root.HasPath("crabkv"))
        {
            throw new CrabKvConfigurationException("crabkv", "the section is missing");
        }
        CrabKvConfig.CheckKeys(root, ReferenceKeys.Value, StoreOpenSections);
        var c = root.GetConfig("crabkv");

        string Str(string key)
        {
            var v = Read(key, () => c.GetString(key));
            if (string.IsNullOrWhiteSpace(v))
            {
                throw new CrabKvConfigurationException(key, "must not be empty");
            }
            return v;
        }
        long Bytes(string key, long min, long max)
        {
            var v = Read(key, () => c.GetByteSize(key) ?? throw new FormatException("not a size"));
            if (v < min || v > max)
            {
                throw new CrabKvConfigurationException(key, $"is {v} bytes; it must be between {min} and {max}");
            }
            return v;
        }
        TimeSpan Duration(string key, bool allowZero)
        {
            var v = Read(key, () => c.GetTimeSpan(key, null, allowInfinite: false));
            if (v < TimeSpan.Zero || (!allowZero && v == TimeSpan.Zero))
            {
                throw new CrabKvConfigurationException(key, allowZero ? "must not be negative" : "must be positive");
            }
            return v;
        }
        long Count(string key, long min, long max)
        {
            var v = Read(key, () => c.GetLong(key));
            if (v < min || v > max)
            {
                throw new CrabKvConfigurationException(key, $"is {v}; it must be between {min} and {max}");
            }
            return v;
        }
        bool Bool(string key) => Read(key, () => c.GetBoolean(key));
        T Read<T>(string key, Func<T> read)
        {
            if (!c.HasPath(key))
            {
                throw new CrabKvConfigurationException(key, "is missing");
            }
            try
            {
                return read();
            }
            catch (Exception e) when (e is not CrabKvConfigurationException)
            {
                throw new CrabKvConfigurationException(key, $"has a value that cannot be read ({e.Message})");
            }
        }

        var partitions = Read("partitions", () => c.GetInt("partitions"));
        if (partitions < 0 || partitions > 1024)
        {
            throw new CrabKvConfigurationException("partitions", $"is {partitions}; it must be 0 (one per core) .. 1024");
        }
        var ratio = Read("compaction.stale-ratio", () => c.GetDouble("compaction.stale-ratio"));
        if (!(ratio > 0 && ratio <= 1))
        {
            throw new CrabKvConfigurationException("compaction.stale-ratio", $"is {ratio}; it must be in (0, 1]");
        }
        var installStep = Read("compaction.install-step", () => c.GetLong("compaction.install-step"));
        if (installStep is < 1 or > 1 << 24)
        {
            throw new CrabKvConfigurationException("compaction.install-step", $"is {installStep}; it must be 1 .. {1 << 24} keys");
        }
        var defaultTtl = Duration("default-ttl", allowZero: true);
        var ioDispatcher = Str("io-dispatcher");
        if (!root.HasPath(ioDispatcher))
        {
            throw new CrabKvConfigurationException("io-dispatcher", $"names '{ioDispatcher}', which is not declared in the configuration");
        }
        var compactionDispatcher = Str("compaction-dispatcher");
        if (!root.HasPath(compactionDispatcher))
        {
            throw new CrabKvConfigurationException("compaction-dispatcher", $"names '{compactionDispatcher}', which is not declared in the configuration");
        }
        foreach (var (setting, dispatcher) in new[] { ("io-dispatcher", ioDispatcher), ("compaction-dispatcher", compactionDispatcher) })
        {
            // Akka would refuse a pool of no thread only when the first actor starts on it, after the node started.
            var threads = dispatcher + ".dedicated-thread-pool.thread-count";
            if (root.HasPath(threads) && (!int.TryParse(root.GetString(threads), out var n) || n < 1))
            {
                throw new CrabKvConfigurationException(setting, $"names '{dispatcher}', whose dedicated-thread-pool.thread-count is '{root.GetString(threads)}'; it must be at least 1");
            }
        }
        return new CrabKvSettings
        {
            DataDir = Str("data-dir"),
            Partitions = partitions == 0 ? Math.Min(Environment.ProcessorCount, 1024) : partitions,
            ConfiguredPartitions = partitions,
            SyncInterval = Duration("sync-interval", allowZero: true),
            WriteBackEnabled = Bool("write-back.enabled"),
            FlushInterval = Duration("write-back.flush-interval", allowZero: false),
            MaxDirtyBytes = Bytes("write-back.max-dirty-bytes", 4096, 1L << 40),
            CacheMaxEntries = (int)Count("cache.max-entries", 0, int.MaxValue),
            CacheMaxBytes = Bytes("cache.max-bytes", 0, 1L << 40),
            CompressionEnabled = Bool("compression.enabled"),
            CompressionMinValueBytes = (int)Bytes("compression.min-value-bytes", 0, int.MaxValue),
            AutoCompaction = Bool("compaction.auto"),
            Compaction = new CompactionThresholds(ratio, Bytes("compaction.min-total-bytes", 0, long.MaxValue), Bytes("compaction.max-stale-bytes", 1, long.MaxValue)),
            CompactionInstallStep = (int)installStep,
            DefaultTtl = defaultTtl == TimeSpan.Zero ? null : defaultTtl,
            TtlSweepInterval = Duration("ttl-sweep-interval", allowZero: true),
            MaxKeyBytes = (int)Bytes("limits.max-key-bytes", 1, Storage.Format.FormatConstants.MaxKeyBytes),
            MaxValueBytes = (int)Bytes("limits.max-value-bytes", 0, Storage.Format.FormatConstants.MaxValueBytes),
            SegmentMaxBytes = Bytes("segment.max-bytes", 4096, Storage.Format.FormatConstants.MaxSegmentBytes),
            WriteBufferBytes = (int)Bytes("segment.write-buffer", 4096, 1L << 30),
            SegmentPreallocateBytes = Bytes("segment.preallocate", 0, 1L << 40),
            IoDispatcher = ioDispatcher,
            CompactionDispatcher = compactionDispatcher,
            ClientTimeout = Duration("client-timeout", allowZero: false),
        };
    }

    /// <summary>The limits every write to a partition is checked against.</summary>
    public WriteLimits ToWriteLimits() => new(MaxKeyBytes, MaxValueBytes, SegmentMaxBytes, DefaultTtl, WriteBackEnabled ? MaxDirtyBytes : null);

    /// <summary>
    /// How a partition's WAL writer writes its active segment: <see cref="SegmentPreallocateBytes"/>
    /// is the preallocation step (rounded down to 256 KiB; the segment reserves another step as it
    /// grows, up to its roll size).
    /// </summary>
    public LogSettings ToLogSettings() =>
        new(SegmentMaxBytes, WriteBufferBytes, Preallocate: SegmentPreallocateBytes >= SegmentWriter.ZeroFillStep, CompressionEnabled, CompressionMinValueBytes)
        {
            PreallocateStepBytes = SegmentPreallocateBytes,
        };

    /// <summary>Smallest write buffer a partition gets from the <c>segment.write-buffer</c> budget (unless the budget itself is smaller).</summary>
    public const int MinPartitionWriteBuffer = 64 << 10;

    /// <summary>Smallest write-back share a partition gets (unless the budget itself is smaller).</summary>
    public const long MinPartitionDirtyBytes = 64 << 10;

    /// <summary>
    /// The settings one of <paramref name="partitions"/> partitions runs with: the node budgets
    /// (<c>cache.max-bytes</c>, <c>cache.max-entries</c>, <c>write-back.max-dirty-bytes</c>,
    /// <c>segment.write-buffer</c>, <c>segment.preallocate</c>) divided by the partition count,
    /// with floors:
    /// <list type="bullet">
    /// <item>cache bytes: budget / n; cache entries: budget / n, at least 1 unless the budget is 0 (off);</item>
    /// <item>dirty bytes: budget / n, at least one largest write (2 x max-key-bytes + max-value-bytes + 64)
    /// and 64 KiB, never more than the budget: any valid write can still be buffered;</item>
    /// <item>write buffer: budget / n, at least 64 KiB (never more than the budget);</item>
    /// <item>preallocation: budget / n rounded down to 256 KiB (the zero-fill step), 0 below that;
    /// the active segment preallocates that much and another step as it grows.</item>
    /// </list>
    /// Every place that starts partitions (the single-node store, the cluster node) calls this once.
    /// </summary>
    /// <exception cref="InvalidOperationException">The settings are already one partition's share.</exception>
    public CrabKvSettings PerPartition(int partitions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        if (BudgetShare != 1)
        {
            throw new InvalidOperationException($"These settings are already one partition's share of {BudgetShare}.");
        }
        var largestWrite = Storage.Caches.WriteBackBuffer.EntryOverhead + 2L * MaxKeyBytes + MaxValueBytes;
        var preallocate = SegmentPreallocateBytes / partitions / SegmentWriter.ZeroFillStep * SegmentWriter.ZeroFillStep;
        return this with
        {
            CacheMaxBytes = CacheMaxBytes / partitions,
            CacheMaxEntries = CacheMaxEntries == 0 ? 0 : Math.Max(1, CacheMaxEntries / partitions),
            MaxDirtyBytes = Math.Max(MaxDirtyBytes / partitions, Math.Min(MaxDirtyBytes, Math.Max(largestWrite, MinPartitionDirtyBytes))),
            WriteBufferBytes = Math.Max(WriteBufferBytes / partitions, Math.Min(WriteBufferBytes, MinPartitionWriteBuffer)),
            SegmentPreallocateBytes = preallocate,
            BudgetShare = partitions,
        };
    }

    /// <summary>
    /// These node settings with the preallocation budget (<c>crabkv.segment.preallocate</c>) at
    /// most a quarter of <paramref name="freeBytes"/>, the free space of the disk that holds the
    /// data directory. Preallocation only makes syncs cheaper; on a small disk the configured
    /// budget (128 MiB by default) would fill it before the first write, and partitions would
    /// fail to open for want of space for their LOCK file. <paramref name="note"/> says what was
    /// lowered, or is null when nothing was.
    /// </summary>
    public CrabKvSettings FitPreallocation(long freeBytes, out string? note)
    {
        note = null;
        var fit = Math.Max(0, freeBytes / 4);
        if (BudgetShare != 1 || SegmentPreallocateBytes <= fit)
        {
            return this;
        }
        static string MiB(long bytes) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{bytes / 1048576.0:0.#} MiB");
        note = $"crabkv.segment.preallocate lowered from {MiB(SegmentPreallocateBytes)} to {MiB(fit)}, a quarter of the " +
               $"{MiB(Math.Max(0, freeBytes))} free on the disk of '{DataDir}' (preallocation only makes syncs cheaper; " +
               "below 256 KiB per partition there is none)";
        return this with { SegmentPreallocateBytes = fit };
    }

    /// <summary>Free bytes for this process on the disk that holds <paramref name="path"/> (its nearest existing ancestor); <see cref="long.MaxValue"/> when unknown.</summary>
    public static long FreeBytesAt(string path)
    {
        try
        {
            var existing = Path.GetFullPath(path);
            while (!Directory.Exists(existing) && Path.GetDirectoryName(existing) is { } parent)
            {
                existing = parent;
            }
            return new DriveInfo(existing).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return long.MaxValue;
        }
    }

    /// <summary>The engine options one partition uses.</summary>
    public StoreOptions ToStoreOptions() => new()
    {
        MaxSegmentBytes = SegmentMaxBytes,
        WriteBufferBytes = WriteBufferBytes,
        MaxKeyBytes = MaxKeyBytes,
        MaxValueBytes = MaxValueBytes,
        Compression = CompressionEnabled,
        CompressionMinValueBytes = CompressionMinValueBytes,
        DefaultTtl = DefaultTtl,
        Compaction = Compaction,
        AutoCompact = AutoCompaction,
        ReadCacheEntries = CacheMaxEntries,
        ReadCacheBytes = CacheMaxBytes,
        WriteBack = WriteBackEnabled,
        MaxDirtyBytes = MaxDirtyBytes,
    };
}

/// <summary>
/// The CrabKv configuration is invalid: a setting of the <c>crabkv</c> section is missing or out
/// of range, a key is unknown (<see cref="UnknownKey"/>, with the closest known one in
/// <see cref="Suggestion"/>), or a HOCON file has a syntax error (the message names the file and line).
/// </summary>
public sealed class CrabKvConfigurationException : Exception
{
    /// <summary>A setting <c>crabkv.</c><paramref name="key"/> that is missing or wrong: "Invalid CrabKv configuration: crabkv.KEY PROBLEM."</summary>
    public CrabKvConfigurationException(string key, string problem)
        : base($"Invalid CrabKv configuration: crabkv.{key} {problem}.")
    {
        Key = key;
    }

    /// <summary>Any other configuration error (syntax, unknown key, unreadable file), with its whole message.</summary>
    public CrabKvConfigurationException(string message, Exception? innerException)
        : base(message, innerException)
    {
        Key = "";
    }

    /// <summary>The offending key, relative to <c>crabkv</c> ("" when the error is not about one setting).</summary>
    public string Key { get; init; }

    /// <summary>The unknown key (full path, e.g. <c>crabkv.sync-intervall</c>) when that is the error.</summary>
    public string? UnknownKey { get; init; }

    /// <summary>The known key closest to <see cref="UnknownKey"/> (e.g. <c>crabkv.sync-interval</c>).</summary>
    public string? Suggestion { get; init; }
}
