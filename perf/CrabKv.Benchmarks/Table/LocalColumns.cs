using System.Diagnostics;
using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Actors.Internal;
using HdrHistogram;

namespace CrabKv.Benchmarks.Table;

/// <summary>
/// A local actor store (<see cref="CrabKvStore"/>, one partition per core) in an actor system of
/// its own, started for one row and stopped after it (its data directory then measured).
/// </summary>
internal sealed class LocalStore : IStoreUnderTest
{
    private readonly string _directory;

    private LocalStore(string directory, ActorSystem system, CrabKvClient client, IActorRef[] partitions)
    {
        _directory = directory;
        System = system;
        Client = client;
        Partitions = partitions;
    }

    /// <summary>The actor system the store runs in.</summary>
    public ActorSystem System { get; }

    /// <inheritdoc />
    public CrabKvClient Client { get; }

    /// <summary>The partition actors (what client actors Tell).</summary>
    public IActorRef[] Partitions { get; }

    /// <inheritdoc />
    public int BatchPartitions => Partitions.Length;

    /// <summary>Starts a store configured for <paramref name="row"/>.</summary>
    public static async Task<LocalStore> StartAsync(string directory, TableRow row)
    {
        var config = ConfigurationFactory.ParseString($"""
            akka.loglevel = ERROR
            akka.stdout-loglevel = ERROR
            crabkv.data-dir = "{directory}"
            crabkv.partitions = 0
            {StoreColumn.RowHocon(row)}
            """).WithFallback(CrabKvSettings.DefaultConfig());
        var system = ActorSystem.Create("table", config);
        var store = CrabKvStore.Start(system);
        var client = await CrabKvClient.ConnectAsync(store, TimeSpan.FromSeconds(30));
        var partitions = await (LocalStores.PartitionsOf(store) ?? throw new InvalidOperationException("The local store did not register its partitions."));
        return new LocalStore(directory, system, client, partitions);
    }

    /// <inheritdoc />
    public Task<long> DiskBytesAsync() => Task.FromResult(TableWorkload.DirectoryBytes(_directory));

    /// <inheritdoc />
    public async Task<long> StopAsync()
    {
        await CoordinatedShutdown.Get(System).Run(CoordinatedShutdown.ClrExitReason.Instance);
        return TableWorkload.DirectoryBytes(_directory);
    }
}

/// <summary>
/// "client N": the local store through the typed <see cref="CrabKvClient"/>, N concurrent
/// callers each awaiting its request before sending the next.
/// </summary>
internal sealed class ClientColumn(int callers) : StoreColumn
{
    /// <inheritdoc />
    public override string Name => $"client {callers}";

    /// <inheritdoc />
    protected override async Task<IStoreUnderTest> StartAsync(string directory, TableRow row, TableOptions options) =>
        await LocalStore.StartAsync(directory, row);

    /// <inheritdoc />
    protected override Task<Measured> DriveAsync(IStoreUnderTest store, TableRow row, RowOps ops, long first, long maxOps, TimeSpan maxTime,
        IProgress<double>? progress, CancellationToken cancellationToken, Task? stopWhen) =>
        CallerLoops.RunAsync(callers, first, maxOps, maxTime, i => ops.Call(store.Client, i), progress, cancellationToken, stopWhen);
}

/// <summary>
/// "actors N": N client actors in the store's actor system, each Telling its request straight
/// to the key's partition actor and sending the next when the reply arrives (no Ask, no Task),
/// as <see cref="ActorBenchmarks"/>' client-actor rows do.
/// </summary>
internal sealed class ClientActorsColumn(int callers) : StoreColumn
{
    /// <inheritdoc />
    public override string Name => $"actors {callers}";

    /// <inheritdoc />
    protected override async Task<IStoreUnderTest> StartAsync(string directory, TableRow row, TableOptions options) =>
        await LocalStore.StartAsync(directory, row);

