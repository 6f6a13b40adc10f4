using System.Text;
using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Actors.Serialization;
using CrabKv.Cluster.Serialization;
using CrabKv.Cluster.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace CrabKv.Cluster.Tests;

/// <summary>
/// The sharded store on a three-node cluster plus a client-only node (one <see cref="ClusterFixture"/>
/// shared by the tests of this class): keys spread over every node, reads return what was
/// written through the proxy and through kv nodes, errors match a local store's, store-wide
/// requests get one reply covering every partition once, a node with another partition count
/// is refused, and nothing of CrabKv crosses the wire as JSON.
/// </summary>
public sealed class ShardedStoreTests : TestKit, IClassFixture<ClusterFixture>
{
    private static readonly TimeSpan Patience = ClusterFixture.Patience;
    private readonly ClusterFixture _cluster;
    private readonly ITestOutputHelper _output;

    public ShardedStoreTests(ClusterFixture cluster, ITestOutputHelper output)
        : base(ConfigurationFactory.ParseString("akka.loglevel = WARNING").WithFallback(CrabKvSettings.DefaultConfig()), output: output)
    {
        _cluster = cluster;
        _output = output;
    }

    private static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>Keys named <paramref name="prefix"/>N that live in partition <paramref name="partition"/> of the test cluster.</summary>
    private static List<string> KeysOf(int partition, string prefix, int count) =>
        Enumerable.Range(0, 100_000).Select(i => $"{prefix}{i}")
            .Where(k => KeyPartitioner.PartitionOf(k, ClusterFixture.Partitions) == partition).Take(count).ToList();

    private async Task<List<CrabKvClient>> ClientsAsync()
    {
        var clients = new List<CrabKvClient> { await CrabKvClient.ConnectAsync(_cluster.ClientNode.Endpoint, Patience) };
        foreach (var node in _cluster.KvNodes)
        {
            clients.Add(await CrabKvClient.ConnectAsync(node.Endpoint, Patience));
        }
        return clients;
    }

    [Fact]
    public async Task Keys_spread_over_every_kv_node_and_every_read_returns_what_was_written_through_the_proxy_and_the_kv_nodes()
    {
        var clients = await ClientsAsync(); // [0] the client-only node (proxy), [1..3] the kv nodes
        Assert.All(clients, c => Assert.Equal(0, c.Partitions)); // no local shortcut: every request goes through the endpoint

        // Every kv node hosts partitions, and every partition is hosted by exactly one node.
        var shards = await _cluster.ShardsPerNodeAsync();
        Assert.All(shards, s => Assert.NotEmpty(s));
        Assert.Equal(ClusterFixture.Partitions, shards.Sum(s => s.Count));
        Assert.Equal(Enumerable.Range(0, ClusterFixture.Partitions).Select(p => p.ToString()).Order(), shards.SelectMany(s => s).Order());

        // Puts through all four endpoints in turn; the keys cover every partition, so every node.
        var keys = Enumerable.Range(0, 240).Select(i => $"spread:{i}").ToList();
        Assert.Equal(ClusterFixture.Partitions, keys.Select(k => KeyPartitioner.PartitionOf(k, ClusterFixture.Partitions)).Distinct().Count());
        await Task.WhenAll(keys.Select((k, i) => clients[i % clients.Count].PutAsync(k, $"value of {k}")));
        foreach (var client in clients)
        {
            var values = await Task.WhenAll(keys.Select(k => client.GetStringAsync(k)));
            Assert.Equal(keys.Select(k => $"value of {k}"), values);
        }

        // Deletes through a kv node, seen through the proxy.
        var deleted = keys.Take(40).ToList();
        Assert.All(await Task.WhenAll(deleted.Select(k => clients[2].DeleteAsync(k))), Assert.True);
        Assert.All(await Task.WhenAll(deleted.Select(k => clients[0].GetAsync(k))), Assert.Null);
        Assert.False(await clients[0].DeleteAsync(deleted[0]));
        Assert.Equal($"value of {keys[40]}", await clients[3].GetStringAsync(keys[40]));

        // An atomic batch in each partition through the proxy (puts, and a delete of a key written before), read through a kv node.
        for (var p = 0; p < ClusterFixture.Partitions; p++)
        {
            var batchKeys = KeysOf(p, $"batch:{p}:", 3);
            await clients[0].PutAsync(batchKeys[2], "to be deleted");
            var count = await clients[0].PutBatchAsync([
                BatchEntry.Put(batchKeys[0], Bytes("b0")),
                BatchEntry.Put(batchKeys[1], Bytes("b1"), TimeSpan.FromHours(1)),
                BatchEntry.Delete(batchKeys[2]),
            ]);
            Assert.Equal(3, count);
            var reader = clients[1 + p % 3];
            Assert.Equal("b0", await reader.GetStringAsync(batchKeys[0]));
            Assert.Equal("b1", await reader.GetStringAsync(batchKeys[1]));
            Assert.Null(await reader.GetAsync(batchKeys[2]));
        }

        // TTL: a value is served until it expires, then never again, on every path.
        await clients[0].PutAsync("ttl:short", "brief", ttl: TimeSpan.FromSeconds(3));
        await clients[1].PutAsync("ttl:long", "lasting", ttl: TimeSpan.FromHours(1));
        Assert.Equal("brief", await clients[2].GetStringAsync("ttl:short"));
        await AwaitAssertAsync(async () =>
        {
            foreach (var client in clients)
            {
                Assert.Null(await client.GetAsync("ttl:short"));
            }
        }, Patience, TimeSpan.FromMilliseconds(250));
        Assert.Equal("lasting", await clients[0].GetStringAsync("ttl:long"));
    }

