using Akka.Actor;
using Akka.Cluster;
using Akka.Event;

namespace CrabKv.Cluster.Internal;

/// <summary>
/// Internal. The partition-count check of a node, at <c>/system/crabkv-cluster-check</c> on every
/// CrabKv cluster node. Akka.NET 1.5 has no join-time configuration check (the JVM's
/// <c>JoinConfigCompatChecker</c> was never ported), so a node checks itself as soon as it is a
/// member: it asks the oldest other member with the partition role for its
/// <c>crabkv.cluster.partitions</c> and compares. Equal: the endpoint starts the shard region
/// (or proxy); before that, this node hosts no partition and sends nothing to one. Different:
/// the endpoint refuses every request with a message naming both counts, and the node leaves
/// the cluster and shuts its actor system down (CoordinatedShutdown), as the JVM's check does.
/// A node with the role and no older such member is the reference itself and passes at once.
/// It also answers other nodes' <see cref="PartitionCountQuery"/> with its own count.
/// <code>
///   Checking ──equal counts (or the oldest kv member)──▶ Passed (answers queries)
///      │ different counts
///      ▼
///   Refused (answers queries; CoordinatedShutdown runs)
/// </code>
/// </summary>
internal sealed class PartitionCountCheck : ReceiveActor, IWithTimers
{
    /// <summary>Name of the actor under <c>/system</c>, the same on every node.</summary>
    public const string Name = "crabkv-cluster-check";

    private static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(1);

    private sealed class Tick : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly Tick Instance = new();
    }

    private readonly CrabKvClusterSettings _settings;
    private readonly IActorRef _endpoint;
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private bool _asked;

    public PartitionCountCheck(CrabKvClusterSettings settings, IActorRef endpoint)
    {
        _settings = settings;
        _endpoint = endpoint;
        Checking();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(CrabKvClusterSettings settings, IActorRef endpoint) =>
        Akka.Actor.Props.Create(() => new PartitionCountCheck(settings, endpoint));

    protected override void PreStart()
    {
        _cluster.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents, typeof(ClusterEvent.IMemberEvent));
        Timers.StartPeriodicTimer(Tick.Instance, Tick.Instance, RetryInterval);
    }

    protected override void PostStop() => _cluster.Unsubscribe(Self);

    private void Checking()
    {
        // A membership change prompts the first question at once; later ones go once per tick.
        Receive<ClusterEvent.IMemberEvent>(_ =>
        {
            if (!_asked)
            {
                Evaluate();
            }
        });
        Receive<Tick>(_ => Evaluate());
        Receive<PartitionCountReply>(m => Decide(m.Partitions, Sender.Path.Address));
        Answering();
    }

    private void Done()
    {
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Answering();
    }

    private void Answering() =>
        Receive<PartitionCountQuery>(m =>
        {
            if (m.Partitions != _settings.Partitions)
            {
                _log.Warning("Node {0} asked for the partition count with crabkv.cluster.partitions = {1}; this cluster has {2}: it will refuse to join",
                    Sender.Path.Address, m.Partitions, _settings.Partitions);
            }
            Sender.Tell(new PartitionCountReply(_settings.Partitions));
        });

    /// <summary>Picks the reference member (the oldest other one with the role) and asks it; passes when this node is the reference.</summary>
    private void Evaluate()
    {
        var self = _cluster.SelfMember;
        if (self.Status is not (MemberStatus.Joining or MemberStatus.WeaklyUp or MemberStatus.Up))
        {
            return; // not a member yet (or already leaving)
        }
        var reference = _cluster.State.Members
            .Where(m => !m.UniqueAddress.Equals(self.UniqueAddress) && m.HasRole(_settings.Role)
                        && m.Status is MemberStatus.Joining or MemberStatus.WeaklyUp or MemberStatus.Up)
            .OrderBy(m => m, Member.AgeOrdering)
            .FirstOrDefault();
        if (self.HasRole(_settings.Role) && (reference is null || self.IsOlderThan(reference)))
        {
            Pass($"this node is the oldest with role '{_settings.Role}'");
            return;
        }
        if (reference is null)
        {
            return; // a client-only node waits for a node that holds partitions
        }
        _asked = true;
        Context.ActorSelection(new RootActorPath(reference.Address) / "system" / Name).Tell(new PartitionCountQuery(_settings.Partitions));
    }

    private void Decide(int theirs, Address from)
    {
        if (theirs == _settings.Partitions)
        {
            Pass($"node {from} has the same count");
            return;
        }
        var message =
            $"This node is configured with crabkv.cluster.partitions = {_settings.Partitions}, but the cluster it joined has {theirs} (node {from}): " +
            $"keys would map to different partitions on different nodes. Refusing to join: leaving the cluster and shutting down. " +
            $"Set crabkv.cluster.partitions = {theirs}, or form a new cluster.";
        _log.Error(message);
        _endpoint.Tell(new PartitionCountRefused(_settings.Partitions, theirs, message));
        Timers.Cancel(Tick.Instance);
        Become(Done);
        CoordinatedShutdown.Get(Context.System).Run(PartitionCountMismatchReason.Instance);
    }

    private void Pass(string why)
    {
        _log.Info("CrabKv cluster: partition count {0} checked ({1})", _settings.Partitions, why);
        _endpoint.Tell(PartitionCountChecked.Instance);
        Timers.Cancel(Tick.Instance);
        Become(Done);
    }
}

/// <summary>Internal. The node's count equals the cluster's: start the shard region.</summary>
internal sealed class PartitionCountChecked : INoSerializationVerificationNeeded
{
    public static readonly PartitionCountChecked Instance = new();
}

/// <summary>Internal. The node's count differs from the cluster's: refuse everything with <paramref name="Message"/>.</summary>
internal sealed record PartitionCountRefused(int Ours, int Theirs, string Message) : INoSerializationVerificationNeeded;
