using System.Collections;
using System.Reflection;
using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using CrabKv.Actors.Serialization;
using CrabKv.Actors.Tests.Support;
using CrabKv.Actors.Transfer;
using CrabKv.Storage.Segments;
using CrabKv.Storage.Transfer;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// The wire format (CrabKvSerializer): every public message is bound to it and round-trips
/// with every field; malformed payloads fail with SerializationException; a 16 MiB value
/// crosses a real remote connection.
/// </summary>
public sealed class SerializationTests : TestKit
{
    private const int MiB = 1 << 20;

    private static readonly Config TestConfig = ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        """).WithFallback(CrabKvSettings.DefaultConfig());

    /// <summary>Messages that implement ICrabKvMessage but never cross the network.</summary>
    private static readonly HashSet<string> LocalOnly = ["GetPartitions", "PartitionRefs"];

    public SerializationTests() : base(TestConfig)
    {
    }

    private CrabKvSerializer Serializer => (CrabKvSerializer)Sys.Serialization.FindSerializerForType(typeof(Put));

    // ------------------------------------------------------------------ samples

    private static readonly byte[] SmallValue = [0, 1, 2, 0xFF, 0x80];

    private static CompactionOutcome Outcome(int seed) =>
        new(3 + seed, 2 + seed, 64L * MiB + seed, 1_234_567 + seed, 98_765 + seed, TimeSpan.FromMilliseconds(1234.5678 + seed));

    /// <summary>A PartitionStats whose every property is set, by reflection, to a distinct non-default value.</summary>
    private static PartitionStats FullStats(int seed)
    {
        var stats = new PartitionStats();
        var i = 0;
        foreach (var p in typeof(PartitionStats).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            i++;
            object value = p.PropertyType switch
            {
                var t when t == typeof(int) => 1000 * seed + i,
                var t when t == typeof(long) => (long)int.MaxValue * (seed + 1) + i,
                var t when t == typeof(double) => 0.25 + i / 1000.0,
                var t when t == typeof(bool) => true,
                var t when t == typeof(string) => $"disk full on p-{seed:D3} — ünïcödé",
                var t when t == typeof(SegmentId) => SegmentId.From((uint)(77 + seed), 3),
                var t when t == typeof(CompactionOutcome) => Outcome(seed),
                var t when t == typeof(TimeSpan) => TimeSpan.FromTicks(123_456_789 + seed),
                var t when t == typeof(RecoveryMode) => (RecoveryMode)(1 + seed % 3),
                var t => throw new InvalidOperationException($"PartitionStats.{p.Name} has type {t.Name}: give it a sample value here."),
            };
            p.SetValue(stats, value);
        }
        return stats;
    }

    /// <summary>A NodeStats with every field set to a non-default value.</summary>
    private static NodeStats FullNode(int seed) => new()
    {
        Node = $"akka.tcp://crabkv@127.0.0.{seed + 1}:2552",
        Version = $"1.{seed}.0+abcdef — ünïcödé",
        Uptime = TimeSpan.FromSeconds(3600.5 + seed),
        ProcessId = 4321 + seed,
        WorkingSetBytes = 5L * int.MaxValue + seed,
        GcHeapBytes = 123_456_789 + seed,
        Configuration = [new("sync-interval", "0"), new("write-back.enabled", seed % 2 == 0 ? "on" : "off"), new("data-dir", "/data/ключ"), new("", "")],
    };

    /// <summary>Several samples of every public message, with non-default values in every field.</summary>
    public static IReadOnlyList<ICrabKvMessage> Samples { get; } =
    [
        new Put("user:42", SmallValue, TimeSpan.FromMilliseconds(1500), 17),
        new Put("ключ-🦀-キー", [], null, -1),
        new Put("k", null!, TimeSpan.FromTicks(1), long.MaxValue),
        new Put("", new byte[1000], TimeSpan.MaxValue, long.MinValue),
        new Get("user:42", 99),
        new Get("🦀", 0),
        new Delete("user:42", 123_456_789_012),
        new PutBatch(
        [
            BatchEntry.Put("a", SmallValue, TimeSpan.FromHours(2)),
            BatchEntry.Delete("b"),
            BatchEntry.Put("ü", []),
            BatchEntry.Put("a", [9], null),
        ], 5),
        new PutBatch([], 6),
        new PutBatch(Enumerable.Range(0, 2000).Select(i => BatchEntry.Put($"key:{i:D8}", new byte[i % 50], i % 3 == 0 ? null : TimeSpan.FromSeconds(i))).ToArray(), 7),
        new Flush(8),
        new Compact(9),
        new CompactAndShutdown(10),
        new GetStats(11),
        new Shutdown(12),
        new PutOk(13),
        new GetResult("user:42", true, SmallValue, 14),
        new GetResult("user:42", true, [], 15),
        new GetResult("missing", false, null, 16),
        new DeleteOk(true, 17),
        new DeleteOk(false, 18),
        new PutBatchOk(2000, 19),
        new FlushOk(20),
        new CompactOk(Outcome(1), 21),
        new StoreStats([FullStats(0), FullStats(1), FullStats(2), new PartitionStats()], 22),
        new StoreStats([], 23),
        new StoreStats([FullStats(3), FullStats(4)], [FullNode(0), FullNode(1), new NodeStats()], 26),
        new StoreStats([], [FullNode(2) with { Configuration = [] }], 27),
        new ShutdownOk(24),
        new CrabKvError(CrabKvErrorCode.ValueTooLarge, "Value of 17 MiB is larger than limits.max-value-bytes", 25),
        StopPartition.Instance,
        new PartitionStopped(63),
        new CompactionCompleted(5, Outcome(2)),
        new CompactionProgressed(6, 0.4375),
        new PartitionFailed(7, "No space left on device — /data/p-007"),
        new TransferManifestRequest(7, long.MaxValue),
        new TransferManifest(-3, 7, 1,
        [
            new TransferFile("seg-00000001-000000.data", 64L * MiB, ulong.MaxValue),
            new TransferFile("seg-00000002-000001.hint", 16, 0),
            new TransferFile("seg-00000002-000001.data", (long)int.MaxValue + 5, 0x0123_4567_89AB_CDEF),
        ]),
        new TransferManifest(4, 0, 1, []),
        new ChunkRequest(5, "seg-00000001-000000.data", 3L * MiB, MiB),
        new ChunkData(6, "seg-00000001-000000.data", 5L * MiB, SmallValue),
        new ChunkData(6, "seg-00000002-000001.hint", 0, []),
        new TransferDone(long.MinValue),
        new TransferRefused(8, "Data directory '/data/p-007' is in use — ünïcödé"),
        new TransferCompleted(9, 100L * MiB, TimeSpan.FromMilliseconds(812.25)),
        new TransferFailed(10, "no answer after 4 waits of 5s"),
        new TransferProgress(11, 12, 3 * MiB, 100L * MiB),
        new ProtocolBatch([new Put("b:1", SmallValue, TimeSpan.FromSeconds(3), 901), new Get("b:2", 902), new Delete("b:3", 903),
            new PutBatch([new BatchEntry("b:4", [1, 2]), BatchEntry.Delete("b:5")], 904)]),
        new ProtocolBatch([new PutOk(901), new GetResult("b:2", true, SmallValue, 902), new DeleteOk(false, 903),
            new CrabKvError(CrabKvErrorCode.Overloaded, "busy", 904)]),
        new ProtocolBatch([]),
    ];

    public static TheoryData<int, string> SampleCases()
    {
        var data = new TheoryData<int, string>();
        for (var i = 0; i < Samples.Count; i++)
        {
            data.Add(i, Samples[i].GetType().Name);
        }
        return data;
    }

    /// <summary>Every concrete ICrabKvMessage of CrabKv.Actors that may cross the network.</summary>
    private static IEnumerable<Type> NetworkMessageTypes() =>
        typeof(ICrabKvMessage).Assembly.GetTypes()
            .Where(t => typeof(ICrabKvMessage).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false })
            .Where(t => !typeof(INoSerializationVerificationNeeded).IsAssignableFrom(t) && !LocalOnly.Contains(t.Name));

    // ------------------------------------------------------------------ bindings

    [Fact]
    public void Every_network_message_type_is_bound_to_the_CrabKv_serializer_not_the_JSON_fallback()
    {
        var types = NetworkMessageTypes().ToList();
        Assert.True(types.Count >= 23, $"found only {types.Count} message types");
        foreach (var type in types)
        {
            var serializer = Sys.Serialization.FindSerializerForType(type);
            Assert.True(serializer is CrabKvSerializer, $"{type.Name} is serialized by {serializer.GetType().Name}");
            Assert.Equal(CrabKvSerializer.SerializerIdentifier, serializer.Identifier);
        }
    }

    [Fact]
    public void Every_network_message_type_has_a_sample_that_round_trips_through_the_actor_systems_serialization()
    {
        var missing = NetworkMessageTypes().Except(Samples.Select(s => s.GetType())).Select(t => t.Name).ToList();
        Assert.True(missing.Count == 0, "no serializer sample for: " + string.Join(", ", missing));
        foreach (var sample in Samples)
        {
            var serializer = Sys.Serialization.FindSerializerFor(sample);
            Assert.IsType<CrabKvSerializer>(serializer);
            var bytes = serializer.ToBinary(sample);
            var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, sample);
            var back = Sys.Serialization.Deserialize(bytes, serializer.Identifier, manifest);
            AssertDeepEqual(sample, back, sample.GetType().Name);
        }
    }

    [Fact]
    public void Serializer_identifier_is_4242_and_manifests_are_short()
    {
        Assert.Equal(4242, Serializer.Identifier);
        Assert.All(Samples, s => Assert.InRange(Serializer.Manifest(s).Length, 1, 2));
        Assert.Equal(Samples.Select(s => s.GetType()).Distinct().Count(), Samples.Select(Serializer.Manifest).Distinct().Count());
    }

    // ------------------------------------------------------------------ round trips

    [Theory]
    [MemberData(nameof(SampleCases))]
    public void Round_trip_preserves_every_field(int index, string type)
    {
        var sample = Samples[index];
        var back = RoundTrip(sample);
        AssertDeepEqual(sample, back, type);
    }

    [Fact]
    public void Put_layout_matches_the_worked_example_in_the_serializer()
    {
        var bytes = Serializer.ToBinary(new Put("k", [0xAA, 0xBB], null, 7));
        Assert.Equal("P", Serializer.Manifest(new Put("k", [], null, 7)));
        Assert.Equal(new byte[] { 0x02, 0x6B, 0x03, 0xAA, 0xBB, 0x00, 0x0E }, bytes);
    }

    [Fact]
    public void Null_and_empty_values_stay_distinct()
    {
        Assert.Null(((GetResult)RoundTrip(new GetResult("k", false, null, 1))).Value);
        Assert.Empty(Assert.IsType<byte[]>(((GetResult)RoundTrip(new GetResult("k", true, [], 1))).Value));
        var batch = (PutBatch)RoundTrip(new PutBatch([BatchEntry.Delete("d"), BatchEntry.Put("e", [])], 1));
        Assert.Null(batch.Entries[0].Value);
        Assert.Empty(Assert.IsType<byte[]>(batch.Entries[1].Value));
        var stats = (StoreStats)RoundTrip(new StoreStats([new PartitionStats { FailureReason = null }, new PartitionStats { FailureReason = "" }], 1));
        Assert.Null(stats.Partitions[0].FailureReason);
        Assert.Equal("", stats.Partitions[1].FailureReason);
        var located = (StoreStats)RoundTrip(new StoreStats([new PartitionStats { Node = null }, new PartitionStats { Node = "" }], 1));
        Assert.Null(located.Partitions[0].Node);
        Assert.Equal("", located.Partitions[1].Node);
    }

    [Fact]
    public void Every_error_code_round_trips_and_an_unknown_code_still_reaches_the_caller()
    {
        foreach (var code in Enum.GetValues<CrabKvErrorCode>().Append((CrabKvErrorCode)200))
        {
            var back = (CrabKvError)RoundTrip(new CrabKvError(code, $"because {code}", (long)code));
            Assert.Equal(code, back.Code);
            Assert.Equal($"because {code}", back.Message);
            Assert.Equal((long)code, back.RequestId);
        }
    }

    [Fact]
    public void StopPartition_deserializes_to_the_one_instance()
    {
        Assert.Same(StopPartition.Instance, RoundTrip(StopPartition.Instance));
    }

    [Fact]
    public void A_16_MiB_value_round_trips_with_small_overhead()
    {
        var value = new byte[16 * MiB];
        new Random(42).NextBytes(value);
        var put = new Put("big", value, TimeSpan.FromMinutes(5), 1);
        var bytes = Serializer.ToBinary(put);
        Assert.InRange(bytes.Length - value.Length, 1, 32);
        var back = (Put)Serializer.FromBinary(bytes, "P");
        Assert.Equal(value, back.Value);
        Assert.NotSame(value, back.Value);

        var reply = (GetResult)RoundTrip(new GetResult("big", true, value, 2));
        Assert.Equal(value, reply.Value);
    }

    [Fact]
    public void Messages_that_never_cross_the_network_are_refused()
    {
        Assert.Throws<ArgumentException>(() => Serializer.ToBinary(new TimerSyncCompleted(1, 2)));
        Assert.Throws<ArgumentException>(() => Serializer.Manifest(new TimerSyncCompleted(1, 2)));
        Assert.Throws<ArgumentException>(() => Serializer.ToBinary("not a CrabKv message"));
    }

    [Fact]
    public void A_key_with_a_lone_surrogate_is_refused_instead_of_silently_changed()
    {
        var e = Assert.Throws<SerializationException>(() => Serializer.ToBinary(new Get("bad\uD800key", 1)));
        Assert.Contains("surrogate", e.Message);
    }

    // ------------------------------------------------------------------ malformed payloads

    [Fact]
    public void Truncated_payload_throws_SerializationException_at_every_length()
    {
        foreach (var sample in Samples)
        {
            var manifest = Serializer.Manifest(sample);
            var bytes = Serializer.ToBinary(sample);
            if (bytes.Length > 8192)
            {
                continue; // the 2000-entry batch: the same code paths as the small one, quadratic to cut
            }
            for (var length = 0; length < bytes.Length; length++)
            {
                var cut = bytes[..length];
                var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(cut, manifest));
                Assert.Contains($"'{manifest}'", e.Message);
            }
        }
    }

    [Fact]
    public void Trailing_bytes_throw_SerializationException()
    {
        var bytes = Serializer.ToBinary(new Get("k", 1));
        var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary([.. bytes, 0], "G"));
        Assert.Contains("follow the end", e.Message);
    }

    [Theory]
    [InlineData("P", new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F }, "runs past the end")]      // key length 2^63
    [InlineData("P", new byte[] { 0x02, 0x6B, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x00, 0x00 }, "runs past the end")]      // value length ~2 GiB
    [InlineData("B", new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x00 }, "cannot fit")]                               // 2^31 batch entries
    [InlineData("s2", new byte[] { 0x80, 0x80, 0x80, 0x80, 0x01, 0x00 }, "cannot fit")]                              // 2^28 partitions
    [InlineData("s2", new byte[] { 0x00, 0x80, 0x80, 0x80, 0x01, 0x00 }, "cannot fit")]                              // 2^28 nodes
    [InlineData("G", new byte[] { 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02 }, "overflows")]                    // request id of 65 bits
    [InlineData("d", new byte[] { 0x02, 0x00 }, "boolean")]
    [InlineData("sp", new byte[] { 0xFE, 0xFF, 0xFF, 0xFF, 0x7F }, "does not fit a 32-bit field")]                  // partition 2^33
    [InlineData("G", new byte[] { 0x03, 0xC3, 0x28, 0x00 }, "not valid UTF-8")]
    public void Absurd_or_invalid_fields_throw_SerializationException(string manifest, byte[] payload, string reason)
    {
        var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary(payload, manifest));
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void Unknown_manifest_throws_SerializationException_naming_it()
    {
        var e = Assert.Throws<SerializationException>(() => Serializer.FromBinary([0], "Zq"));
        Assert.Contains("'Zq'", e.Message);
    }

    // ------------------------------------------------------------------ through a remote node

    [Fact]
    public async Task A_16_MiB_value_is_put_and_read_back_through_a_remote_node()
    {
        var remoting = ConfigurationFactory.ParseString("""
            akka.loglevel = WARNING
            akka.stdout-loglevel = WARNING
            akka.actor.provider = remote
            akka.actor.serialize-messages = off
            akka.remote.dot-netty.tcp.hostname = 127.0.0.1
            akka.remote.dot-netty.tcp.port = 0
            """).WithFallback(CrabKvSettings.DefaultConfig());
        using var dir = new TempDataDir();
        var server = ActorSystem.Create("server", remoting);
        var client = ActorSystem.Create("client", remoting);
        try
        {
            CrabKvStore.Start(server, dir.Settings());
            var address = ((ExtendedActorSystem)server).Provider.DefaultAddress;
            var timeout = TimeSpan.FromSeconds(60);
            var store = await client.ActorSelection($"{address}/user/crabkv").ResolveOne(timeout);
            Assert.Equal(address, store.Path.Address);

            var value = new byte[16 * MiB];
            new Random(7).NextBytes(value);
            var ok = await store.Ask<ICrabKvReply>(new Put("remote:big", value, null, 1), timeout);
            Assert.Equal(new PutOk(1), ok);
            var got = await store.Ask<ICrabKvReply>(new Get("remote:big", 2), timeout);
            var result = Assert.IsType<GetResult>(got);
            Assert.True(result.Found);
            Assert.Equal(2, result.RequestId);
            Assert.Equal(value, result.Value);

            // Errors cross the wire with their code.
            var error = await store.Ask<ICrabKvReply>(new Put("", [1], null, 3), timeout);
            Assert.Equal(CrabKvErrorCode.EmptyKey, Assert.IsType<CrabKvError>(error).Code);
        }
        finally
        {
            await client.Terminate();
            await server.Terminate(); // CoordinatedShutdown stops the store gracefully (lock released)
        }
    }

    // ------------------------------------------------------------------ helpers

    private object RoundTrip(object message) => Serializer.FromBinary(Serializer.ToBinary(message), Serializer.Manifest(message));

    /// <summary>Compares two messages field by field (byte arrays and lists by content), recursing into nested records.</summary>
    private static void AssertDeepEqual(object? expected, object? actual, string path)
    {
        if (expected is null || actual is null)
        {
            Assert.True(expected is null && actual is null, $"{path}: expected {expected ?? "null"}, got {actual ?? "null"}");
            return;
        }
        switch (expected)
        {
            case byte[] bytes:
                Assert.True(actual is byte[] other && bytes.AsSpan().SequenceEqual(other), $"{path}: byte arrays differ");
                return;
            case string or ValueType:
                Assert.True(expected.Equals(actual), $"{path}: expected {expected}, got {actual}");
                return;
            case IEnumerable list:
                var e = list.Cast<object?>().ToList();
                var a = Assert.IsAssignableFrom<IEnumerable>(actual).Cast<object?>().ToList();
                Assert.True(e.Count == a.Count, $"{path}: {e.Count} items expected, {a.Count} found");
                for (var i = 0; i < e.Count; i++)
                {
                    AssertDeepEqual(e[i], a[i], $"{path}[{i}]");
                }
                return;
        }
        Assert.True(expected.GetType() == actual.GetType(), $"{path}: type {actual.GetType().Name} instead of {expected.GetType().Name}");
        foreach (var p in expected.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0))
        {
            AssertDeepEqual(p.GetValue(expected), p.GetValue(actual), $"{path}.{p.Name}");
        }
    }
}
