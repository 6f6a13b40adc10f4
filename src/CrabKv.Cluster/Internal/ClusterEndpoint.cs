using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Event;
using CrabKv.Actors;
using CrabKv.Actors.Internal;
using CrabKv.Cluster.Handoff;
using CrabKv.Cluster.Sharding;

namespace CrabKv.Cluster.Internal;

/// <summary>
/// Internal. The store endpoint of a cluster node (registered as <c>CrabKvStoreKey</c>): speaks
/// the public protocol like the single-node store actor, over the shard region (kv nodes) or
/// the shard-region proxy (client-only nodes). Keyed requests go to the region as they are (the
/// message extractor finds their partition); a batch whose keys span partitions is refused
/// here with the single-node store's error; store-wide requests fan out to every partition in
/// a <see cref="PartitionEnvelope"/> through a ScatterGather child and get one reply.
/// <code>
///   Checking ──PartitionCountChecked──▶ Starting ──region started──▶ Forming ──every Up kv region registered──▶ Serving
///      │ PartitionCountRefused              │ start failed
///      ▼                                    ▼
///   Refused (every request: StoreFailed naming both counts, or the failure)
/// </code>
/// Requests that arrive before Serving wait (bounded by <c>max-waiting-requests</c>).
/// Between Starting and Serving, Forming: requests wait until this node is Up and the
/// coordinator knows the region of every Up kv node (at most 10 s), so the first allocation is
/// even. On kv nodes every partition is then started, and again at
/// <c>ensure-partitions-interval</c> (<c>ShardRegion.StartEntity</c>, idempotent).
/// </summary>
internal sealed partial class ClusterEndpoint : ReceiveActor, IWithUnboundedStash, IWithTimers
{
    private sealed class EnsurePartitions : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly EnsurePartitions Instance = new();
    }

    private sealed record RegionStarted(IActorRef Region) : INoSerializationVerificationNeeded;

    /// <summary>The coordinator's registered regions, against the kv nodes Up when asked.</summary>
    private sealed record RegionsSeen(int Registered, int KvNodesUp) : INoSerializationVerificationNeeded;

    private sealed class CheckFormation : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly CheckFormation Instance = new();
    }

    /// <summary>Requests wait at most this long (after this node is Up) for every Up kv node's region to register.</summary>
    private static readonly TimeSpan FormationWait = TimeSpan.FromSeconds(10);

    private sealed record RegionFailed(Exception Cause) : INoSerializationVerificationNeeded;

    private readonly CrabKvClusterSettings _settings;
    private readonly Func<string, Props>? _entityProps;
    private readonly TaskCompletionSource<IActorRef> _ready;
    private readonly PartitionMessageExtractor _extractor;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private IActorRef _region = ActorRefs.Nobody;
    private IActorRef _ackSink = ActorRefs.Nobody;
    private int _waiting;
    private DateTime? _formingSince;

    /// <param name="settings">The cluster settings.</param>
    /// <param name="entityProps">Props of a partition entity by entity id on kv nodes; null on client-only nodes.</param>
    /// <param name="ready">Completed with the region (or proxy) once serving; failed when refused.</param>
    public ClusterEndpoint(CrabKvClusterSettings settings, Func<string, Props>? entityProps, TaskCompletionSource<IActorRef> ready)
    {
        _settings = settings;
        _entityProps = entityProps;
        _ready = ready;
        _extractor = new PartitionMessageExtractor(settings.Partitions);
        Become(Checking);
    }

    public IStash Stash { get; set; } = null!;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(CrabKvClusterSettings settings, Func<string, Props>? entityProps, TaskCompletionSource<IActorRef> ready) =>
        Akka.Actor.Props.Create(() => new ClusterEndpoint(settings, entityProps, ready));

    protected override void PostStop() =>
        _ready.TrySetException(new InvalidOperationException("The CrabKv cluster endpoint stopped before it served."));

    // ------------------------------------------------------------------ states

    private void Checking()
    {
        Receive<PartitionCountChecked>(_ =>
        {
            StartRegion();
            Become(Starting);
        });
        Receive<PartitionCountRefused>(m => Refuse(m.Message, new CrabKvConfigurationException("cluster.partitions",
            $"is {m.Ours}, but the cluster this node joined has {m.Theirs}; the node refused to join")));
        ReceiveAny(Wait);
    }

    private void Starting()
    {
        Receive<RegionStarted>(m =>
        {
            _region = m.Region;
            Become(Forming);
            var self = Self;
            Akka.Cluster.Cluster.Get(Context.System).RegisterOnMemberUp(() => self.Tell(CheckFormation.Instance));
            _ready.TrySetResult(m.Region);
        });
        Receive<RegionFailed>(m => Refuse($"The CrabKv shard region could not start: {m.Cause.Message}", m.Cause));
        ReceiveAny(Wait);
    }

    /// <summary>
    /// Until the coordinator knows the region of every kv node that is Up (those brought Up
    /// together by <c>akka.cluster.min-nr-of-members</c>), at most <see cref="FormationWait"/>
    /// after this node is Up: requests wait, so that the first allocation of each partition
    /// spreads them over every kv node. (Akka's per-role min-nr-of-members would gate the
    /// coordinator itself, but also every later coordinator: see CrabKvCluster.RefuseRoleMinimum.)
    /// </summary>
    private void Forming()
    {
        Receive<CheckFormation>(_ =>
        {
            _formingSince ??= DateTime.UtcNow;
            var cluster = Akka.Cluster.Cluster.Get(Context.System);
            // Joining members count too: the read view may still show them Joining when this
            // node's MemberUp has fired, and a joining node's region registers as well.
            var kvNodesUp = cluster.State.Members.Count(m => m.Status is MemberStatus.Up or MemberStatus.Joining or MemberStatus.WeaklyUp && m.HasRole(_settings.Role));
            _region.Ask<CurrentRegions>(GetCurrentRegions.Instance, TimeSpan.FromSeconds(3))
                .PipeTo(Self, success: r => new RegionsSeen(r.Regions.Count, kvNodesUp), failure: _ => new RegionsSeen(0, kvNodesUp));
        });
        Receive<RegionsSeen>(m =>
        {
            if (m.Registered < m.KvNodesUp && DateTime.UtcNow - _formingSince < FormationWait)
            {
                Timers.StartSingleTimer(CheckFormation.Instance, CheckFormation.Instance, TimeSpan.FromMilliseconds(250));
                return;
            }
            if (m.Registered < m.KvNodesUp)
            {
                _log.Warning("CrabKv: {0} of {1} kv nodes' shard regions registered after {2}; serving anyway", m.Registered, m.KvNodesUp, FormationWait);
            }
            Become(Serving);
            Timers.StartPeriodicTimer(SweepPending.Instance, SweepPending.Instance, _settings.FanOutTimeout);
            if (_entityProps is not null)
            {
                _ackSink = Context.ActorOf(Akka.Actor.Props.Create<AckSink>(), "start-acks");
                Self.Tell(EnsurePartitions.Instance);
                if (_settings.EnsurePartitionsInterval > TimeSpan.Zero)
                {
                    Timers.StartPeriodicTimer(EnsurePartitions.Instance, EnsurePartitions.Instance, _settings.EnsurePartitionsInterval);
                }
            }
            _waiting = 0;
            Stash.UnstashAll();
        });
        ReceiveAny(Wait);
    }

    private void Serving()
    {
        // First: while the last kv node shuts down, nothing more goes to its region.
        Receive<ICrabKvRequest>(_ => NoHomeLeft(), RefuseStopping);
        Receive<PutBatch>(m =>
        {
            // Like the single-node store: a malformed batch goes to partition 0 for the precise
            // error; one whose keys span partitions is refused here, before it reaches the region.
            if (m.Entries is { Count: > 0 } entries && entries.All(e => e is not null && !string.IsNullOrEmpty(e.Key))
                && !KeyPartitioner.TryPartitionOfBatch(entries.Select(e => e.Key), _settings.Partitions, out _))
            {
                Sender.Tell(new CrabKvError(CrabKvErrorCode.InvalidRequest, KeyPartitioner.CrossPartitionBatchMessage(_settings.Partitions), m.RequestId));
                return;
            }
            Combine(m);
        });
        Receive<IKeyedRequest>(Combine);
        Receive<ProtocolBatch>(DispatchReplies);
        Receive<SweepPending>(_ => Sweep());
        Receive<FlushOutboxes>(_ => OnFlushOutboxes());
        Receive<CheckHeld>(_ => OnCheckHeld());
        Receive<Flush>(m => Scatter(m, m.RequestId));
        Receive<Compact>(m => Scatter(m, m.RequestId));
        Receive<GetStats>(m => Scatter(m, m.RequestId));
        Receive<CompactAndShutdown>(m => Scatter(m, m.RequestId));
        Receive<Shutdown>(m => Sender.Tell(new CrabKvError(CrabKvErrorCode.InvalidRequest,
            "A cluster node is not shut down by a message: it leaves the cluster (CoordinatedShutdown: Ctrl-C, SIGTERM, ActorSystem.Terminate), handing its partitions off through their graceful stop.",
            m.RequestId)));
        Receive<StartPartition>(m =>
        {
            // From a leaving node's drain. A node that is stopping too starts nothing: its region
            // would buffer the request until the shutdown phase times out (the whole cluster stopping).
            var accepted = _entityProps is not null && !ShuttingDown && m.Partition >= 0 && m.Partition < _settings.Partitions;
            if (accepted)
            {
                _region.Tell(new ShardRegion.StartEntity(_extractor.IdOf(m.Partition)), _ackSink);
            }
            Sender.Tell(new StartPartitionAnswer(accepted));
        });
        Receive<EnsurePartitions>(_ =>
        {
            if (!ShuttingDown)
            {
                StartEveryPartition(); // not while the partitions are being handed off: it would only be buffered
            }
        });
        ReceiveAny(Unknown);
    }

    private readonly CoordinatedShutdown _shutdown = CoordinatedShutdown.Get(Context.System);

    private bool ShuttingDown => _shutdown.ShutdownReason is not null;

    /// <summary>
    /// Whether a request would find no partition to carry it out: this node is shutting down and
    /// no other kv node is Up to take its partitions over (a one-node cluster, or the last kv node
    /// leaving). Its region would keep such a request buffered, no region being left to host the
    /// partition, until the shard-region shutdown phase times out (75 s); the caller would wait
    /// for its own timeout without knowing that nothing was done. Such requests are answered here.
    /// </summary>
    private bool NoHomeLeft() =>
        ShuttingDown && !HandoffAgent.RemainingKvNodes(Akka.Cluster.Cluster.Get(Context.System), _settings.Role).Any();

    private CrabKvError Stopping(long requestId) =>
        new(CrabKvErrorCode.ShuttingDown, _shutdown.ShutdownReason is CoordinatedShutdown.ClusterDowningReason
            ? "The CrabKv node was downed by the cluster (the split-brain resolver) and is shutting down: the request was not carried out."
            : "The CrabKv node is shutting down and no other kv node is up to take its partitions: the request was not carried out.", requestId);

    private void RefuseStopping(ICrabKvRequest request) => Sender.Tell(Stopping(request.RequestId));

    private void StartEveryPartition()
    {
        for (var p = 0; p < _settings.Partitions; p++)
        {
            _region.Tell(new ShardRegion.StartEntity(_extractor.IdOf(p)), _ackSink);
        }
    }

    private void Refused(string message)
    {
        Receive<ICrabKvRequest>(m => Sender.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed, message, m.RequestId)));
        Receive<PartitionCountChecked>(_ => { });
        Receive<RegionStarted>(_ => { });
        ReceiveAny(Unknown);
    }

    // ------------------------------------------------------------------ helpers

    private void StartRegion()
    {
        var sharding = ClusterSharding.Get(Context.System);
        var shardingSettings = ClusterShardingSettings.Create(Context.System)
            .WithRole(_settings.Role)
            .WithRememberEntities(false)
            .WithStateStoreMode(StateStoreMode.DData)
            .WithPassivateIdleAfter(TimeSpan.Zero); // zero = off: a partition is never stopped for being idle
        // On a node without the role this starts a proxy (the entity props are never used there).
        sharding.StartAsync(
                _settings.TypeName,
                _entityProps ?? (_ => Akka.Actor.Props.Empty),
                shardingSettings,
                _extractor,
                new PartitionAllocationStrategy(_settings.Rebalance, _settings.MaxSimultaneousMoves),
                StopPartition.Instance)
            .PipeTo(Self, success: r => new RegionStarted(r), failure: e => new RegionFailed(e));
    }

    private void Refuse(string message, Exception cause)
    {
        _ready.TrySetException(cause);
        Become(() => Refused(message));
        Stash.UnstashAll();
    }

    private void Wait(object m)
    {
        if (m is not ICrabKvRequest r)
        {
            Unknown(m);
            return;
        }
        if (_waiting >= _settings.MaxWaitingRequests)
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.Overloaded, "The CrabKv cluster node is still starting and its queue is full; retry shortly.", r.RequestId));
            return;
        }
        _waiting++;
        Stash.Stash();
    }

    private void Scatter(ICrabKvRequest m, long requestId)
    {
        var targets = Enumerable.Repeat(_region, _settings.Partitions).ToArray();
        Context.ActorOf(ScatterGather.Props(m, requestId, Sender, targets, p => new PartitionEnvelope(p, m), _settings.FanOutTimeout));
    }

    private void Unknown(object m)
    {
        if (!Sender.IsNobody() && !Sender.Equals(Context.System.DeadLetters))
        {
            Sender.Tell(new CrabKvError(CrabKvErrorCode.UnknownMessage, $"Unknown message {m.GetType().Name}.", m is ICrabKvRequest r ? r.RequestId : 0));
        }
        else
        {
            _log.Debug("Ignored {0} without a sender", m.GetType().Name);
        }
    }

    /// <summary>Sender of the StartEntity messages: their acknowledgements need no handling.</summary>
    private sealed class AckSink : UntypedActor
    {
        protected override void OnReceive(object message)
        {
        }
    }
}
