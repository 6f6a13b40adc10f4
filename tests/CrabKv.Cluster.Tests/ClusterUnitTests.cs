using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using CrabKv.Actors;
using LWWStrings = Akka.DistributedData.LWWDictionary<string, string>;
using CrabKv.Cluster.Handoff;
using CrabKv.Cluster.Hosting;
using CrabKv.Cluster.Serialization;
using CrabKv.Cluster.Sharding;
using Xunit;

namespace CrabKv.Cluster.Tests;

/// <summary>
/// What needs no formed cluster: settings (reference → settings, options → HOCON → settings,
/// errors naming their key), the wire format of the cluster's messages, the message extractor's
/// shard ids, and the refusal of a data directory made with another partition count. The actor
/// system has the cluster provider but never joins.
/// </summary>
public sealed class ClusterUnitTests : TestKit
{
    private static readonly Config TestConfig = ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.cluster.roles = [crabkv]
        """).WithFallback(CrabKvClusterSettings.FullDefaultConfig());

    public ClusterUnitTests() : base(TestConfig)
    {
    }

    // ------------------------------------------------------------------ settings

    [Fact]
    public void Reference_defaults_are_64_partitions_on_role_crabkv_without_rebalancing()
    {
        var s = CrabKvClusterSettings.Create(ConfigurationFactory.Empty);
        Assert.Equal(new CrabKvClusterSettings
        {
            Partitions = 64,
            Role = "crabkv",
            TypeName = "crabkv-partition",
            EnsurePartitionsInterval = TimeSpan.FromSeconds(10),
            Rebalance = false,
            FanOutTimeout = TimeSpan.FromSeconds(60),
            MaxWaitingRequests = 10_000,
            MaxSimultaneousMoves = 2,
            HandoffRetryInterval = TimeSpan.FromSeconds(2),
            RegistryTimeout = TimeSpan.FromSeconds(5),
            LeaveDrainTimeout = TimeSpan.FromSeconds(60),
        }, s);
        var full = CrabKvClusterSettings.FullDefaultConfig();
        Assert.Equal("keep-majority", full.GetString("akka.cluster.split-brain-resolver.active-strategy"));
        Assert.Equal("crabkv", full.GetString("akka.cluster.split-brain-resolver.keep-majority.role"));
        Assert.Empty(full.GetStringList("akka.cluster.sharding.distributed-data.durable.keys"));
        Assert.Equal("crabkv-data", full.GetString("crabkv.data-dir")); // the store's reference is the fallback
        // The drain runs inside this phase: the phase must outlast it, or the node leaves mid-drain.
        Assert.True(full.GetTimeSpan("akka.coordinated-shutdown.phases.cluster-sharding-shutdown-region.timeout") > s.LeaveDrainTimeout);
    }

    [Fact]
    public void Options_emit_only_what_is_set_and_reach_the_settings()
    {
        Assert.Equal("", new CrabKvClusterOptions().ToHocon());
        var options = new CrabKvClusterOptions
        {
            Partitions = 16,
            Role = "kv",
            TypeName = "kv-part",
            EnsurePartitionsInterval = TimeSpan.Zero,
            Rebalance = true,
            FanOutTimeout = TimeSpan.FromMilliseconds(1500),
            MaxWaitingRequests = 5,
            MaxSimultaneousMoves = 3,
            HandoffRetryInterval = TimeSpan.FromMilliseconds(700),
            RegistryTimeout = TimeSpan.FromSeconds(4),
            LeaveDrainTimeout = TimeSpan.Zero,
        };
        var s = CrabKvClusterSettings.Create(ConfigurationFactory.ParseString(options.ToHocon()));
        Assert.Equal((3, TimeSpan.FromMilliseconds(700), TimeSpan.FromSeconds(4), TimeSpan.Zero),
            (s.MaxSimultaneousMoves, s.HandoffRetryInterval, s.RegistryTimeout, s.LeaveDrainTimeout));
        Assert.Equal((16, "kv", "kv-part", TimeSpan.Zero, true, TimeSpan.FromMilliseconds(1500), 5),
            (s.Partitions, s.Role, s.TypeName, s.EnsurePartitionsInterval, s.Rebalance, s.FanOutTimeout, s.MaxWaitingRequests));
    }

    [Theory]
    [InlineData("crabkv.cluster.partitions = 0", "cluster.partitions")]
    [InlineData("crabkv.cluster.partitions = 1025", "cluster.partitions")]
    [InlineData("crabkv.cluster.role = \"\"", "cluster.role")]
    [InlineData("crabkv.cluster.fan-out-timeout = 0s", "cluster.fan-out-timeout")]
    [InlineData("crabkv.cluster.max-simultaneous-moves = 0", "cluster.max-simultaneous-moves")]
    [InlineData("crabkv.cluster.handoff-retry-interval = 0s", "cluster.handoff-retry-interval")]
    [InlineData("crabkv.cluster.registry-timeout = 0s", "cluster.registry-timeout")]
    [InlineData("crabkv.cluster.ensure-partitions-interval = -1s", "cluster.ensure-partitions-interval")]
    public void Invalid_settings_are_refused_naming_the_key(string hocon, string key)
    {
        var e = Assert.Throws<CrabKvConfigurationException>(() => CrabKvClusterSettings.Create(ConfigurationFactory.ParseString(hocon)));
        Assert.Equal(key, e.Key);
        Assert.Contains("crabkv." + key, e.Message);
    }

    // ------------------------------------------------------------------ wire format

    public static TheoryData<string> ClusterMessageNames() => new() { "envelope-stats", "envelope-put", "envelope-stop", "query", "reply", "delete-copy", "error-moving", "error-unavailable", "start", "start-accepted", "start-refused" };

    private static object Sample(string name) => name switch
    {
        "envelope-stats" => new PartitionEnvelope(11, new GetStats(9)),
        "envelope-put" => new PartitionEnvelope(0, new Put("ключ-🦀", [0, 1, 0xFF], TimeSpan.FromSeconds(5), 3)),
        "envelope-stop" => new PartitionEnvelope(1023, StopPartition.Instance),
        "query" => new PartitionCountQuery(7),
        "delete-copy" => new DeletePartitionCopy(1023, "0123456789abcdef0123456789abcdef", long.MaxValue),
        "start" => new StartPartition(63),
        "start-accepted" => new StartPartitionAnswer(true),
        "start-refused" => new StartPartitionAnswer(false),
        "error-moving" => new PartitionEnvelope(3, new CrabKvError(CrabKvErrorCode.PartitionMoving, "moving", 5)),
        "error-unavailable" => new PartitionEnvelope(4, new CrabKvError(CrabKvErrorCode.PartitionUnavailable, "unavailable", 6)),
        _ => new PartitionCountReply(64),
    };

    [Theory]
    [MemberData(nameof(ClusterMessageNames))]
    public void Cluster_messages_round_trip_through_the_cluster_serializer(string name)
    {
        var sample = Sample(name);
        var serializer = Sys.Serialization.FindSerializerFor(sample);
        Assert.IsType<CrabKvClusterSerializer>(serializer);
        Assert.Equal(4243, serializer.Identifier);
        var bytes = serializer.ToBinary(sample);
        var back = Sys.Serialization.Deserialize(bytes, serializer.Identifier, Akka.Serialization.Serialization.ManifestFor(serializer, sample));
        if (sample is PartitionEnvelope e)
        {
            var b = Assert.IsType<PartitionEnvelope>(back);
            Assert.Equal(e.Partition, b.Partition);
            Assert.Equal(e.Message.GetType(), b.Message.GetType());
            if (e.Message is Put put)
            {
                var p = (Put)b.Message;
                Assert.Equal((put.Key, put.Ttl, put.RequestId), (p.Key, p.Ttl, p.RequestId));
                Assert.Equal(put.Value, p.Value);
            }
            else
            {
                Assert.Equal(e.Message, b.Message);
            }
        }
        else
        {
            Assert.Equal(sample, back);
        }
    }

    [Fact]
    public void Every_cluster_message_type_is_bound_to_the_cluster_serializer_and_bad_payloads_are_refused()
    {
        var types = typeof(ICrabKvClusterMessage).Assembly.GetTypes()
            .Where(t => typeof(ICrabKvClusterMessage).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false }).ToList();
        Assert.Equal(6, types.Count);
        Assert.All(types, t => Assert.IsType<CrabKvClusterSerializer>(Sys.Serialization.FindSerializerForType(t)));
        var serializer = (CrabKvClusterSerializer)Sys.Serialization.FindSerializerForType(typeof(PartitionEnvelope));
        Assert.Throws<SerializationException>(() => serializer.FromBinary([1], "ZZ"));
        Assert.Throws<SerializationException>(() => serializer.FromBinary([0x02, 0x02], "PE")); // truncated
        Assert.Throws<SerializationException>(() => serializer.FromBinary([0x02, 0x02], "pq")); // trailing bytes
    }

    // ------------------------------------------------------------------ shard ids

    [Fact]
    public void Shard_id_and_entity_id_are_the_partition_of_the_public_KeyPartitioner()
    {
        var extractor = new PartitionMessageExtractor(64);
        foreach (var key in Enumerable.Range(0, 500).Select(i => $"user:{i}"))
        {
            var id = extractor.EntityId(new Get(key))!;
            Assert.Equal(KeyPartitioner.PartitionOf(key, 64).ToString(), id);
            Assert.Equal(id, extractor.ShardId(id));
            Assert.Equal(id, extractor.EntityId(new Put(key, [], null)));
            Assert.Equal(id, extractor.EntityId(new Delete(key)));
        }
        var same = Enumerable.Range(0, 10_000).Select(i => $"k{i}").Where(k => KeyPartitioner.PartitionOf(k, 64) == 17).Take(3).ToList();
        Assert.Equal("17", extractor.EntityId(new PutBatch(same.Select(k => BatchEntry.Put(k, [1])).ToList())));
        Assert.Equal("0", extractor.EntityId(new PutBatch([BatchEntry.Put(same[0], [1]), BatchEntry.Put("k-other-" + same[0], [1]), BatchEntry.Put("zz", [1])])));
        Assert.Equal("0", extractor.EntityId(new Get("")));
        Assert.Equal("63", extractor.EntityId(new PartitionEnvelope(63, new Flush())));
        Assert.Null(extractor.EntityId(new PartitionEnvelope(64, new Flush())));
        Assert.Null(extractor.EntityId(new Flush())); // store-wide requests only travel in envelopes
        var inner = new GetStats(4);
        Assert.Same(inner, extractor.EntityMessage(new PartitionEnvelope(2, inner)));
        Assert.Equal((7, -1, -1), (extractor.PartitionOf("7"), extractor.PartitionOf("07"), extractor.PartitionOf("64")));
    }

    // ------------------------------------------------------------------ data directory

    [Fact]
    public void A_data_directory_made_with_another_partition_count_is_refused_at_start_naming_both()
    {
        var dir = Path.Combine(Path.GetTempPath(), "crabkv-cluster-dd-" + Guid.NewGuid().ToString("N"));
        try
        {
            DataDirectory.Open(dir, 5, 5).Dispose();
            var settings = CrabKvSettings.Create(ConfigurationFactory.ParseString($"crabkv.data-dir = \"{dir}\""));
            var e = Assert.Throws<CrabKvConfigurationException>(() =>
                CrabKvCluster.Start(Sys, settings, CrabKvClusterSettings.Create(ConfigurationFactory.ParseString("crabkv.cluster.partitions = 12"))));
            Assert.Equal("cluster.partitions", e.Key);
            Assert.Contains("is 12", e.Message);
            Assert.Contains("with 5 partitions", e.Message);
            DataDirectory.Open(dir, 5, 5).Dispose(); // the refused start released the directory's lock
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Start_on_a_system_created_without_the_CrabKv_configuration_still_binds_the_binary_serializers()
    {
        // No role: a client-only node, so no data directory is opened.
        var bare = ActorSystem.Create("bare", ConfigurationFactory.ParseString("""
            akka.loglevel = WARNING
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp.hostname = 127.0.0.1
            akka.remote.dot-netty.tcp.port = 0
            """));
        try
        {
            var node = CrabKvCluster.Start(bare);
            Assert.False(node.HostsPartitions);
            Assert.IsType<Actors.Serialization.CrabKvSerializer>(bare.Serialization.FindSerializerForType(typeof(Put)));
            Assert.IsType<CrabKvClusterSerializer>(bare.Serialization.FindSerializerForType(typeof(PartitionEnvelope)));
            Assert.IsNotType<Akka.Serialization.NewtonSoftJsonSerializer>(bare.Serialization.FindSerializerForType(typeof(Akka.DistributedData.LWWDictionary<string, string>)));
        }
        finally
        {
            await bare.Terminate().WaitAsync(TimeSpan.FromSeconds(60));
        }
    }

    // ------------------------------------------------------------------ node identity, holder registry

    [Fact]
    public void NODE_ID_is_created_once_durably_and_read_back_and_a_damaged_one_is_refused()
    {
        var dir = Path.Combine(Path.GetTempPath(), "crabkv-nodeid-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var id = NodeIdentity.LoadOrCreate(dir, Storage.Files.FileLayer.Default);
            Assert.True(Guid.TryParseExact(id, "N", out _));
            Assert.Equal(id, NodeIdentity.LoadOrCreate(dir, Storage.Files.FileLayer.Default));
            Assert.False(File.Exists(Path.Combine(dir, "NODE-ID.tmp")));

            // "Has data" means at least one segment: an empty p-NNN (recreated at every open) is not the data.
            var partition = Path.Combine(dir, "p-000");
            Assert.False(NodeIdentity.HasData(partition, Storage.Files.FileLayer.Default));
            Directory.CreateDirectory(partition);
            File.WriteAllText(Path.Combine(partition, "LOCK"), "");
            Assert.False(NodeIdentity.HasData(partition, Storage.Files.FileLayer.Default));
            File.WriteAllBytes(Path.Combine(partition, "seg-0000000001-0.data"), new byte[16]);
            Assert.True(NodeIdentity.HasData(partition, Storage.Files.FileLayer.Default));

            File.WriteAllText(Path.Combine(dir, "NODE-ID"), "not an id\n");
            var e = Assert.Throws<CrabKvConfigurationException>(() => NodeIdentity.LoadOrCreate(dir, Storage.Files.FileLayer.Default));
            Assert.Contains("NODE-ID", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Holder_registry_entries_round_trip_and_a_higher_epoch_wins_a_merge()
    {
        var cluster = Akka.Cluster.Cluster.Get(Sys);
        var self = cluster.SelfUniqueAddress;
        var other = new Akka.Cluster.UniqueAddress(new Address("akka.tcp", "x", "10.0.0.9", 2552), 7);
        var map = LWWStrings.Empty;
        Assert.Null(HolderRegistry.HolderOf(map, 3));
        map = HolderRegistry.SetHolder(map, self, 3, new Holder("node-a", 1));
        map = HolderRegistry.SetAddress(map, self, "node-a", new Address("akka.tcp", "crabkv", "127.0.0.1", 4711));
        Assert.Equal(new Holder("node-a", 1), HolderRegistry.HolderOf(map, 3));
        Assert.Equal(new Address("akka.tcp", "crabkv", "127.0.0.1", 4711), HolderRegistry.AddressOf(map, "node-a"));
        Assert.Equal([3], HolderRegistry.HeldBy(map, "node-a", 12));

        // Two replicas: one moves the partition to node-b at epoch 2, the other (stale) rewrites epoch 1.
        var moved = HolderRegistry.SetHolder(map, other, 3, new Holder("node-b", 2));
        var stale = HolderRegistry.SetHolder(map, self, 3, new Holder("node-a", 1));
        Assert.Equal(new Holder("node-b", 2), HolderRegistry.HolderOf(moved.Merge(stale), 3));
        Assert.Equal(new Holder("node-b", 2), HolderRegistry.HolderOf(stale.Merge(moved), 3));
    }

    [Fact]
    public void The_durable_copy_of_the_holder_registry_round_trips_and_a_damaged_one_is_refused_naming_the_line()
    {
        var dir = Path.Combine(Path.GetTempPath(), "crabkv-holders-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            Assert.Empty(RegistryCopy.Load(dir, CrabKv.Storage.Files.FileLayer.Default));
            var self = Akka.Cluster.Cluster.Get(Sys).SelfUniqueAddress;
            var map = HolderRegistry.SetHolder(LWWStrings.Empty, self, 3, new Holder("node-a", 4));
            map = HolderRegistry.SetHolder(map, self, 11, new Holder("node-b", 1));
            map = HolderRegistry.SetAddress(map, self, "node-a", new Address("akka.tcp", "crabkv", "127.0.0.1", 4711));
            var holders = RegistryCopy.Of(map, 12);
            Assert.Equal(2, holders.Count);
            RegistryCopy.Save(dir, CrabKv.Storage.Files.FileLayer.Default, holders);
            var back = RegistryCopy.Load(dir, CrabKv.Storage.Files.FileLayer.Default);
            Assert.True(RegistryCopy.SameAs(holders, back));
            Assert.Equal(new Holder("node-a", 4), back[3]);
            Assert.False(File.Exists(Path.Combine(dir, RegistryCopy.FileName + ".tmp")));

            File.AppendAllText(Path.Combine(dir, RegistryCopy.FileName), "p x node-c 2\n");
            var e = Assert.Throws<InvalidDataException>(() => RegistryCopy.Load(dir, CrabKv.Storage.Files.FileLayer.Default));
            Assert.Contains("line 4", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Reference_configuration_turns_the_DistributedData_durable_store_off()
    {
        Assert.Empty(CrabKvClusterSettings.FullDefaultConfig().GetStringList("akka.cluster.distributed-data.durable.keys"));
    }
}
