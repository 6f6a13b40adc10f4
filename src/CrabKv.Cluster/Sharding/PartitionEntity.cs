using Akka.Actor;
using Akka.DistributedData;
using Akka.Event;
using CrabKv.Actors;
using CrabKv.Actors.Diagnostics;
using CrabKv.Actors.Partition;
using CrabKv.Actors.Transfer;
using CrabKv.Cluster.Handoff;
using CrabKv.Storage.Transfer;

namespace CrabKv.Cluster.Sharding;

/// <summary>
/// Internal. The sharded entity of one partition: makes sure this node holds the partition's data,
/// then owns its <c>PartitionActor</c> (child "partition", directory <c>p-NNN</c> of the node's data
/// directory) and forwards every message to it, keeping the sender. The handoff stop message is
/// the public <see cref="StopPartition"/>: the partition flushes, fsyncs, seals and releases its
/// lock, then the entity stops with it.
/// <code>
///   Resolving ──registry: this node holds it, or nobody (claim, epoch 1)──▶ Serving
///      │ holder is another node, reachable                       ▲
///      ├──────────▶ Pulling ──installed, registry epoch+1, old copy deleted──┘
///      │               │ transfer failed
///      │ holder unreachable / down / unknown address
///      ▼               ▼
///   Unavailable ◀── (retry after handoff-retry-interval: back to Resolving)
///   Serving ──StopPartition──▶ Stopping ──partition terminated──▶ stopped
/// </code>
/// Requests wait in a stash while Resolving and Pulling (at most <c>max-waiting-requests</c>; more
/// get <see cref="CrabKvErrorCode.PartitionMoving"/>); while Unavailable they get
/// <see cref="CrabKvErrorCode.PartitionUnavailable"/>, never "not found". A StopPartition before
/// Serving stops the entity (a transfer in progress is abandoned: its staging copy is discarded,
/// the holder's copy stays authoritative), answering the waiting requests with PartitionMoving.
/// </summary>
internal sealed class PartitionEntity : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private sealed class Resolve : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly Resolve Instance = new();
    }

    private sealed class StopNow : INoSerializationVerificationNeeded
    {
        public static readonly StopNow Instance = new();
    }

    private sealed record SourceFound(IActorRef Source) : INoSerializationVerificationNeeded;

    private sealed record SourceNotFound(string Reason) : INoSerializationVerificationNeeded;

    private sealed record Claimed(Holder Holder) : INoSerializationVerificationNeeded;

    private sealed record Recorded(Holder Holder, Holder Previous, Address PreviousAddress) : INoSerializationVerificationNeeded;

    private readonly int _partition;
    private readonly string _directory;
    private readonly CrabKvSettings _settings;
    private readonly HandoffContext? _handoff;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<IActorRef> _stopWaiters = new();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly IActorRef _replicator;
    private IActorRef _child = ActorRefs.Nobody;
    private readonly Dictionary<IActorRef, IActorRef> _collectors = new(); // origin endpoint → its reply collector
    private IActorRef _sink = ActorRefs.Nobody;
    private int _waiting;
    private string _unavailableReason = "";

    /// <param name="partition">The partition (-1: an entity id that names none).</param>
    /// <param name="directory">Its directory on this node.</param>
    /// <param name="settings">Settings of the partition.</param>
    /// <param name="handoff">The node's handoff context; null: serve the local directory at once (no registry).</param>
    /// <param name="replicator">The DistributedData replicator holding the registry (default: the system's; a test probe in tests).</param>
    public PartitionEntity(int partition, string directory, CrabKvSettings settings, HandoffContext? handoff, IActorRef? replicator = null)
    {
        _partition = partition;
        _directory = directory;
        _settings = settings;
        _handoff = handoff;
        _replicator = handoff is null ? ActorRefs.Nobody : replicator ?? DistributedData.Get(Context.System).Replicator;
        Become(Resolving);
    }

    public IStash Stash { get; set; } = null!;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(int partition, string directory, CrabKvSettings settings, HandoffContext? handoff = null, IActorRef? replicator = null) =>
        Akka.Actor.Props.Create(() => new PartitionEntity(partition, directory, settings, handoff, replicator));

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
        if (_handoff is null)
        {
            StartPartition();
            return;
        }
        Self.Tell(Resolve.Instance);
    }

    // ------------------------------------------------------------------ before serving

    private void Resolving()
    {
        Receive<Resolve>(_ => _replicator.Tell(Dsl.Get(HolderRegistry.Key, new ReadMajority(_handoff!.Cluster.RegistryTimeout))));
        Receive<IGetResponse>(OnRegistry);
        // A claim leaves an entry it finds at its epoch or later alone: read again (a majority) and follow what it says.
        Receive<UpdateSuccess>(u => u.Request is Claimed, u =>
        {
            _claimed = ((Claimed)u.Request!).Holder;
            Self.Tell(Resolve.Instance);
        });
        Receive<IUpdateResponse>(u => u.Request is Claimed, u => RetryLater($"recording this node as the holder failed ({u.GetType().Name})"));
        Waiting();
    }

    private void Pulling()
    {
        Receive<SourceFound>(m =>
        {
            _sink = Context.Watch(Context.ActorOf(PartitionTransferSink.Props(m.Source, _partition, _handoff!.DataDir, Self, _handoff.Transfer with { Files = _handoff.Files }), "sink"));
        });
        Receive<SourceNotFound>(m => RetryLater(m.Reason));
        Receive<TransferFailed>(m =>
        {
            Context.Unwatch(_sink);
            _sink = ActorRefs.Nobody;
            CrabKvMetrics.PartitionMoved(incoming: true, completed: false);
            RetryLater($"the transfer failed: {m.Reason}");
        });
        Receive<Terminated>(t => t.ActorRef.Equals(_sink), _ => RetryLater("the transfer sink stopped"));
        Receive<UpdateSuccess>(u => u.Request is Recorded, u =>
        {
            var r = (Recorded)u.Request!;
            // Only now is the old copy garbage: the registry (a majority) names this node.
            Context.ActorSelection(new RootActorPath(r.PreviousAddress) / "system" / HandoffAgent.Name)
                .Tell(new DeletePartitionCopy(_partition, r.Holder.NodeId, r.Holder.Epoch));
            OnHolderRecorded(r.Holder);
        });
        Receive<IUpdateResponse>(u => u.Request is Recorded, u =>
        {
            // The copy is installed here but the registry may still name the old holder: write again
            // (same epoch, idempotent) before serving; requests keep waiting.
            var r = (Recorded)u.Request!;
            _log.Warning("Partition {0}: recording this node as holder (epoch {1}) failed ({2}); retrying", _partition, r.Holder.Epoch, u.GetType().Name);
            Timers.StartSingleTimer("record", new RecordAgain(r), _handoff!.Cluster.HandoffRetryInterval);
        });
        Receive<RecordAgain>(m => Record(m.Recorded));
        Receive<TransferCompleted>(m =>
        {
            Context.Unwatch(_sink);
            _sink = ActorRefs.Nobody;
            _log.Info("Partition {0}: pulled {1} bytes in {2}", _partition, m.Bytes, m.Duration);
            CrabKvMetrics.PartitionMoved(incoming: true, completed: true);
            Record(_pending!);
        });
        Waiting();
    }

    private sealed record RecordAgain(Recorded Recorded) : INoSerializationVerificationNeeded;

    private Recorded? _pending;

    /// <summary>What this entity last claimed (a claim is read back before serving).</summary>
    private Holder? _claimed;

    private void Record(Recorded r) =>
        _replicator.Tell(Dsl.Update(HolderRegistry.Key, LWWDictionary<string, string>.Empty, new WriteMajority(_handoff!.Cluster.RegistryTimeout), r,
            m => HolderRegistry.SetHolder(m, _cluster.SelfUniqueAddress, _partition, r.Holder)));

    private void Unavailable()
    {
        Receive<Resolve>(_ =>
        {
            Become(Resolving);
            Self.Tell(Resolve.Instance);
        });
        Receive<StopPartition>(_ => StopBeforeServing());
        Receive<ICrabKvRequest>(m => Sender.Tell(Refused(m, CrabKvErrorCode.PartitionUnavailable, _unavailableReason)));
        Receive<ProtocolBatch>(b => RefuseBatch(b, CrabKvErrorCode.PartitionUnavailable, _unavailableReason));
        ReceiveAny(m => _log.Debug("Partition {0} (unavailable): ignored {1}", _partition, m.GetType().Name));
    }

    /// <summary>Common to Resolving and Pulling: requests wait (bounded), StopPartition stops.</summary>
    private void Waiting()
    {
        Receive<StopPartition>(_ => StopBeforeServing());
        Receive<ICrabKvRequest>(m =>
        {
            if (_waiting >= _handoff!.Cluster.MaxWaitingRequests)
            {
                Sender.Tell(Refused(m, CrabKvErrorCode.PartitionMoving,
                    $"Partition {_partition} is moving to this node and {_waiting} requests already wait for it; retry shortly."));
                return;
            }
            _waiting++;
            Stash.Stash();
        });
        Receive<ProtocolBatch>(b =>
        {
            // A combined batch of requests waits like its requests would, counted one by one.
            if (_waiting + b.Messages.Count > _handoff!.Cluster.MaxWaitingRequests)
            {
                RefuseBatch(b, CrabKvErrorCode.PartitionMoving,
                    $"Partition {_partition} is moving to this node and {_waiting} requests already wait for it; retry shortly.");
                return;
            }
            _waiting += b.Messages.Count;
            Stash.Stash();
        });
        ReceiveAny(m => _log.Debug("Partition {0} (not serving yet): ignored {1}", _partition, m.GetType().Name));
    }

    private void OnRegistry(IGetResponse response)
    {
        if (response is GetFailure)
        {
            RetryLater("the holder registry could not be read from a majority");
            return;
        }
        var map = response is GetSuccess s ? s.Get(HolderRegistry.Key) : null;
        var holder = HolderRegistry.HolderOf(map, _partition);
        var me = _handoff!.NodeId;
        if (holder is null && HandoffAgent.LoadCopy(_handoff, _log).TryGetValue(_partition, out var remembered))
        {
            // The live registry knows no holder, but this node's durable copy of it does (the
            // whole cluster restarted): never claim it empty while its holder may come back.
            if (remembered.NodeId == me)
            {
                ClaimAs(remembered);
                return;
            }
            holder = remembered;
        }
        if (holder is null)
        {
            // A new cluster (or a registry lost with the whole cluster, and nobody has this
            // partition on disk): this node becomes the holder, empty or with what it has.
            ClaimAs(new Holder(me, 1));
            return;
        }
        if (holder.Value.NodeId == me)
        {
            if (holder != _claimed && !NodeIdentity.HasData(_directory, _handoff.Files))
            {
                // (Not after this entity's own claim of a new, empty partition.) Normal for a
                // partition that held no key when the node stopped (an empty segment is deleted
                // when it is sealed), so every restart of a node with empty partitions says it:
                // information, not a warning. A data directory wiped as a whole has a new node
                // identity and never gets here (the registry names the old one).
                _log.Info("Partition {0}: the registry names this node as its holder (epoch {1}) and '{2}' has no segment (it held no key); serving it empty",
                    _partition, holder.Value.Epoch, _directory);
            }
            OnHolderRecorded(holder.Value);
            return;
        }
        var address = HolderRegistry.AddressOf(map, holder.Value.NodeId);
        if (address is null || !HolderRegistry.IsReachable(_cluster, address))
        {
            _unavailableReason = $"Partition {_partition} is unavailable: its data is held by node {holder.Value.NodeId} " +
                                 (address is null ? "(address unknown)" : $"at {address}") + ", which is unreachable or down; retry once it is back.";
            _log.Warning(_unavailableReason);
            Become(Unavailable);
            Stash.UnstashAll();
            _waiting = 0;
            Timers.StartSingleTimer(Resolve.Instance, Resolve.Instance, _handoff.Cluster.HandoffRetryInterval);
            return;
        }
        BeginPull(holder.Value, address);
    }

    /// <summary>Records this node as the holder (unless the registry already names one at that epoch or later), then serves.</summary>
    private void ClaimAs(Holder claim) =>
        _replicator.Tell(Dsl.Update(HolderRegistry.Key, LWWDictionary<string, string>.Empty, new WriteMajority(_handoff!.Cluster.RegistryTimeout), new Claimed(claim),
            m => HolderRegistry.HolderOf(m, _partition) is not { } current || current.Epoch < claim.Epoch
                ? HolderRegistry.SetHolder(m, _cluster.SelfUniqueAddress, _partition, claim)
                : m));

    private void BeginPull(Holder holder, Address address)
    {
        // A copy here that the registry does not name is stale (an earlier holding, or a crash
        // between install and record): the holder's copy is authoritative.
        if (NodeIdentity.HasData(_directory, _handoff!.Files))
        {
            try
            {
                _log.Warning("Partition {0}: deleting this node's stale copy; the registry names {1} (epoch {2})", _partition, holder.NodeId, holder.Epoch);
                PartitionExport.DeleteSource(_directory, _handoff.Files);
            }
            catch (Exception e) when (e is StoreLockedException or IOException or UnauthorizedAccessException)
            {
                RetryLater($"the stale local copy could not be deleted: {e.Message}");
                return;
            }
        }
        _log.Info("Partition {0}: pulling its data from node {1} at {2} (epoch {3})", _partition, holder.NodeId, address, holder.Epoch);
        _pending = new Recorded(new Holder(_handoff.NodeId, holder.Epoch + 1), holder, address);
        Become(Pulling);
        var timeout = _handoff.Cluster.RegistryTimeout;
        Context.ActorSelection(new RootActorPath(address) / "system" / HandoffAgent.Name / HandoffAgent.SourceName)
            .ResolveOne(timeout)
            .PipeTo(Self, success: r => new SourceFound(r), failure: e => new SourceNotFound($"no transfer source at {address}: {e.Message}"));
    }

    private void RetryLater(string why)
    {
        _log.Warning("Partition {0}: {1}; trying again in {2}", _partition, why, _handoff!.Cluster.HandoffRetryInterval);
        Become(Resolving);
        Timers.StartSingleTimer(Resolve.Instance, Resolve.Instance, _handoff.Cluster.HandoffRetryInterval);
    }

    private void OnHolderRecorded(Holder holder)
    {
        _log.Debug("Partition {0}: held by this node (epoch {1}); serving", _partition, holder.Epoch);
        StartPartition();
    }

    private void StartPartition()
    {
        _child = Context.Watch(Context.ActorOf(PartitionActor.Props(_partition, _directory, _settings), "partition"));
        Become(Serving);
        _waiting = 0;
        Stash.UnstashAll();
    }

    private void StopBeforeServing()
    {
        Become(() =>
        {
            Receive<StopNow>(_ => Context.Stop(Self));
            Receive<ICrabKvRequest>(m => Sender.Tell(Refused(m, CrabKvErrorCode.PartitionMoving,
                $"Partition {_partition} is moving; retry shortly.")));
            Receive<ProtocolBatch>(b => RefuseBatch(b, CrabKvErrorCode.PartitionMoving, $"Partition {_partition} is moving; retry shortly."));
            ReceiveAny(_ => { });
        });
        Stash.UnstashAll();
        Self.Tell(StopNow.Instance);
    }

    // ------------------------------------------------------------------ serving

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
    /// <summary>Answers every request of a combined batch with one error, batched back to its origin.</summary>
    private void RefuseBatch(ProtocolBatch batch, CrabKvErrorCode code, string message) =>
        Sender.Tell(new ProtocolBatch(batch.Messages.OfType<ICrabKvRequest>().Select(r => (ICrabKvMessage)Refused(r, code, message)).ToList()));

    /// <summary>The error answering a request refused here (it never reaches the partition actor), counted by the meter.</summary>
    private static CrabKvError Refused(ICrabKvRequest request, CrabKvErrorCode code, string message)
    {
        CrabKvMetrics.Refused(request, code);
        return new CrabKvError(code, message, request.RequestId);
    }

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

    /// <summary>
    /// The shard (our parent) and its handoff stopper only wait for termination; anyone else
    /// asked for a PartitionStopped (answering sharding's own actors made a dead letter per stop).
    /// </summary>
    private void RememberWaiter()
    {
        if (!Sender.Equals(Context.Parent) && !Sender.IsNobody() && !Sender.Equals(Context.System.DeadLetters)
            && !Sender.Path.ToStringWithoutAddress().StartsWith("/system/sharding/", StringComparison.Ordinal))
        {
            _stopWaiters.Add(Sender);
        }
    }
}
