using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Internal;
using CrabKv.Actors.Partition;

namespace CrabKv.Actors;

/// <summary>
/// The store of one node: starts one <c>PartitionActor</c> per partition (directories
/// <c>p-000</c>, <c>p-001</c>, … under <c>data-dir</c>) and routes each keyed request to the
/// partition of its key; store-wide requests go to every partition and are answered once.
/// Send it the messages of <c>CrabKvProtocol</c>, or use the typed <c>CrabKvClient</c>.
/// Start it with <c>CrabKvStore.Start</c> (or <c>WithCrabKv</c> in Akka.Hosting).
/// </summary>
public sealed class CrabKvStoreActor : ReceiveActor
{
    private readonly CrabKvSettings _settings;
    private readonly IActorRef[] _partitions;
    private readonly bool[] _stopped;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<(IActorRef To, long RequestId)> _shutdownWaiters = new();
    private bool _shuttingDown;
    private readonly HashSet<IActorRef> _aggregators = new();

    /// <summary>Creates the store actor.</summary>
    public CrabKvStoreActor(CrabKvSettings settings)
    {
        _settings = settings;
        _partitions = new IActorRef[settings.Partitions];
        _stopped = new bool[settings.Partitions];

        Receive<PutBatch>(m =>
        {
            if (m.Entries is null || m.Entries.Count == 0 || m.Entries.Any(e => e is null || string.IsNullOrEmpty(e.Key)))
            {
                Route(0, m); // the partition answers with the precise error
                return;
            }
            var first = KeyPartitioner.PartitionOf(m.Entries[0].Key, _partitions.Length);
            if (m.Entries.Any(e => KeyPartitioner.PartitionOf(e.Key, _partitions.Length) != first))
            {
                Sender.Tell(new CrabKvError(CrabKvErrorCode.InvalidRequest,
                    $"The keys of an atomic batch must live in one partition (this node has {_partitions.Length}); nothing was written. " +
                    "Group keys by CrabKvClient.PartitionOf, or run with crabkv.partitions = 1.", m.RequestId));
                return;
            }
            Route(first, m);
        });
        Receive<IKeyedRequest>(m => Route(string.IsNullOrEmpty(m.Key) ? 0 : KeyPartitioner.PartitionOf(m.Key, _partitions.Length), m));
        Receive<GetPartitions>(m => Sender.Tell(new PartitionRefs(_partitions, m.RequestId)));
        Receive<Flush>(m => Scatter(m, m.RequestId));
        Receive<Compact>(m => Scatter(m, m.RequestId));
        Receive<GetStats>(m => Scatter(m, m.RequestId));
        Receive<CompactAndShutdown>(m =>
        {
            _shuttingDown = true;
            Scatter(m, m.RequestId);
        });
        Receive<Shutdown>(m =>
        {
            _shuttingDown = true;
            _shutdownWaiters.Add((Sender, m.RequestId));
            _aggregators.Add(Context.Watch(Context.ActorOf(ScatterGather.Props(m, m.RequestId, Self, Live()))));
        });
        Receive<ShutdownOk>(_ => StopWhenAllStopped());
        Receive<CrabKvError>(e =>
        {
            _log.Warning("Graceful shutdown reported: {0}", e.Message);
            StopWhenAllStopped();
        });
        Receive<Terminated>(t =>
        {
            var i = Array.IndexOf(_partitions, t.ActorRef);
            if (i >= 0)
            {
                _stopped[i] = true;
            }
            _aggregators.Remove(t.ActorRef);
            StopWhenAllStopped();
        });
        ReceiveAny(m =>
        {
            if (!Sender.IsNobody() && !Sender.Equals(Context.System.DeadLetters))
            {
                Sender.Tell(new CrabKvError(CrabKvErrorCode.UnknownMessage, $"Unknown message {m.GetType().Name}.", m is ICrabKvRequest r ? r.RequestId : 0));
            }
        });
    }

    /// <summary>Props of the store actor.</summary>
    public static Props Props(CrabKvSettings settings) => Akka.Actor.Props.Create(() => new CrabKvStoreActor(settings));

    /// <summary>Directory of partition <paramref name="partition"/>.</summary>
    public static string PartitionDirectory(string dataDir, int partition) => Path.Combine(dataDir, $"p-{partition:D3}");

    /// <summary>Partitions are stopped, never restarted: a restart would lose in-flight state.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    /// <inheritdoc/>
    protected override void PreStart()
    {
        for (var i = 0; i < _partitions.Length; i++)
        {
            var dir = PartitionDirectory(Path.GetFullPath(_settings.DataDir), i);
            _partitions[i] = Context.Watch(Context.ActorOf(PartitionActor.Props(i, dir, _settings), $"p-{i:D3}"));
        }
    }

    private IActorRef[] Live() => _partitions.Where((_, i) => !_stopped[i]).ToArray();

    private void Route(int partition, ICrabKvRequest m)
    {
        if (_stopped[partition])
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.ShuttingDown, "The store is shutting down.", m.RequestId));
            return;
        }
        _partitions[partition].Forward(m);
    }

    private void Scatter(ICrabKvRequest m, long requestId)
    {
        var live = Live();
        if (live.Length < _partitions.Length && m is not GetStats)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.ShuttingDown, "The store is shutting down.", requestId));
            return;
        }
        _aggregators.Add(Context.Watch(Context.ActorOf(ScatterGather.Props(m, requestId, Sender, live))));
    }

    private void StopWhenAllStopped()
    {
        if (!_shuttingDown || _stopped.Any(s => !s) || _aggregators.Count > 0)
        {
            return; // a reply still being gathered (e.g. CompactAndShutdown's) must reach its caller first
        }
        foreach (var (to, id) in _shutdownWaiters)
        {
            to.Tell(new ShutdownOk(id));
        }
        _shutdownWaiters.Clear();
        Context.Stop(Self);
    }
}