    [Fact]
    public async Task Errors_come_back_as_CrabKvError_with_the_code_and_message_of_a_local_store()
    {
        // A single-node store with the same partition count and limits answers the same requests.
        var localDir = Path.Combine(_cluster.Root, "local-" + Guid.NewGuid().ToString("N"));
        var localSettings = CrabKvSettings.Create(ConfigurationFactory.ParseString($"""
            crabkv.data-dir = "{localDir}"
            crabkv.partitions = {ClusterFixture.Partitions}
            crabkv.limits.max-value-bytes = 64 KiB
            crabkv.segment.max-bytes = 1 MiB
            """));
        var local = CrabKvStore.Start(Sys, localSettings, "local");

        var a = KeysOf(0, "cross:", 1)[0];
        var b = KeysOf(1, "cross:", 1)[0];
        var bad = new (string Name, ICrabKvRequest Request, CrabKvErrorCode Code)[]
        {
            ("empty key put", new Put("", Bytes("v"), null, 1), CrabKvErrorCode.EmptyKey),
            ("empty key get", new Get("", 2), CrabKvErrorCode.EmptyKey),
            ("value too large", new Put("big", new byte[64 * 1024 + 1], null, 3), CrabKvErrorCode.ValueTooLarge),
            ("cross-partition batch", new PutBatch([BatchEntry.Put(a, Bytes("1")), BatchEntry.Put(b, Bytes("2"))], 4), CrabKvErrorCode.InvalidRequest),
            ("empty batch", new PutBatch([], 5), CrabKvErrorCode.InvalidRequest),
            ("zero TTL", new Put("ttl:zero", Bytes("v"), TimeSpan.Zero, 6), CrabKvErrorCode.InvalidRequest),
        };
        var endpoints = new[] { _cluster.ClientNode.Endpoint }.Concat(_cluster.KvNodes.Select(n => n.Endpoint)).ToList();
        foreach (var (name, request, code) in bad)
        {
            var expected = Assert.IsType<CrabKvError>(await local.Ask<object>(request, Patience));
            Assert.True(expected.Code == code, $"{name}: the local store answered {expected.Code}");
            foreach (var endpoint in endpoints)
            {
                var error = Assert.IsType<CrabKvError>(await endpoint.Ask<object>(request, Patience));
                Assert.Equal((expected.Code, expected.Message, request.RequestId), (error.Code, error.Message, error.RequestId));
            }
        }
        Assert.Equal(KeyPartitioner.CrossPartitionBatchMessage(ClusterFixture.Partitions),
            ((CrabKvError)await _cluster.ClientNode.Endpoint.Ask<object>(bad[3].Request, Patience)).Message);

        // The typed client turns them into exceptions with the same codes.
        var client = await CrabKvClient.ConnectAsync(_cluster.ClientNode.Endpoint, Patience);
        Assert.Equal(CrabKvErrorCode.EmptyKey, (await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("", "v"))).Code);
        Assert.Equal(CrabKvErrorCode.ValueTooLarge, (await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("big", new byte[64 * 1024 + 1]))).Code);
        Assert.Equal(CrabKvErrorCode.InvalidRequest, (await Assert.ThrowsAsync<CrabKvRequestException>(() =>
            client.PutBatchAsync([BatchEntry.Put(a, Bytes("1")), BatchEntry.Put(b, Bytes("2"))]))).Code);
        Assert.Null(await client.GetAsync(a)); // nothing of the refused batch was written

        await local.GracefulStop(Patience, new Shutdown());
    }

    [Fact]
    public async Task Store_wide_requests_fan_out_to_every_partition_and_get_one_reply()
    {
        var client = await CrabKvClient.ConnectAsync(_cluster.ClientNode.Endpoint, Patience);
        await client.PutAsync("wide:1", "x");
        var all = Enumerable.Range(0, ClusterFixture.Partitions).ToList();
        foreach (var endpoint in new[] { _cluster.ClientNode.Endpoint, _cluster.KvNodes[1].Endpoint })
        {
            var stats = Assert.IsType<StoreStats>(await endpoint.Ask<object>(new GetStats(77), Patience));
            Assert.Equal(77, stats.RequestId);
            Assert.Equal(all, stats.Partitions.Select(p => p.Partition)); // every partition exactly once, in order
            Assert.All(stats.Partitions, p => Assert.False(p.ReadOnly));
            Assert.True(stats.Keys >= 1);
            // One node entry per kv node holding partitions, named as its partitions name it.
            var kvAddresses = _cluster.KvSystems.Select(s => Akka.Cluster.Cluster.Get(s).SelfAddress.ToString()).ToList();
            Assert.Equal(stats.Partitions.Select(p => p.Node).Distinct().Order(StringComparer.Ordinal), stats.Nodes.Select(n => n.Node));
            Assert.All(stats.Nodes, n => Assert.True(kvAddresses.Contains(n.Node) && n.Uptime > TimeSpan.Zero && n.Version.Length > 0, $"node entry {n}"));
            Assert.Equal(new FlushOk(5), await endpoint.Ask<object>(new Flush(5), Patience));
            Assert.Equal(6, Assert.IsType<CompactOk>(await endpoint.Ask<object>(new Compact(6), Patience)).RequestId);
        }
        Assert.Equal("x", await client.GetStringAsync("wide:1"));

        // Node budgets are divided by the cluster's partition count: crabkv.segment.preallocate =
        // 3 MiB over 12 partitions preallocates 256 KiB per active segment (undivided, it would be
        // the whole 1 MiB segment).
        var lengths = Directory.GetFiles(_cluster.Root, "*.data", SearchOption.AllDirectories).Select(f => new FileInfo(f).Length).ToList();
        Assert.Contains(256L << 10, lengths);
        Assert.DoesNotContain(1L << 20, lengths);

        var shutdown = Assert.IsType<CrabKvError>(await _cluster.ClientNode.Endpoint.Ask<object>(new Shutdown(8), Patience));
        Assert.Equal((CrabKvErrorCode.InvalidRequest, 8L), (shutdown.Code, shutdown.RequestId));
        var unknown = Assert.IsType<CrabKvError>(await _cluster.KvNodes[0].Endpoint.Ask<object>("hello", Patience));
        Assert.Equal(CrabKvErrorCode.UnknownMessage, unknown.Code);
    }

    [Fact]
    public async Task A_node_configured_with_another_partition_count_refuses_to_join_naming_both_counts()
    {
        var system = _cluster.StartExtraNode(ClusterFixture.NodeConfig(Path.Combine(_cluster.Root, "odd-node"), partitions: 7));
        var node = CrabKvCluster.Start(system);
        var address = Akka.Cluster.Cluster.Get(system).SelfAddress;
        Akka.Cluster.Cluster.Get(system).Join(_cluster.SeedAddress);

        var refusal = await Assert.ThrowsAsync<CrabKvConfigurationException>(() => node.Ready.WaitAsync(Patience));
        _output.WriteLine(refusal.Message);
        Assert.Equal("cluster.partitions", refusal.Key);
        Assert.Contains("is 7", refusal.Message);
        Assert.Contains("has 12", refusal.Message);

        // It leaves and shuts its actor system down; the cluster goes on serving all 12 partitions.
        await system.WhenTerminated.WaitAsync(Patience);
        // Its new data directory held nothing: it does not keep the refused count (a start with
        // the cluster's count would otherwise be refused by the directory).
        var dir = Path.Combine(_cluster.Root, "odd-node");
        Assert.False(File.Exists(Path.Combine(dir, DataDirectory.PartitionsFileName)), "PARTITIONS kept after the refused join");
        Assert.Empty(Directory.GetDirectories(dir, "p-*"));
        await ClusterFixture.WaitUntil(() => Akka.Cluster.Cluster.Get(_cluster.KvSystems[0]).State.Members.All(m => !m.Address.Equals(address)), "the refused node removed");
        var stats = Assert.IsType<StoreStats>(await _cluster.ClientNode.Endpoint.Ask<object>(new GetStats(), Patience));
        Assert.Equal(ClusterFixture.Partitions, stats.Partitions.Count);
    }

    [Fact]
    public async Task Data_path_messages_cross_the_wire_with_the_binary_serializers_never_JSON()
    {
        foreach (var system in _cluster.KvSystems.Append(_cluster.ClientSystem))
        {
            var envelope = new PartitionEnvelope(3, new GetStats(1));
            Assert.IsType<CrabKvClusterSerializer>(system.Serialization.FindSerializerFor(envelope));
            Assert.IsType<CrabKvClusterSerializer>(system.Serialization.FindSerializerFor(new PartitionCountQuery(12)));
            foreach (var message in new object[] { new Put("k", [1], null, 1), new GetResult("k", true, [1], 1), new PutBatch([], 1), new StoreStats([], 1), new CrabKvError(CrabKvErrorCode.EmptyKey, "m", 1), StopPartition.Instance })
            {
                Assert.IsType<CrabKvSerializer>(system.Serialization.FindSerializerFor(message));
            }
        }

        // Traffic of every kind through the proxy and a kv node; then no CrabKv type may have gone through JSON.
        foreach (var endpoint in new[] { _cluster.ClientNode.Endpoint, _cluster.KvNodes[2].Endpoint })
        {
            var client = await CrabKvClient.ConnectAsync(endpoint, Patience);
            var keys = KeysOf(4, "wire:", 2);
            await client.PutAsync(keys[0], "v", TimeSpan.FromHours(1));
            Assert.Equal("v", await client.GetStringAsync(keys[0]));
            await client.PutBatchAsync([BatchEntry.Put(keys[1], Bytes("w")), BatchEntry.Delete(keys[0])]);
            Assert.False(await client.DeleteAsync(keys[0]));
            await client.FlushAsync();
            await client.CompactAsync();
            Assert.Equal(ClusterFixture.Partitions, (await client.GetStatsAsync()).Partitions.Count);
            await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("", "v"));
        }
        var json = RecordingJsonSerializer.Serialized.Keys.ToList();
        _output.WriteLine("Serialized with JSON: " + (json.Count == 0 ? "nothing" : string.Join(", ", json.Select(t => t.FullName))));
        Assert.DoesNotContain(json, t => t.Namespace?.StartsWith("CrabKv", StringComparison.Ordinal) == true);
        // Nor the holder registry's DistributedData envelopes, digests and gossip (JSON fails on them).
        Assert.DoesNotContain(json, t => t.Namespace?.StartsWith("Akka.DistributedData", StringComparison.Ordinal) == true);
    }

    [Fact]
    public void Many_requests_sent_at_once_are_combined_and_every_reply_reaches_its_caller_with_its_own_RequestId()
    {
        // 600 raw Tells from one caller through the proxy: the endpoint batches them per
        // partition (ProtocolBatch), so the replies come back batched and must be matched
        // to their requests by the endpoint's correlation ids, then given their RequestIds back.
        var endpoint = _cluster.ClientNode.Endpoint;
        const int N = 200;
        for (var i = 0; i < N; i++)
        {
            endpoint.Tell(new Put($"combine:{i}", Bytes($"v{i}"), RequestId: 10_000 + i), TestActor);
        }
        var acked = new HashSet<long>();
        for (var i = 0; i < N; i++)
        {
            acked.Add(ExpectMsg<PutOk>(Patience).RequestId);
        }
        Assert.Equal(Enumerable.Range(10_000, N).Select(i => (long)i).ToHashSet(), acked);

        for (var i = 0; i < N; i++)
        {
            endpoint.Tell(new Get($"combine:{i}", RequestId: 20_000 + i), TestActor);
            endpoint.Tell(new Delete($"combine:{i}", RequestId: 30_000 + i), TestActor);
        }
        var values = new Dictionary<long, string?>();
        var deletes = new HashSet<long>();
        for (var i = 0; i < 2 * N; i++)
        {
            switch (ExpectMsg<ICrabKvReply>(Patience))
            {
                case GetResult g:
                    values[g.RequestId] = g.Found ? Encoding.UTF8.GetString(g.Value!) : null;
                    Assert.Equal($"combine:{g.RequestId - 20_000}", g.Key);
                    break;
                case DeleteOk d:
                    Assert.True(d.Existed, $"delete {d.RequestId}: the put before it must exist (order per key kept)");
                    deletes.Add(d.RequestId);
                    break;
                case var other:
                    Assert.Fail($"unexpected reply {other}");
                    break;
            }
        }
        // Each Get was sent before the Delete of its key by the same caller: it sees the value.
        Assert.Equal(Enumerable.Range(0, N).ToDictionary(i => (long)(20_000 + i), i => (string?)$"v{i}"), values);
        Assert.Equal(N, deletes.Count);
    }
}
