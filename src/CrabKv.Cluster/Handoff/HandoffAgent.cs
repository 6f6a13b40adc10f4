using Akka;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.DistributedData;
using Akka.Event;
using CrabKv.Actors.Diagnostics;
using CrabKv.Actors.Transfer;
using CrabKv.Storage.Files;
using CrabKv.Storage.Transfer;

namespace CrabKv.Cluster.Handoff;

/// <summary>Internal. What a partition entity and the handoff agent of a kv node need to know.</summary>
internal sealed record HandoffContext(string NodeId, string DataDir, CrabKvClusterSettings Cluster, TransferSettings Transfer, FileLayer Files, string EndpointName = "crabkv");

/// <summary>
/// Internal. The handoff agent of a kv node, at <c>/system/crabkv-handoff</c> (the same path on every
/// node), on the I/O dispatcher:
/// <list type="bullet">
/// <item>hosts the node's <see cref="PartitionTransferSource"/> as its child <c>source</c>, from which
/// new owners pull the partitions this node holds;</item>
/// <item>keeps this node's durable copy of the registry's holders (<see cref="RegistryCopy"/>,
/// <c>HOLDERS</c>) current, from a subscription to the local replica;</item>
/// <item>once the node is Up, records the node id's current address in the holder registry together
/// with the holders of its copy that the registry does not know (a registry lost with the whole
/// cluster), then claims (epoch 1) every partition with data on disk that neither attributes;
/// retried until a WriteMajority succeeds;</item>
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
        // Announce: this node id's address, and the holders of this node's durable copy of the
        // registry where the live one knows none or an older epoch (a restarted cluster).
        Receive<Announce>(_ => _replicator.Tell(Dsl.Update(HolderRegistry.Key, LWWDictionary<string, string>.Empty,
            new WriteMajority(_ctx.Cluster.RegistryTimeout), Announce.Instance, m =>
            {
                m = HolderRegistry.SetAddress(m, _cluster.SelfUniqueAddress, _ctx.NodeId, _cluster.SelfAddress);
                foreach (var (p, h) in _copy)
                {
                    if (p < _ctx.Cluster.Partitions && (HolderRegistry.HolderOf(m, p) is not { } current || current.Epoch < h.Epoch))
                    {
                        m = HolderRegistry.SetHolder(m, _cluster.SelfUniqueAddress, p, h);
                    }
                }
                return m;
            })));
        Receive<Changed>(c => c.Key.Equals(HolderRegistry.Key), c => SaveCopy(c.Get(HolderRegistry.Key)));
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
            // Data on disk that neither the registry nor this node's copy of it attributes: claim it.
            // (A copy naming another node means this data is a stale, handed-off one.)
            var unknown = Enumerable.Range(0, _ctx.Cluster.Partitions)
                .Where(p => HolderRegistry.HolderOf(map, p) is null && !_copy.ContainsKey(p)
                            && NodeIdentity.HasData(DataDirectory.PartitionDirectory(_ctx.DataDir, p), _ctx.Files))
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
            if (TryDeleteHandedOffCopy(_ctx, r.Message.Partition, new Holder(r.Message.NewHolder, r.Message.Epoch), _log) is not { } why)
            {
                return;
            }
            if (r.Attempt + 1 >= MaxDeleteAttempts)
            {
                _log.Warning("Partition {0}: could not delete the handed-off copy ({1}); it stays on disk, not recorded as this node's", r.Message.Partition, why);
                CrabKvMetrics.PartitionMoved(incoming: false, completed: false);
                return;
            }
            Timers.StartSingleTimer("delete-" + r.Message.Partition, r with { Attempt = r.Attempt + 1 }, TimeSpan.FromMilliseconds(500));
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(HandoffContext ctx) =>
        Akka.Actor.Props.Create(() => new HandoffAgent(ctx)).WithDispatcher(ctx.Transfer.IoDispatcher);

    private IReadOnlyDictionary<int, Holder> _copy = new Dictionary<int, Holder>();

    protected override void PreStart()
    {
        _copy = LoadCopy(_ctx, _log);
        _replicator.Tell(Dsl.Subscribe(HolderRegistry.Key, Self));
        Context.ActorOf(PartitionTransferSource.Props(_ctx.DataDir, _ctx.Transfer with { Files = _ctx.Files }), SourceName);
        var self = Self;
        _cluster.RegisterOnMemberUp(() => self.Tell(Announce.Instance));
    }

    /// <summary>This node's durable copy of the registry's holders; empty (and reported) when unreadable.</summary>
    internal static IReadOnlyDictionary<int, Holder> LoadCopy(HandoffContext ctx, ILoggingAdapter log)
    {
        try
        {
            return RegistryCopy.Load(ctx.DataDir, ctx.Files);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            log.Warning("CrabKv node {0}: ignoring its copy of the holder registry ({1}); the live registry decides alone", ctx.NodeId, e.Message);
            return new Dictionary<int, Holder>();
        }
    }

    private void SaveCopy(LWWDictionary<string, string> map)
    {
        var holders = RegistryCopy.Of(map, _ctx.Cluster.Partitions);
        // Keep entries the live registry does not know yet (seeded at the next announce), and never
        // let a lower epoch replace a higher one.
        var merged = new Dictionary<int, Holder>(_copy);
        foreach (var (p, h) in holders)
        {
            if (!merged.TryGetValue(p, out var old) || old.Epoch <= h.Epoch)
            {
                merged[p] = h;
            }
        }
        if (RegistryCopy.SameAs(merged, _copy))
        {
            return;
        }
        try
        {
            RegistryCopy.Save(_ctx.DataDir, _ctx.Files, merged);
            _copy = merged;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Warning("CrabKv node {0}: could not save its copy of the holder registry ({1}); retried at the next change", _ctx.NodeId, e.Message);
        }
    }

    /// <summary>
    /// The wait of a leaving node (phase cluster-sharding-shutdown-region, beside the region's own
    /// handoff): until no partition is recorded as this node's, <c>leave-drain-timeout</c> passes,
    /// or <see cref="DrainIdleLimit"/> passes without any of them moving and without the node's
    /// transfer source serving a pull. Every second it asks the endpoints of the remaining kv
    /// nodes to start the partitions this node still holds (<see cref="StartPartition"/>, which
    /// they pass to their region as <c>ShardRegion.StartEntity</c>, idempotent): the coordinator
    /// allocates them to a remaining region at once, whose entity pulls the data from here,
    /// instead of waiting for a request or for that node's next <c>ensure-partitions-interval</c>
    /// tick (10 s by default). When every one of them answers that it is stopping too (the whole
    /// cluster stopping), it stops waiting.
    /// </summary>
    public static async Task<Done> DrainAsync(ActorSystem system, HandoffContext ctx)
    {
        if (ctx.Cluster.LeaveDrainTimeout <= TimeSpan.Zero)
        {
            return Done.Instance;
        }
        var replicator = DistributedData.Get(system).Replicator;
        var source = system.ActorSelection("/system/" + Name + "/" + SourceName);
        var cluster = Akka.Cluster.Cluster.Get(system);
        var deadline = DateTime.UtcNow + ctx.Cluster.LeaveDrainTimeout;
        var lastChange = DateTime.UtcNow;
        var last = -1;
        TransferActivity? lastActivity = null;
        using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
        var nextNudge = DateTime.UtcNow;
        while (DateTime.UtcNow < deadline)
        {
            List<int> held;
            LWWDictionary<string, string>? map;
            try
            {
                var response = await replicator.Ask<IGetResponse>(Dsl.Get(HolderRegistry.Key, ReadLocal.Instance), TimeSpan.FromSeconds(2));
                map = response is GetSuccess s ? s.Get(HolderRegistry.Key) : null;
                held = HolderRegistry.HeldBy(map, ctx.NodeId, ctx.Cluster.Partitions).ToList();
            }
            catch (Exception e) when (e is AskTimeoutException or TaskCanceledException)
            {
                if (replicator.IsNobody() || system.WhenTerminated.IsCompleted)
                {
                    break; // the replicator is gone: nothing to wait for
                }
                // A busy replicator (a loaded machine): leaving now would strand the partitions.
                system.Log.Warning("CrabKv node {0}: the local registry replica did not answer within 2 s; still draining", ctx.NodeId);
                continue;
            }
            if (held.Count == 0)
            {
                // Everything moved. The new holders' DeletePartitionCopy messages may still be on
                // their way (this replica can see the registry write first): delete the stale
                // copies here, or the node would terminate with them on its disk.
                if (DeleteStaleCopies(system, ctx, map) == 0)
                {
                    break;
                }
                await tick.WaitForNextTickAsync(); // a copy still locked by its export: again shortly
                continue;
            }
            if (!RemainingKvNodes(cluster, ctx.Cluster.Role).Any())
            {
                // Nobody could pull (a one-node cluster, or the last kv node leaving): the
                // partitions stay on this node's disk, stopped cleanly, recorded as its own.
                system.Log.Info("CrabKv node {0} leaves as the last kv node: its {1} partitions stay on its disk", ctx.NodeId, held.Count);
                break;
            }
            // Progress: a partition moved, or a pull from this node's source went on (a large
            // partition takes its time; the node never leaves in the middle of serving it).
            var activity = await ActivityOf(source);
            if (held.Count != last || (activity is not null && (activity.ExportsHeld > 0 || activity != lastActivity)))
            {
                last = held.Count;
                lastActivity = activity;
                lastChange = DateTime.UtcNow;
            }
            else if (DateTime.UtcNow - lastChange >= DrainIdleLimit(ctx.Cluster))
            {
                system.Log.Warning("CrabKv node {0} leaves holding {1} partitions nobody pulled: they answer PartitionUnavailable until it returns", ctx.NodeId, held.Count);
                break;
            }
            if (DateTime.UtcNow >= nextNudge)
            {
                nextNudge = DateTime.UtcNow + TimeSpan.FromSeconds(1);
                var (stopping, asked) = await NudgeRemainingNodes(system, cluster, ctx, held);
                if (asked > 0 && stopping == asked)
                {
                    // The whole cluster is stopping: nobody will pull. The partitions stay here,
                    // stopped cleanly and recorded as this node's, as for the last kv node.
                    system.Log.Info("CrabKv node {0}: every other kv node is stopping too; its {1} partitions stay on its disk", ctx.NodeId, held.Count);
                    break;
                }
            }
            await tick.WaitForNextTickAsync();
        }
        if (DateTime.UtcNow >= deadline)
        {
            system.Log.Warning("CrabKv node {0}: leave-drain-timeout ({1}) reached; the partitions it still holds answer PartitionUnavailable until it returns",
                ctx.NodeId, ctx.Cluster.LeaveDrainTimeout);
        }
        return Done.Instance;
    }

    /// <summary>What the node's transfer source is serving; null when it did not answer in time.</summary>
    private static async Task<TransferActivity?> ActivityOf(ActorSelection source)
    {
        try
        {
            return await source.Ask<TransferActivity>(GetTransferActivity.Instance, TimeSpan.FromSeconds(2));
        }
        catch (Exception e) when (e is AskTimeoutException or TaskCanceledException or ActorNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// How long a leaving node waits without any of its partitions moving and without a chunk
    /// served by its transfer source (nobody is pulling) before it gives up: a quarter of
    /// <c>leave-drain-timeout</c>, at least 10 s — long enough for a new owner on a busy node to
    /// read the registry from a majority (a read that times out is retried) and start its transfer.
    /// </summary>
    internal static TimeSpan DrainIdleLimit(CrabKvClusterSettings settings) =>
        TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(10).Ticks, settings.LeaveDrainTimeout.Ticks / 4));

    /// <summary>
    /// Deletes this node's copies of partitions the registry names another node as holder of;
    /// returns how many remain (locked by an export not yet released, or failing to delete).
    /// </summary>
    private static int DeleteStaleCopies(ActorSystem system, HandoffContext ctx, LWWDictionary<string, string>? map)
    {
        var remaining = 0;
        for (var p = 0; p < ctx.Cluster.Partitions; p++)
        {
            var directory = DataDirectory.PartitionDirectory(ctx.DataDir, p);
            if (HolderRegistry.HolderOf(map, p) is not { } holder || holder.NodeId == ctx.NodeId || !NodeIdentity.HasData(directory, ctx.Files))
            {
                continue;
            }
            if (TryDeleteHandedOffCopy(ctx, p, holder, system.Log) is not null)
            {
                remaining++;
            }
        }
        return remaining;
    }

    /// <summary>
    /// Deletes this node's copy of <paramref name="partition"/>, handed off to <paramref name="newHolder"/>,
    /// and counts the move out. Returns null, or why the copy could not be deleted (still locked by
    /// its export, an I/O error): the caller decides whether to try again.
    /// </summary>
    private static string? TryDeleteHandedOffCopy(HandoffContext ctx, int partition, Holder newHolder, ILoggingAdapter log)
    {
        try
        {
            PartitionExport.DeleteSource(DataDirectory.PartitionDirectory(ctx.DataDir, partition), ctx.Files);
        }
        catch (Exception e) when (e is StoreLockedException or IOException or UnauthorizedAccessException)
        {
            return e.Message;
        }
        CrabKvMetrics.PartitionMoved(incoming: false, completed: true);
        log.Info("Partition {0}: local copy deleted, now held by {1} (epoch {2})", partition, newHolder.NodeId, newHolder.Epoch);
        return null;
    }

    /// <summary>The other kv members that are Up and reachable: those that can take partitions over.</summary>
    /// <summary>The other kv nodes (role <paramref name="role"/>) that are Up and reachable: those that can take partitions over.</summary>
    internal static IEnumerable<Member> RemainingKvNodes(Akka.Cluster.Cluster cluster, string role)
    {
        var state = cluster.State;
        return state.Members.Where(m => m.Status == MemberStatus.Up && m.HasRole(role) && !m.Address.Equals(cluster.SelfAddress)
                                        && !state.Unreachable.Any(u => u.Address.Equals(m.Address)));
    }

    /// <summary>
    /// Asks the endpoints of the remaining kv nodes to start the partitions this node still holds
    /// (one node per partition, round robin). Returns how many of those nodes answered that they
    /// are shutting down themselves, and how many were asked.
    /// </summary>
    private static async Task<(int Stopping, int Asked)> NudgeRemainingNodes(ActorSystem system, Akka.Cluster.Cluster cluster, HandoffContext ctx, IReadOnlyList<int> held)
    {
        var targets = RemainingKvNodes(cluster, ctx.Cluster.Role).ToList();
        if (targets.Count == 0)
        {
            return (0, 0);
        }
        var asks = new List<(Address Node, Task<StartPartitionAnswer?> Answer)>();
        for (var i = 0; i < held.Count; i++)
        {
            var target = targets[i % targets.Count];
            var endpoint = system.ActorSelection(new RootActorPath(target.Address) / "user" / ctx.EndpointName);
            asks.Add((target.Address, AnswerOf(endpoint, new StartPartition(held[i]))));
        }
        var answers = await Task.WhenAll(asks.Select(a => a.Answer));
        var stopping = asks.Zip(answers, (a, answer) => (a.Node, answer))
            .GroupBy(x => x.Node)
            .Count(g => g.All(x => x.answer is { Accepted: false }));
        return (stopping, asks.Select(a => a.Node).Distinct().Count());
    }

    private static async Task<StartPartitionAnswer?> AnswerOf(ActorSelection endpoint, StartPartition message)
    {
        try
        {
            return await endpoint.Ask<StartPartitionAnswer>(message, TimeSpan.FromSeconds(2));
        }
        catch (Exception e) when (e is AskTimeoutException or TaskCanceledException or ActorNotFoundException)
        {
            return null; // busy or gone: not counted as stopping
        }
    }
}
