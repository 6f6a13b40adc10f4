using CrabKv.Actors.Diagnostics;
using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Internal;
using CrabKv.Actors.Partition;
using CrabKv.Storage;

namespace CrabKv.Actors;

/// <summary>
/// The store of one node: starts one <c>PartitionActor</c> per partition (directories
/// <c>p-000</c>, <c>p-001</c>, … under <c>data-dir</c>) and routes each keyed request to the
/// partition of its key; store-wide requests go to every partition and are answered once.
/// Send it the messages of <c>CrabKvProtocol</c>, or use the typed <c>CrabKvClient</c>.
/// Start it with <c>CrabKvStore.Start</c> (or <c>WithCrabKv</c> in Akka.Hosting), which
/// takes the data directory's lock; the store holds it until it stops.
/// </summary>
public sealed class CrabKvStoreActor : ReceiveActor
{
    private readonly CrabKvSettings _settings;
    private readonly DataDirectory _dataDirectory;
    private readonly LocalStoreEntry _local;
    private readonly IActorRef[] _partitions;
    private readonly bool[] _stopped;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<(IActorRef To, long RequestId)> _shutdownWaiters = new();
    private bool _shuttingDown;
    private readonly HashSet<IActorRef> _aggregators = new();

    /// <summary>Creates the store actor on an open data directory, which it releases when it stops.</summary>
    internal CrabKvStoreActor(CrabKvSettings settings, DataDirectory dataDirectory, LocalStoreEntry local)
    {
        _settings = settings;
        _dataDirectory = dataDirectory;
        _local = local;
        _partitions = new IActorRef[settings.Partitions];
        _stopped = new bool[settings.Partitions];

        Receive<PutBatch>(m =>
        {
            if (m.Entries is null || m.Entries.Count == 0 || m.Entries.Any(e => e is null || string.IsNullOrEmpty(e.Key)))
            {
                Route(0, m); // the partition answers with the precise error
                return;
            }
            if (!KeyPartitioner.TryPartitionOfBatch(m.Entries.Select(e => e.Key), _partitions.Length, out var partition))
            {
                CrabKvMetrics.Refused(m, CrabKvErrorCode.InvalidRequest);
                Sender.Tell(new CrabKvError(CrabKvErrorCode.InvalidRequest, KeyPartitioner.CrossPartitionBatchMessage(_partitions.Length), m.RequestId));
                return;
            }
            Route(partition, m);
        });
        Receive<IKeyedRequest>(m => Route(KeyPartitioner.PartitionOf(m.Key, _partitions.Length), m));
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
            if (HasReplyAddress(Sender))
            {
                CrabKvMetrics.Refused(m, CrabKvErrorCode.UnknownMessage);
                Sender.Tell(new CrabKvError(CrabKvErrorCode.UnknownMessage, $"Unknown message {m.GetType().Name}.", m is ICrabKvRequest r ? r.RequestId : 0));
            }
        });
    }

    /// <summary>Props of the store actor (internal: <c>CrabKvStore.Start</c> opens the data directory first).</summary>
    internal static Props Props(CrabKvSettings settings, DataDirectory dataDirectory, LocalStoreEntry local) =>
        Akka.Actor.Props.CreateBy(new Producer(settings, dataDirectory, local));

    /// <summary>Creates the actor through its internal constructor (Akka's activator only finds public ones).</summary>
    private sealed class Producer(CrabKvSettings settings, DataDirectory dataDirectory, LocalStoreEntry local) : IIndirectActorProducer
    {
        public Type ActorType => typeof(CrabKvStoreActor);

        public ActorBase Produce() => new CrabKvStoreActor(settings, dataDirectory, local);

        public void Release(ActorBase actor)
        {
        }
    }

    /// <summary>Partitions are stopped, never restarted: a restart would lose in-flight state.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    /// <inheritdoc/>
    protected override void PreStart()
    {
        // The node budgets (cache, write-back, write buffers, preallocation) shared by the partitions.
        var nodeSettings = _settings.FitPreallocation(CrabKvSettings.FreeBytesAt(_dataDirectory.Path), out var lowered);
        if (lowered is not null)
        {
            Context.GetLogger().Warning("CrabKv: {0}", lowered);
        }
        var partitionSettings = nodeSettings.PerPartition(_partitions.Length);
        for (var i = 0; i < _partitions.Length; i++)
        {
            var dir = _dataDirectory.PartitionPath(i);
            _partitions[i] = Context.Watch(Context.ActorOf(PartitionActor.Props(i, dir, partitionSettings), DataDirectory.PartitionDirectoryName(i)));
        }
        _local.Partitions.TrySetResult(_partitions.ToArray());
    }

    /// <summary>Runs after every partition has stopped (their locks released): leaves the local registry and releases the data directory.</summary>
    protected override void PostStop()
    {
        _local.Stopped = true;
        _local.Partitions.TrySetCanceled();
        LocalStores.Get(Context.System).Unregister(Self, _local);
        _dataDirectory.Dispose();
        base.PostStop();
    }

    /// <summary>False for "no sender" (<c>ActorRefs.NoSender</c>, Nobody, dead letters): nobody to answer.</summary>
    private bool HasReplyAddress(IActorRef? to) => to is not null && !to.IsNobody() && !to.Equals(Context.System.DeadLetters);

    private IActorRef[] Live() => _partitions.Where((_, i) => !_stopped[i]).ToArray();

    private void Route(int partition, ICrabKvRequest m)
    {
        if (_stopped[partition])
        {
            CrabKvMetrics.Refused(m, CrabKvErrorCode.ShuttingDown);
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
            CrabKvMetrics.Refused(m, CrabKvErrorCode.ShuttingDown);
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
            // GracefulStop (CoordinatedShutdown's stop task) and a Tell from outside an actor send
            // Shutdown without a sender: they wait for the Terminated, and a ShutdownOk sent to
            // them would only be logged as a dead letter on every stop.
            if (HasReplyAddress(to))
            {
                to.Tell(new ShutdownOk(id));
            }
        }
        _shutdownWaiters.Clear();
        Context.Stop(Self);
    }
}
