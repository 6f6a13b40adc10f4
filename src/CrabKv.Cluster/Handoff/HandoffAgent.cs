using Akka;
using Akka.Actor;
using Akka.Cluster;
using Akka.DistributedData;
using Akka.Event;
using CrabKv.Actors.Diagnostics;
using CrabKv.Actors.Transfer;
using CrabKv.Storage.Files;
using CrabKv.Storage.Transfer;

namespace CrabKv.Cluster.Handoff;

/// <summary>Internal. What a partition entity and the handoff agent of a kv node need to know.</summary>
internal sealed record HandoffContext(string NodeId, string DataDir, CrabKvClusterSettings Cluster, TransferSettings Transfer, FileLayer Files);

/// <summary>
/// Internal. The handoff agent of a kv node, at <c>/system/crabkv-handoff</c> (the same path on every
/// node), on the I/O dispatcher:
/// <list type="bullet">
/// <item>hosts the node's <see cref="PartitionTransferSource"/> as its child <c>source</c>, from which
/// new owners pull the partitions this node holds;</item>
/// <item>once the node is Up, records the node id's current address in the holder registry and claims
/// (epoch 1) every partition with data on disk that the registry does not know (a registry lost with
/// the whole cluster); retried until a WriteMajority succeeds;</item>
/// <item>deletes a partition's local copy on <see cref="DeletePartitionCopy"/> from its new holder,
/// unless the local registry replica says this node holds it again (a stale message), and retries
/// while the copy is locked (the export still releasing it).</item>
/// </list>
/// </summary>
internal sealed class HandoffAgent : ReceiveActor, IWithTimers
{
    public const string Name = "crabkv-handoff";
    public const string SourceName = "source";
    private const int MaxDeleteAttempts = 30;

