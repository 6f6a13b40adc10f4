using System.Text;
using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors.Tests.Support;
using CrabKv.Actors.Transfer;
using CrabKv.Storage.Files;
using CrabKv.Storage.Tests.TestSupport;
using CrabKv.Storage.Transfer;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// A partition moved between two ActorSystems over remoting on 127.0.0.1 (issue 10, "Data
/// follows its shard"): the source node stops the partition, the sink pulls, verifies and
/// installs it, and a store on the sink node serves every key. Interrupted on either side,
/// nothing half-written is installed, and a retry completes.
/// </summary>
public sealed class TransferTests : IDisposable
{
    private const int Keys = 10_000;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>Small chunks so that a ~0.9 MB partition takes a few dozen; short silences so the failure cases end fast.</summary>
    private const string TransferHocon = """
        crabkv.transfer.chunk-bytes = 32 KiB
        crabkv.transfer.window = 4
        crabkv.transfer.chunk-timeout = 300ms
        crabkv.transfer.max-retries = 2
        crabkv.transfer.idle-timeout = 30s
        crabkv.segment.max-bytes = 256 KiB
        """;

    private static readonly Config Remoting = ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        akka.actor.provider = remote
        akka.actor.serialize-messages = off
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        """);

    private readonly TempDataDir _sourceDir = new();
    private readonly TempDataDir _sinkDir = new();
    private readonly List<ActorSystem> _systems = new();

    public void Dispose()
    {
        foreach (var s in _systems)
        {
            s.Terminate().Wait(Timeout);
        }
        _sourceDir.Dispose();
        _sinkDir.Dispose();
    }

    private ActorSystem NewSystem(string name, TempDataDir dir)
    {
        var system = ActorSystem.Create(name, dir.Config(TransferHocon).WithFallback(Remoting));
        _systems.Add(system);
        return system;
    }

    private static TransferSettings Settings(ActorSystem system, FileLayer? files = null) =>
        TransferSettings.Create(system) with { Files = files ?? FileLayer.Default };

    private static string Key(int i) => $"user:{i:D6}";

    private static byte[] Value(int i) => i % 4 == 0
        ? Encoding.UTF8.GetBytes(new string((char)('a' + i % 26), 300)) // compressed on disk
        : Encoding.UTF8.GetBytes($"value {i} " + Convert.ToHexString(BitConverter.GetBytes(i * 7919L)));

    /// <summary>
    /// The source node: a store with one partition holding <see cref="Keys"/> keys (batches,
    /// TTLs, a compaction so hint files exist), stopped with StopPartition as a handoff
    /// does, and a PartitionTransferSource for its data directory.
    /// </summary>
    private async Task<(ActorSystem System, IActorRef Source)> StartSourceNode(bool writeData)
    {
        var system = NewSystem("source", _sourceDir);
        if (writeData)
        {
            var store = CrabKvStore.Start(system, _sourceDir.Settings(TransferHocon));
            for (var b = 0; b < Keys / 500; b++)
            {
                var entries = Enumerable.Range(b * 500, 500).Select(i => BatchEntry.Put(Key(i), Value(i), i % 10 == 0 ? TimeSpan.FromDays(7) : null)).ToArray();
                Assert.IsType<PutBatchOk>(await store.Ask<ICrabKvReply>(new PutBatch(entries, b), Timeout));
            }
            Assert.IsType<CompactOk>(await store.Ask<ICrabKvReply>(new Compact(1), Timeout));
            Assert.IsType<PutOk>(await store.Ask<ICrabKvReply>(new Put(Key(0), Value(0), null, 2), Timeout)); // a segment after the merge output
            var partitions = Internal.LocalStores.PartitionsOf(store)!;
            Assert.True(partitions.Wait(Timeout));
            Assert.Equal(0, (await partitions.Result[0].Ask<PartitionStopped>(StopPartition.Instance, Timeout)).Partition);
            Assert.NotEmpty(Directory.GetFiles(PartitionDir(_sourceDir), "seg-*.hint"));
        }
        var source = system.ActorOf(PartitionTransferSource.Props(_sourceDir.Path, Settings(system)), "transfer-source");
        return (system, source);
    }

    private static string PartitionDir(TempDataDir dir) => Storage.DataDirectory.PartitionDirectory(dir.Path, 0);

    /// <summary>Starts a sink on <paramref name="system"/>; the task ends with its TransferCompleted or TransferFailed.</summary>
    private static async Task<object> StartSink(ActorSystem system, ActorSystem sourceSystem, TransferSettings settings, string dataDir)
    {
        var address = ((ExtendedActorSystem)sourceSystem).Provider.DefaultAddress;
        var source = await system.ActorSelection($"{address}/user/transfer-source").ResolveOne(Timeout);
        var done = new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);
        var requester = system.ActorOf(Props.Create(() => new FirstOf(done, typeof(TransferCompleted), typeof(TransferFailed))));
        system.ActorOf(PartitionTransferSink.Props(source, 0, dataDir, requester, settings));
        return await done.Task.WaitAsync(Timeout);
    }

    /// <summary>A task that ends with the first message of one of <paramref name="types"/> published on <paramref name="system"/>'s event stream.</summary>
    private static Task<object> NextEvent(ActorSystem system, params Type[] types)
    {
        var done = new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);
        var listener = system.ActorOf(Props.Create(() => new FirstOf(done, types)));
        foreach (var t in types)
        {
            system.EventStream.Subscribe(listener, t);
        }
        return done.Task.WaitAsync(Timeout);
    }

    private static void AssertEveryKey(string partitionDir)
    {
        using var store = EmbeddedStore.Open(partitionDir);
        Assert.Equal(Keys, store.Count);
        for (var i = 0; i < Keys; i++)
        {
            var got = store.Get(Key(i));
            Assert.True(got is not null && got.AsSpan().SequenceEqual(Value(i)), $"key {Key(i)}");
        }
    }

    // ------------------------------------------------------------------ tests

    [Fact]
    public async Task A_partition_of_10000_keys_moves_between_two_actor_systems_and_a_store_on_the_target_serves_every_key()
    {
        var (sourceSystem, _) = await StartSourceNode(writeData: true);
        var sink = NewSystem("sink", _sinkDir);
        var progress = NextEvent(sink, typeof(TransferProgress));
        var released = NextEvent(sourceSystem, typeof(TransferReleased));

        var completed = Assert.IsType<TransferCompleted>(await StartSink(sink, sourceSystem, Settings(sink), _sinkDir.Path));

        Assert.Equal(0, completed.Partition);
        var files = Directory.GetFiles(PartitionDir(_sourceDir), "seg-*");
        Assert.Equal(files.Sum(f => new FileInfo(f).Length), completed.Bytes);
        Assert.True(completed.Bytes > 20 * 32 * 1024, $"only {completed.Bytes} bytes: too few chunks to test the window");
        Assert.True(((TransferProgress)await progress).BytesTotal == completed.Bytes);
        Assert.Equal("done", ((TransferReleased)await released).Reason);
        Assert.False(Directory.Exists(PartitionDir(_sinkDir) + PartitionImport.StagingSuffix));

        // The target node opens it as its own partition and serves every key.
        var target = CrabKvStore.Start(sink, _sinkDir.Settings(TransferHocon));
        for (var i = 0; i < Keys; i += 97)
        {
            var got = Assert.IsType<GetResult>(await target.Ask<ICrabKvReply>(new Get(Key(i), i), Timeout));
            Assert.True(got.Found && got.Value!.AsSpan().SequenceEqual(Value(i)), $"key {Key(i)}");
        }
        Assert.IsType<ShutdownOk>(await target.Ask<ICrabKvReply>(new Shutdown(9), Timeout));
        AssertEveryKey(PartitionDir(_sinkDir));

        // The new holder is recorded (the cluster's job): the old copy goes.
        PartitionExport.DeleteSource(PartitionDir(_sourceDir));
        Assert.False(Directory.Exists(PartitionDir(_sourceDir)));
    }

    [Fact]
    public async Task The_sink_node_stopped_mid_transfer_leaves_a_staging_copy_that_restart_discards_and_a_retry_completes()
    {
        var (sourceSystem, _) = await StartSourceNode(writeData: true);
        var sink = NewSystem("sink", _sinkDir);
        using var faulty = new FaultyFileLayer(FileLayer.Default);
        var writes = 0;
        faulty.HoldNext(FileOps.Write, p => p.Contains(PartitionImport.StagingSuffix, StringComparison.Ordinal) && ++writes == 8);
        var released = NextEvent(sourceSystem, typeof(TransferReleased));
        var outcome = StartSink(sink, sourceSystem, Settings(sink, faulty), _sinkDir.Path);

        faulty.WaitUntilHeld(Timeout); // the sink's thread is inside its 8th chunk write
        var terminated = sink.Terminate();
        faulty.Release();
        await terminated.WaitAsync(Timeout);
        Assert.False(outcome.IsCompletedSuccessfully);

        var staging = PartitionDir(_sinkDir) + PartitionImport.StagingSuffix;
        Assert.True(Directory.Exists(staging));
        Assert.False(File.Exists(Path.Combine(staging, PartitionImport.CompleteFileName)));
        Assert.False(Directory.Exists(PartitionDir(_sinkDir)));

        // Restart of the sink node: opening its data directory discards the staging copy.
        using (var data = Storage.DataDirectory.Open(_sinkDir.Path, 1, 1))
        {
            Assert.Contains(data.Notes, n => n.Contains("Discarded", StringComparison.Ordinal));
        }
        Assert.False(Directory.Exists(staging));

        // The source let go of the partition and its copy is intact.
        await released;
        AssertEveryKey(PartitionDir(_sourceDir));

        // Retry from a new sink node.
        var sink2 = NewSystem("sink2", _sinkDir);
        Assert.IsType<TransferCompleted>(await StartSink(sink2, sourceSystem, Settings(sink2), _sinkDir.Path));
        AssertEveryKey(PartitionDir(_sinkDir));
    }

    [Fact]
    public async Task The_source_node_stopped_mid_transfer_fails_the_sink_within_its_retries_and_a_retry_completes()
    {
        var (sourceSystem, _) = await StartSourceNode(writeData: true);
        var sink = NewSystem("sink", _sinkDir);
        using var faulty = new FaultyFileLayer(FileLayer.Default);
        var writes = 0;
        faulty.HoldNext(FileOps.Write, p => p.Contains(PartitionImport.StagingSuffix, StringComparison.Ordinal) && ++writes == 8);
        var outcome = StartSink(sink, sourceSystem, Settings(sink, faulty), _sinkDir.Path);

        faulty.WaitUntilHeld(Timeout);
        await sourceSystem.Terminate().WaitAsync(Timeout); // the holder goes away mid-transfer
        var stoppedAt = DateTime.UtcNow;
        faulty.Release();

        var failed = Assert.IsType<TransferFailed>(await outcome);
        Assert.Contains("no answer", failed.Reason);
        var settings = Settings(sink);
        Assert.True(DateTime.UtcNow - stoppedAt < (settings.MaxRetries + 2) * settings.ChunkTimeout + TimeSpan.FromSeconds(10));
        Assert.False(Directory.Exists(PartitionDir(_sinkDir)));
        Assert.False(Directory.Exists(PartitionDir(_sinkDir) + PartitionImport.StagingSuffix));
        AssertEveryKey(PartitionDir(_sourceDir));

        // The holder's node comes back on its data directory; the retry completes.
        var (sourceAgain, _) = await StartSourceNode(writeData: false);
        Assert.IsType<TransferCompleted>(await StartSink(sink, sourceAgain, Settings(sink), _sinkDir.Path));
        AssertEveryKey(PartitionDir(_sinkDir));
    }

    [Fact]
    public async Task A_partition_held_by_a_running_store_is_refused_and_nothing_is_installed()
    {
        var system = NewSystem("source", _sourceDir);
        var store = CrabKvStore.Start(system, _sourceDir.Settings(TransferHocon));
        Assert.IsType<PutOk>(await store.Ask<ICrabKvReply>(new Put("k", [1], null, 1), Timeout));
        system.ActorOf(PartitionTransferSource.Props(_sourceDir.Path, Settings(system)), "transfer-source");
        var sink = NewSystem("sink", _sinkDir);
        var failed = Assert.IsType<TransferFailed>(await StartSink(sink, system, Settings(sink), _sinkDir.Path));
        Assert.Contains("in use", failed.Reason);
        Assert.False(Directory.Exists(PartitionDir(_sinkDir)));
        Assert.False(Directory.Exists(PartitionDir(_sinkDir) + PartitionImport.StagingSuffix));
    }

    [Fact]
    public async Task The_source_reports_its_exports_and_the_chunks_it_served_so_a_leaving_node_waits_for_a_pull_in_progress()
    {
        var (system, source) = await StartSourceNode(writeData: true);
        var sink = Inbox.Create(system);
        async Task<TransferActivity> Activity() => await source.Ask<TransferActivity>(GetTransferActivity.Instance, Timeout);

        Assert.Equal(new TransferActivity(0, 0), await Activity());
        sink.Send(source, new TransferManifestRequest(0, 7));
        var manifest = Assert.IsType<TransferManifest>(await sink.ReceiveAsync(Timeout));
        Assert.Equal(new TransferActivity(1, 0), await Activity());

        var file = manifest.Files[0];
        sink.Send(source, new ChunkRequest(7, file.Name, 0, (int)Math.Min(file.Length, 1024)));
        Assert.IsType<ChunkData>(await sink.ReceiveAsync(Timeout));
        Assert.Equal(new TransferActivity(1, 1), await Activity());

        sink.Send(source, new TransferDone(7));
        Assert.Equal(new TransferActivity(0, 1), await Activity());
    }

    /// <summary>Completes a task with the first message of one of the given types, then stops.</summary>
    private sealed class FirstOf : ReceiveActor
    {
        public FirstOf(TaskCompletionSource<object> done, params Type[] types)
        {
            ReceiveAny(m =>
            {
                if (types.Any(t => t.IsInstanceOfType(m)))
                {
                    done.TrySetResult(m);
                    Context.Stop(Self);
                }
            });
        }
    }
}
