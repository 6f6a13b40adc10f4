using Akka.Actor;
using Akka.Configuration;
using BenchmarkDotNet.Attributes;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Actors.Internal;
using CrabKv.Storage;

namespace CrabKv.Benchmarks;

/// <summary>
/// Actor-path rows: the same 100-byte values and keys as the engine rows, sent through
/// <see cref="CrabKvClient"/> (typed client: replies matched by RequestId, keys routed straight to their partition actor) to a
/// store with one partition per core, by 1 sequential client or by 64 concurrent clients
/// (64 async loops, each awaiting its own request before sending the next).
/// The "64 client actors" rows are the Akka-native way: 64 actors that each Tell a request
/// to the key's partition actor and send the next when the reply arrives (no Task, no Ask).
/// Every iteration starts a new actor system and a store in a new directory (outside the
/// timed part). Baseline rows measure Akka's own ceiling in the same run: an Ask to an actor
/// that answers at once, with the same client shapes.
/// </summary>
[Config(typeof(FreshStoreConfig))]
public class ActorBenchmarks
{
    private const int FsyncOps1 = 3_000, FsyncOps64 = 60_000;
    private const int SyncOps1 = 40_000, SyncOps64 = 200_000;
    private const int WriteBackOps1 = 100_000, WriteBackOps64 = 200_000;
    private const int BatchRecords1 = 50_000, BatchRecords64 = 200_000, BatchSize = 100;
    private const int GetOps1 = 50_000, GetOps64 = 200_000;
    private const int AskOps1 = 100_000, AskOps64 = 400_000;
    private const int MaxKeys = 400_000;

    private string[] _keys = [];
    private byte[] _value = [];
    private BatchEntry[][] _batches = [];
    private string? _root;
    private string? _directory;
    private ActorSystem? _system;
    private CrabKvClient? _client;
    private IActorRef? _echo;
    private IActorRef[] _partitions = [];
    private int _iteration;

    [GlobalSetup]
    public void Setup()
    {
        _keys = BenchData.Keys(MaxKeys);
        _value = BenchData.Value();
        // Atomic batches keep their keys in one partition: group the keys by partition first.
        var partitions = Environment.ProcessorCount;
        _batches = _keys.Take(BatchRecords64)
            .GroupBy(k => KeyPartitioner.PartitionOf(k, partitions))
            .SelectMany(g => g.Chunk(BatchSize))
            .Where(c => c.Length == BatchSize)
            .Select(c => c.Select(k => new BatchEntry(k, _value)).ToArray())
            .ToArray();
        _root = BenchData.NewTempDirectory("actors");
        BenchData.Quiesce();
    }

    [GlobalCleanup]
    public void Cleanup() => BenchData.DeleteDirectory(_root);

    private void Start(string hocon)
    {
        _directory = Path.Combine(_root!, $"it-{_iteration++:D4}");
        var config = ConfigurationFactory.ParseString($"""
            akka.loglevel = WARNING
            crabkv.data-dir = "{_directory}"
            crabkv.partitions = 0
            crabkv.compaction.auto = off
            {hocon}
            """).WithFallback(CrabKvSettings.DefaultConfig());
        _system = ActorSystem.Create("bench", config);
        var store = CrabKvStore.Start(_system);
        _client = CrabKvClient.ConnectAsync(store).GetAwaiter().GetResult();
        _partitions = LocalStores.PartitionsOf(store)!.GetAwaiter().GetResult();
        _echo = _system.ActorOf(Props.Create<EchoActor>(), "echo");
    }

    [IterationSetup(Targets = [nameof(PutFsync1), nameof(PutFsync64), nameof(PutFsyncActors64), nameof(Batch100Fsync1), nameof(Batch100Fsync64), nameof(AskCeiling1), nameof(AskCeiling64)])]
    public void StartFsync() => Start("crabkv.sync-interval = 0");

    [IterationSetup(Targets = [nameof(PutSync100Ms1), nameof(PutSync100Ms64), nameof(PutSync100MsActors64)])]
    public void StartSync100Ms() => Start("crabkv.sync-interval = 100ms");