    private sealed class Announce : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly Announce Instance = new();
    }

    private sealed record Claim : INoSerializationVerificationNeeded;

    private sealed record RetryDelete(DeletePartitionCopy Message, int Attempt) : INoSerializationVerificationNeeded;

    private readonly HandoffContext _ctx;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Akka.Cluster.Cluster _cluster = Akka.Cluster.Cluster.Get(Context.System);
    private readonly IActorRef _replicator = DistributedData.Get(Context.System).Replicator;

    public HandoffAgent(HandoffContext ctx)
    {
        _ctx = ctx;
        Receive<Announce>(_ => _replicator.Tell(Dsl.Update(HolderRegistry.Key, LWWDictionary<string, string>.Empty,
            new WriteMajority(_ctx.Cluster.RegistryTimeout), Announce.Instance,
            m => HolderRegistry.SetAddress(m, _cluster.SelfUniqueAddress, _ctx.NodeId, _cluster.SelfAddress))));
        Receive<UpdateSuccess>(u => u.Request is Announce, _ =>
        {
            _log.Info("CrabKv node {0} recorded at {1}", _ctx.NodeId, _cluster.SelfAddress);
            _replicator.Tell(Dsl.Get(HolderRegistry.Key, new ReadMajority(_ctx.Cluster.RegistryTimeout), new Claim()));
        });
        Receive<IGetResponse>(g => g.Request is Claim, g =>
        {
            if (g is GetFailure)
            {
                Timers.StartSingleTimer(Announce.Instance, Announce.Instance, _ctx.Cluster.HandoffRetryInterval);
                return;
            }
            var map = g is GetSuccess s ? s.Get(HolderRegistry.Key) : null;
            var unknown = Enumerable.Range(0, _ctx.Cluster.Partitions)
                .Where(p => HolderRegistry.HolderOf(map, p) is null && NodeIdentity.HasData(DataDirectory.PartitionDirectory(_ctx.DataDir, p), _ctx.Files))
                .ToList();
            if (unknown.Count == 0)
            {
                return;
            }
            _log.Warning("CrabKv node {0}: the holder registry does not know partitions {1}, whose data is on this node's disk; claiming them (epoch 1)",
                _ctx.NodeId, string.Join(", ", unknown));
            _replicator.Tell(Dsl.Update(HolderRegistry.Key, LWWDictionary<string, string>.Empty, new WriteMajority(_ctx.Cluster.RegistryTimeout), new Claim(), m =>
            {
                foreach (var p in unknown.Where(p => HolderRegistry.HolderOf(m, p) is null))
                {
                    m = HolderRegistry.SetHolder(m, _cluster.SelfUniqueAddress, p, new Holder(_ctx.NodeId, 1));
                }
                return m;
            }));
        });
        Receive<UpdateSuccess>(u => u.Request is Claim, _ => { });
        Receive<IUpdateResponse>(u => u.Request is Announce or Claim, u =>
        {
            _log.Warning("CrabKv node {0}: holder registry update failed ({1}); retrying in {2}", _ctx.NodeId, u.GetType().Name, _ctx.Cluster.HandoffRetryInterval);
            Timers.StartSingleTimer(Announce.Instance, Announce.Instance, _ctx.Cluster.HandoffRetryInterval);
        });

        Receive<DeletePartitionCopy>(m => _replicator.Tell(Dsl.Get(HolderRegistry.Key, ReadLocal.Instance, new RetryDelete(m, 0))));
        Receive<RetryDelete>(r => _replicator.Tell(Dsl.Get(HolderRegistry.Key, ReadLocal.Instance, r)));
        Receive<IGetResponse>(g => g.Request is RetryDelete, g =>
        {
            var r = (RetryDelete)g.Request!;
            var map = g is GetSuccess s ? s.Get(HolderRegistry.Key) : null;
            var holder = HolderRegistry.HolderOf(map, r.Message.Partition);
            // The local replica may not have the new holder's write yet (WriteMajority need not
            // include this node): an older epoch of this node's own is what the message replaces.
            if (holder is { } h && h.NodeId == _ctx.NodeId && h.Epoch >= r.Message.Epoch)
            {
                _log.Info("Partition {0}: not deleting the local copy, this node holds it again (epoch {1}; the request was for epoch {2})",
                    r.Message.Partition, holder.Value.Epoch, r.Message.Epoch);
                return;
            }
            var directory = DataDirectory.PartitionDirectory(_ctx.DataDir, r.Message.Partition);
            try
            {
                PartitionExport.DeleteSource(directory, _ctx.Files);
                CrabKvMetrics.PartitionMoved(incoming: false, completed: true);
                _log.Info("Partition {0}: local copy deleted, now held by {1} (epoch {2})", r.Message.Partition, r.Message.NewHolder, r.Message.Epoch);
            }
            catch (Exception e) when (e is StoreLockedException or IOException or UnauthorizedAccessException)
            {
                if (r.Attempt + 1 >= MaxDeleteAttempts)
                {
                    _log.Warning("Partition {0}: could not delete the handed-off copy ({1}); it stays on disk, not recorded as this node's", r.Message.Partition, e.Message);
                    CrabKvMetrics.PartitionMoved(incoming: false, completed: false);
                    return;
                }
                Timers.StartSingleTimer("delete-" + r.Message.Partition, r with { Attempt = r.Attempt + 1 }, TimeSpan.FromMilliseconds(500));
            }
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(HandoffContext ctx) =>
        Akka.Actor.Props.Create(() => new HandoffAgent(ctx)).WithDispatcher(ctx.Transfer.IoDispatcher);

    protected override void PreStart()
    {
        Context.ActorOf(PartitionTransferSource.Props(_ctx.DataDir, _ctx.Transfer with { Files = _ctx.Files }), SourceName);
        var self = Self;
        _cluster.RegisterOnMemberUp(() => self.Tell(Announce.Instance));
    }

    /// <summary>
    /// The wait of a leaving node (phase cluster-sharding-shutdown-region): until no partition is
    /// recorded as this node's, <c>leave-drain-timeout</c> passes, or 5 s pass without any moving.
    /// </summary>
    public static async Task<Done> DrainAsync(ActorSystem system, HandoffContext ctx)
    {
        if (ctx.Cluster.LeaveDrainTimeout <= TimeSpan.Zero)
        {
            return Done.Instance;
        }
        var replicator = DistributedData.Get(system).Replicator;
        var deadline = DateTime.UtcNow + ctx.Cluster.LeaveDrainTimeout;
        var idleLimit = TimeSpan.FromSeconds(5);
        var lastChange = DateTime.UtcNow;
        var last = -1;
        while (DateTime.UtcNow < deadline)
        {
            int held;
            try
            {
                var response = await replicator.Ask<IGetResponse>(Dsl.Get(HolderRegistry.Key, ReadLocal.Instance), TimeSpan.FromSeconds(2));
                var map = response is GetSuccess s ? s.Get(HolderRegistry.Key) : null;
                held = HolderRegistry.HeldBy(map, ctx.NodeId, ctx.Cluster.Partitions).Count();
            }
            catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
            {
                break; // the replicator is gone: nothing to wait for
            }
            if (held == 0)
            {
                break;
            }
            if (held != last)
            {
                last = held;
                lastChange = DateTime.UtcNow;
            }
            else if (DateTime.UtcNow - lastChange >= idleLimit)
            {
                system.Log.Warning("CrabKv node {0} leaves holding {1} partitions nobody pulled: they answer PartitionUnavailable until it returns", ctx.NodeId, held);
                break;
            }
            await Task.Delay(200);
        }
        return Done.Instance;
    }
}