    /// <inheritdoc />
    protected override async Task<Measured> DriveAsync(IStoreUnderTest store, TableRow row, RowOps ops, long first, long maxOps, TimeSpan maxTime,
        IProgress<double>? progress, CancellationToken cancellationToken, Task? stopWhen)
    {
        var local = (LocalStore)store;
        var shared = new Shared(first, maxOps, maxTime, stopWhen);
        var done = new TaskCompletionSource<LongHistogram>[callers];
        for (var c = 0; c < callers; c++)
        {
            var tcs = done[c] = new TaskCompletionSource<LongHistogram>(TaskCreationOptions.RunContinuationsAsynchronously);
            local.System.ActorOf(Props.Create(() => new CallerActor(shared, ops, local.Partitions, tcs)));
        }
        var all = Task.WhenAll(done.Select(d => d.Task));
        using var registration = cancellationToken.Register(() => shared.Cancel());
        while (await Task.WhenAny(all, Task.Delay(200, CancellationToken.None)) != all)
        {
            progress?.Report(CallerLoops.Fraction(Interlocked.Read(ref shared.Done), maxOps, shared.Start, shared.Deadline));
        }
        var elapsed = Stopwatch.GetElapsedTime(shared.Start);
        var histograms = await all;
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(1);
        return new Measured(CallerLoops.Merge(histograms), Interlocked.Read(ref shared.Done), elapsed);
    }

    /// <summary>The op counter and limits the callers of one part share.</summary>
    private sealed class Shared(long first, long maxOps, TimeSpan maxTime, Task? stopWhen)
    {
        public long Next = first - 1;
        public long Done;
        public readonly long End = first + maxOps;
        public readonly long Start = Stopwatch.GetTimestamp();
        public long Deadline = Stopwatch.GetTimestamp() + (long)(maxTime.TotalSeconds * Stopwatch.Frequency);

        public bool Over(long now) => now >= Volatile.Read(ref Deadline) || stopWhen?.IsCompleted == true;

        public void Cancel() => Volatile.Write(ref Deadline, 0);
    }

    /// <summary>Sends op i, records its latency when the reply comes, sends the next; stops at a limit.</summary>
    private sealed class CallerActor : ReceiveActor
    {
        private readonly Shared _shared;
        private readonly RowOps _ops;
        private readonly IActorRef[] _partitions;
        private readonly TaskCompletionSource<LongHistogram> _done;
        private readonly LongHistogram _histogram = Cell.NewHistogram();
        private long _op;
        private long _sent;
        private IActorRef _target = ActorRefs.Nobody;
        private ICrabKvRequest _request = new GetStats();

        public CallerActor(Shared shared, RowOps ops, IActorRef[] partitions, TaskCompletionSource<LongHistogram> done)
        {
            (_shared, _ops, _partitions, _done) = (shared, ops, partitions, done);
            ReceiveAny(reply =>
            {
                if (reply is CrabKvError { Code: CrabKvErrorCode.WriteBackBufferFull })
                {
                    // The documented back-pressure (a flush is under way): send the same request
                    // again shortly; its latency counts from the first send.
                    Context.System.Scheduler.ScheduleTellOnce(TimeSpan.FromMilliseconds(1), _target, _request, Self);
                    return;
                }
                TableWorkload.Record(_histogram, Stopwatch.GetTimestamp() - _sent);
                try
                {
                    _ops.CheckReply(reply, _op);
                }
                catch (InvalidOperationException e)
                {
                    _done.TrySetException(e);
                    Context.Stop(Self);
                    return;
                }
                Interlocked.Increment(ref _shared.Done);
                SendNext();
            });
        }

        protected override void PreStart() => SendNext();

        private void SendNext()
        {
            var now = Stopwatch.GetTimestamp();
            long i;
            if (_shared.Over(now) || (i = Interlocked.Increment(ref _shared.Next)) >= _shared.End)
            {
                _done.TrySetResult(_histogram);
                Context.Stop(Self);
                return;
            }
            var (routingKey, request) = _ops.Message(i);
            _op = i;
            _sent = now;
            _target = _partitions[KeyPartitioner.PartitionOf(routingKey, _partitions.Length)];
            _request = request;
            _target.Tell(request);
        }
    }
}