    [IterationSetup(Targets = [nameof(PutWriteBack1), nameof(PutWriteBack64), nameof(PutWriteBackActors64)])]
    public void StartWriteBack() => Start("crabkv.sync-interval = 100ms\ncrabkv.write-back.enabled = on");

    [IterationSetup(Targets = [nameof(GetHit1), nameof(GetHit64), nameof(GetHitActors64)])]
    public void StartPreloaded()
    {
        Start("crabkv.sync-interval = 100ms");
        Clients(64, GetOps64, i => _client!.PutAsync(_keys[i], _value)).GetAwaiter().GetResult();
        _client!.FlushAsync().GetAwaiter().GetResult();
    }

    [IterationCleanup]
    public void Stop()
    {
        CoordinatedShutdown.Get(_system!).Run(CoordinatedShutdown.ClrExitReason.Instance).GetAwaiter().GetResult();
        _system = null;
        BenchData.DeleteDirectory(_directory);
    }

    [Benchmark(Description = "actors: Ask ceiling (echo actor), 1 client", OperationsPerInvoke = AskOps1)]
    public Task AskCeiling1() => Clients(1, AskOps1, _ => _echo!.Ask<int>(1));

    [Benchmark(Description = "actors: Ask ceiling (echo actor), 64 clients", OperationsPerInvoke = AskOps64)]
    public Task AskCeiling64() => Clients(64, AskOps64, _ => _echo!.Ask<int>(1));

    [Benchmark(Description = "actors: put, fsync before ack, 1 client", OperationsPerInvoke = FsyncOps1)]
    public Task PutFsync1() => Clients(1, FsyncOps1, i => _client!.PutAsync(_keys[i], _value));

    [Benchmark(Description = "actors: put, fsync before ack, 64 clients", OperationsPerInvoke = FsyncOps64)]
    public Task PutFsync64() => Clients(64, FsyncOps64, i => _client!.PutAsync(_keys[i], _value));

    [Benchmark(Description = "actors: put, fsync every 100 ms, 1 client", OperationsPerInvoke = SyncOps1)]
    public Task PutSync100Ms1() => Clients(1, SyncOps1, i => _client!.PutAsync(_keys[i], _value));

    [Benchmark(Description = "actors: put, fsync every 100 ms, 64 clients", OperationsPerInvoke = SyncOps64)]
    public Task PutSync100Ms64() => Clients(64, SyncOps64, i => _client!.PutAsync(_keys[i], _value));

    [Benchmark(Description = "actors: put, write-back, 1 client", OperationsPerInvoke = WriteBackOps1)]
    public Task PutWriteBack1() => Clients(1, WriteBackOps1, i => _client!.PutAsync(_keys[i], _value));

    [Benchmark(Description = "actors: put, write-back, 64 clients", OperationsPerInvoke = WriteBackOps64)]
    public Task PutWriteBack64() => Clients(64, WriteBackOps64, i => _client!.PutAsync(_keys[i], _value));

    [Benchmark(Description = "actors: batch of 100 + fsync (per record), 1 client", OperationsPerInvoke = BatchRecords1)]
    public Task Batch100Fsync1() => Clients(1, BatchRecords1 / BatchSize, i => _client!.PutBatchAsync(_batches[i]));

    [Benchmark(Description = "actors: batch of 100 + fsync (per record), 64 clients", OperationsPerInvoke = BatchRecords64)]
    public Task Batch100Fsync64() => Clients(64, Math.Min(BatchRecords64 / BatchSize, _batches.Length), i => _client!.PutBatchAsync(_batches[i]));

    [Benchmark(Description = "actors: get (hit), 1 client", OperationsPerInvoke = GetOps1)]
    public Task GetHit1() => Clients(1, GetOps1, i => _client!.GetAsync(_keys[(int)(i * 7919L % GetOps64)]));

