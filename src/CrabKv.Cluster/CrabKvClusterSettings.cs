using Akka.Actor;
using Akka.Cluster.Sharding;
using Akka.Cluster.Tools.Singleton;
using Akka.Configuration;
using Akka.DistributedData;
using CrabKv.Actors;

namespace CrabKv.Cluster;

/// <summary>
/// The <c>crabkv.cluster</c> section (hocon/crabkv.cluster.reference.conf), read and validated
/// in one place; every error names its key. The partitions themselves use the store's
/// <see cref="CrabKvSettings"/> (<c>crabkv.*</c>), with <see cref="Partitions"/> as their count.
/// </summary>
public sealed record CrabKvClusterSettings
{
    /// <summary>Partitions of the whole cluster (shard id = entity id = partition number).</summary>
    public required int Partitions { get; init; }

    /// <summary>Cluster role of the nodes that host partitions; other nodes get a proxy.</summary>
    public required string Role { get; init; }

    /// <summary>Type name of the shard region.</summary>
    public required string TypeName { get; init; }

    /// <summary>How often every partition is (re)started with <c>StartEntity</c>; zero = only when this node is Up.</summary>
    public required TimeSpan EnsurePartitionsInterval { get; init; }

    /// <summary>Whether sharding may move partitions between healthy nodes.</summary>
    public required bool Rebalance { get; init; }

    /// <summary>Longest wait of a store-wide request for each partition's answer.</summary>
    public required TimeSpan FanOutTimeout { get; init; }

    /// <summary>Requests held while the node checks the partition count and starts its region.</summary>
    public required int MaxWaitingRequests { get; init; }

    /// <summary>Partitions a rebalance round may move at once (rebalancing on); the next round starts when they have moved.</summary>
    public required int MaxSimultaneousMoves { get; init; }

    /// <summary>How long a partition waiting for its data (holder unreachable, transfer failed) waits before it looks again.</summary>
    public required TimeSpan HandoffRetryInterval { get; init; }

    /// <summary>Timeout of the holder registry's ReadMajority / WriteMajority.</summary>
    public required TimeSpan RegistryTimeout { get; init; }

    /// <summary>Longest wait of a leaving node for the new owners to pull the partitions it holds.</summary>
    public required TimeSpan LeaveDrainTimeout { get; init; }

    /// <summary>The embedded reference configuration (this section, split-brain resolver, serializer binding).</summary>
    public static Config DefaultConfig() =>
        ConfigurationFactory.FromResource<CrabKvClusterSettings>("CrabKv.Cluster.reference.conf");

    /// <summary>
    /// The reference configurations a cluster node needs, the cluster's on top of the store's and
    /// Akka's own for Cluster.Sharding, the cluster singleton (the shard coordinator) and
    /// DistributedData (the holder registry): give it to the actor system at creation (the
    /// downing provider is read when the cluster starts, serializer bindings when the system is
    /// created). Without the DistributedData bindings the replicator falls back to JSON for its
    /// envelopes and digests, which is slow and fails on the registry's dictionary.
    /// </summary>
    public static Config FullDefaultConfig() => DefaultConfig()
        .WithFallback(CrabKvSettings.DefaultConfig())
        .WithFallback(ClusterSharding.DefaultConfig())
        .WithFallback(ClusterSingleton.DefaultConfig())
        .WithFallback(DistributedData.DefaultConfig());

    /// <summary>Every known key under <c>crabkv</c> for a cluster node: the store's reference and the cluster's.</summary>
    public static IReadOnlyCollection<string> KnownKeys => ReferenceKeys.Value;

    private static readonly Lazy<HashSet<string>> ReferenceKeys = new(() =>
        new HashSet<string>(CrabKvConfig.KeysUnderCrabKv(DefaultConfig()).Concat(CrabKvSettings.KnownKeys), StringComparer.Ordinal));

    /// <summary>Reads the settings of an actor system (its config falls back to the reference).</summary>
    public static CrabKvClusterSettings Create(ActorSystem system) => Create(system.Settings.Config);

    /// <summary>
    /// Reads and validates <c>crabkv.cluster</c> of <paramref name="config"/> (with the reference as
    /// fallback), and refuses any key under <c>crabkv</c> that neither the store's nor the
    /// cluster's reference knows, naming the closest known one.
    /// </summary>
    /// <exception cref="CrabKvConfigurationException">A key is missing, out of range or unknown; the message names it.</exception>
    public static CrabKvClusterSettings Create(Config config)
    {
        var root = (config ?? Config.Empty).WithFallback(DefaultConfig());
        if (!root.HasPath("crabkv.cluster"))
        {
            throw new CrabKvConfigurationException("cluster", "the section is missing");
        }
        // The whole crabkv tree: the store's keys and the cluster's (the store's own check leaves
        // crabkv.cluster to this one).
        CrabKvConfig.CheckKeys(root.WithFallback(CrabKvSettings.DefaultConfig()), KnownKeys, CrabKvSettings.DispatcherSections);
        var c = root.GetConfig("crabkv.cluster");

        T Read<T>(string key, Func<T> read)
        {
            if (!c.HasPath(key))
            {
                throw new CrabKvConfigurationException("cluster." + key, "is missing");
            }
            try
            {
                return read();
            }
            catch (Exception e) when (e is not CrabKvConfigurationException)
            {
                throw new CrabKvConfigurationException("cluster." + key, $"has a value that cannot be read ({e.Message})");
            }
        }
        string Str(string key)
        {
            var v = Read(key, () => c.GetString(key));
            if (string.IsNullOrWhiteSpace(v))
            {
                throw new CrabKvConfigurationException("cluster." + key, "must not be empty");
            }
            return v;
        }
        TimeSpan Duration(string key, bool allowZero)
        {
            var v = Read(key, () => c.GetTimeSpan(key, null, allowInfinite: false));
            if (v < TimeSpan.Zero || (!allowZero && v == TimeSpan.Zero))
            {
                throw new CrabKvConfigurationException("cluster." + key, allowZero ? "must not be negative" : "must be positive");
            }
            return v;
        }

        var partitions = Read("partitions", () => c.GetInt("partitions"));
        if (partitions < 1 || partitions > DataDirectory.MaxPartitions)
        {
            throw new CrabKvConfigurationException("cluster.partitions", $"is {partitions}; it must be 1 .. {DataDirectory.MaxPartitions}");
        }
        var waiting = Read("max-waiting-requests", () => c.GetInt("max-waiting-requests"));
        if (waiting < 0)
        {
            throw new CrabKvConfigurationException("cluster.max-waiting-requests", $"is {waiting}; it must not be negative");
        }
        var moves = Read("max-simultaneous-moves", () => c.GetInt("max-simultaneous-moves"));
        if (moves < 1)
        {
            throw new CrabKvConfigurationException("cluster.max-simultaneous-moves", $"is {moves}; it must be at least 1");
        }
        return new CrabKvClusterSettings
        {
            MaxSimultaneousMoves = moves,
            HandoffRetryInterval = Duration("handoff-retry-interval", allowZero: false),
            RegistryTimeout = Duration("registry-timeout", allowZero: false),
            LeaveDrainTimeout = Duration("leave-drain-timeout", allowZero: true),
            Partitions = partitions,
            Role = Str("role"),
            TypeName = Str("type-name"),
            EnsurePartitionsInterval = Duration("ensure-partitions-interval", allowZero: true),
            Rebalance = Read("rebalance", () => c.GetBoolean("rebalance")),
            FanOutTimeout = Duration("fan-out-timeout", allowZero: false),
            MaxWaitingRequests = waiting,
        };
    }
}
