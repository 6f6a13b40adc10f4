using Akka.Actor;
using Akka.Event;
using CrabKv.Actors;
using CrabKv.Actors.Partition;

namespace CrabKv.Cluster.Sharding;

/// <summary>
/// Internal. The sharded entity of one partition: owns the partition's <c>PartitionActor</c>
/// (child "partition", directory <c>p-NNN</c> of the node's data directory) and forwards every
/// message to it, keeping the sender. The handoff stop message is the public
/// <see cref="StopPartition"/>: the partition flushes, fsyncs, seals and releases its lock,
/// then the entity stops with it.
/// <code>
///   Serving ──StopPartition──▶ Stopping ──partition terminated──▶ stopped
///      │ partition died
///      ▼
///   stopped (sharding starts the entity again on its next message)
/// </code>
/// Owning the child is what leaves room for a "pull the data first" state: the partition
/// actor can be created once the partition's files are in place, with requests waiting meanwhile.
/// </summary>
internal sealed class PartitionEntity : ReceiveActor
{
    private readonly int _partition;
    private readonly string _directory;
    private readonly CrabKvSettings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<IActorRef> _stopWaiters = new();
    private IActorRef _child = ActorRefs.Nobody;
    private readonly Dictionary<IActorRef, IActorRef> _collectors = new(); // origin endpoint → its reply collector

    public PartitionEntity(int partition, string directory, CrabKvSettings settings)
    {
        _partition = partition;
        _directory = directory;
        _settings = settings;
        Become(Serving);
    }

    public static Props Props(int partition, string directory, CrabKvSettings settings) =>
        Akka.Actor.Props.Create(() => new PartitionEntity(partition, directory, settings));

    /// <summary>Never restarted: a restart would lose the partition's in-flight state.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(_ => Directive.Stop);

    protected override void PreStart()
    {
        if (_partition < 0)
        {
            // A StartEntity (or a raw send) with an id that names no partition: nothing to host.
            _log.Warning("Entity {0} names no partition of {1}; stopping it", Self.Path.Name, _settings.Partitions);
            Context.Stop(Self);
            return;
        }
        _child = Context.Watch(Context.ActorOf(PartitionActor.Props(_partition, _directory, _settings), "partition"));
    }

    private void Serving()
    {
        Receive<ProtocolBatch>(Unbatch);
        Receive<StopPartition>(_ => BeginStop());
        Receive<Terminated>(t => !t.ActorRef.Equals(_child), t => ForgetCollector(t.ActorRef));
        Receive<Terminated>(t => t.ActorRef.Equals(_child), _ =>
        {
            // CompactAndShutdown stops a partition by itself; a failure stops it too. Either way
            // the entity goes with it and sharding starts both again when asked.
            _log.Info("Partition {0} stopped; its entity stops too", _partition);
            Context.Stop(Self);
        });
        ReceiveAny(m => _child.Forward(m));
    }

    private void Stopping()
    {
        Receive<ProtocolBatch>(Unbatch);
        Receive<StopPartition>(_ => RememberWaiter());
        Receive<PartitionStopped>(m =>
        {
            foreach (var w in _stopWaiters)
            {
                w.Tell(m);
            }
            _stopWaiters.Clear();
        });
        Receive<Terminated>(t => !t.ActorRef.Equals(_child), t => ForgetCollector(t.ActorRef));
        Receive<Terminated>(t => t.ActorRef.Equals(_child), _ => Context.Stop(Self));
        // Requests that reach a stopping partition get its own "shutting down" answers.
        ReceiveAny(m => _child.Forward(m));
    }

    /// <summary>
    /// Requests a remote endpoint batched for this partition: handed to the partition in order,
    /// their replies collected per origin and sent back batched (<see cref="ReplyCollector"/>).
    /// </summary>
    private void Unbatch(ProtocolBatch batch)
    {
        var origin = Sender;
        if (!_collectors.TryGetValue(origin, out var collector) || collector.IsNobody())
        {
            collector = Context.ActorOf(ReplyCollector.Props(origin));
            _collectors[origin] = collector;
            Context.Watch(collector);
        }
        foreach (var message in batch.Messages)
        {
            _child.Tell(message, collector);
        }
    }

    private void BeginStop()
    {
        RememberWaiter();
        _child.Tell(StopPartition.Instance, Self);
        Become(Stopping);
    }

    private void ForgetCollector(IActorRef collector)
    {
        foreach (var (origin, c) in _collectors.Where(kv => kv.Value.Equals(collector)).ToList())
        {
            _collectors.Remove(origin);
        }
    }

    /// <summary>The shard (our parent) only waits for termination; anyone else asked for a PartitionStopped.</summary>
    private void RememberWaiter()
    {
        if (!Sender.Equals(Context.Parent) && !Sender.IsNobody() && !Sender.Equals(Context.System.DeadLetters))
        {
            _stopWaiters.Add(Sender);
        }
    }
}