    [Benchmark(Description = "actors: get (hit), 64 clients", OperationsPerInvoke = GetOps64)]
    public Task GetHit64() => Clients(64, GetOps64, i => _client!.GetAsync(_keys[(int)(i * 7919L % GetOps64)]));

    [Benchmark(Description = "actors: put, fsync before ack, 64 client actors", OperationsPerInvoke = FsyncOps64)]
    public Task PutFsyncActors64() => ClientActors(FsyncOps64, i => new Put(_keys[i], _value), i => _keys[i]);

    [Benchmark(Description = "actors: put, fsync every 100 ms, 64 client actors", OperationsPerInvoke = SyncOps64)]
    public Task PutSync100MsActors64() => ClientActors(SyncOps64, i => new Put(_keys[i], _value), i => _keys[i]);

    [Benchmark(Description = "actors: put, write-back, 64 client actors", OperationsPerInvoke = WriteBackOps64)]
    public Task PutWriteBackActors64() => ClientActors(WriteBackOps64, i => new Put(_keys[i], _value), i => _keys[i]);

    [Benchmark(Description = "actors: get (hit), 64 client actors", OperationsPerInvoke = GetOps64)]
    public Task GetHitActors64() => ClientActors(GetOps64, i => new Get(_keys[(int)(i * 7919L % GetOps64)]), i => _keys[(int)(i * 7919L % GetOps64)]);

    /// <summary>64 client actors, request i going to the partition of <paramref name="keyOf"/>(i); completes when all replied.</summary>
    private Task ClientActors(int ops, Func<int, object> request, Func<int, string> keyOf)
    {
        const int clients = 64;
        var remaining = clients;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Action finished = () =>
        {
            if (Interlocked.Decrement(ref remaining) == 0)
            {
                done.TrySetResult();
            }
        };
        var partitions = _partitions;
        for (var c = 0; c < clients; c++)
        {
            var first = c;
            _system!.ActorOf(Props.Create(() => new ClientActor(first, clients, ops, partitions, request, keyOf, finished)));
        }
        return done.Task;
    }

    /// <summary>Sends request i, then i + step, … each after the previous reply; an error reply fails the run.</summary>
    private sealed class ClientActor : ReceiveActor
    {
        private readonly int _step, _ops;
        private readonly IActorRef[] _partitions;
        private readonly Func<int, object> _request;
        private readonly Func<int, string> _keyOf;
        private readonly Action _done;
        private int _next;

        public ClientActor(int first, int step, int ops, IActorRef[] partitions, Func<int, object> request, Func<int, string> keyOf, Action done)
        {
            (_next, _step, _ops, _partitions, _request, _keyOf, _done) = (first, step, ops, partitions, request, keyOf, done);
            Receive<CrabKvError>(e => throw new InvalidOperationException($"Benchmark request failed: {e.Message}"));
            Receive<GetResult>(r =>
            {
                if (!r.Found)
                {
                    throw new InvalidOperationException($"Benchmark get of '{r.Key}' missed.");
                }
                SendNext();
            });
            ReceiveAny(_ => SendNext());
        }

        protected override void PreStart() => SendNext();

        private void SendNext()
        {
            if (_next >= _ops)
            {
                _done();
                Context.Stop(Self);
                return;
            }
            var i = _next;
            _next += _step;
            _partitions[KeyPartitioner.PartitionOf(_keyOf(i), _partitions.Length)].Tell(_request(i));
        }
    }

    /// <summary>Runs <paramref name="ops"/> requests from <paramref name="clients"/> concurrent sequential loops.</summary>
    private static Task Clients(int clients, int ops, Func<int, Task> request)
    {
        var loops = new Task[clients];
        for (var c = 0; c < clients; c++)
        {
            var first = c;
            loops[c] = Task.Run(async () =>
            {
                for (var i = first; i < ops; i += clients)
                {
                    await request(i).ConfigureAwait(false);
                }
            });
        }
        return Task.WhenAll(loops);
    }

    private sealed class EchoActor : ReceiveActor
    {
        public EchoActor() => Receive<int>(i => Sender.Tell(i));
    }
}
