using Akka.Actor;
using Akka.Event;
using CrabKv.Actors;
using CrabKv.Actors.Transfer;
using CrabKv.Cluster.Handoff;
using CrabKv.Cluster.Internal;
using CrabKv.Storage.Transfer;
using CrabKv.Cluster.Sharding;

namespace CrabKv.Cluster;

/// <summary>
/// Starts CrabKv on a cluster node: the partitions become Cluster.Sharding entities (shard id =
/// entity id = partition number) hosted by a shard region on nodes with the role
/// <c>crabkv.cluster.role</c>, reached through a shard-region proxy on the others; either way
/// the node gets a store endpoint that speaks the public protocol (<c>CrabKvClient</c>, raw
/// Tell/Ask). Akka.Hosting: <c>WithCrabKvCluster</c>.
/// </summary>
public static class CrabKvCluster
{
    /// <summary>
    /// Starts CrabKv on <paramref name="system"/>, whose provider must be <c>cluster</c> and whose
    /// configuration should include <see cref="CrabKvClusterSettings.FullDefaultConfig"/> from
    /// the start (the split-brain resolver is read when the cluster starts). On a kv node the
    /// data directory (<c>crabkv.data-dir</c>) is opened here, synchronously: its <c>LOCK</c>
    /// is held until the actor system terminates and its <c>PARTITIONS</c> must equal
    /// <c>crabkv.cluster.partitions</c>. The endpoint starts answering once the node has
    /// checked its partition count against the cluster's and started its region
    /// (<see cref="CrabKvClusterNode.Ready"/>); requests sent earlier wait.
    /// </summary>
    /// <param name="system">The actor system of this node.</param>
    /// <param name="storeSettings">Settings of the partitions (default: <c>crabkv.*</c> of the system); their partition count is replaced by the cluster's.</param>
    /// <param name="clusterSettings">Cluster settings (default: <c>crabkv.cluster.*</c> of the system).</param>
    /// <param name="name">Name of the endpoint actor under <c>/user</c>.</param>
    /// <exception cref="CrabKvConfigurationException">Bad settings, a data directory made with another partition count, or a system configured without the serializer bindings.</exception>
    /// <exception cref="StoreLockedException">Another process holds the data directory; the message names the holder.</exception>
    public static CrabKvClusterNode Start(ActorSystem system, CrabKvSettings? storeSettings = null, CrabKvClusterSettings? clusterSettings = null, string name = "crabkv")
    {
        ArgumentNullException.ThrowIfNull(system);
        // Dispatchers, the crabkv defaults and the serializer bindings must be visible to the system.
        system.Settings.InjectTopLevelFallback(CrabKvClusterSettings.FullDefaultConfig());
        clusterSettings ??= CrabKvClusterSettings.Create(system);
        RequireBinarySerializers(system);
        var cluster = Akka.Cluster.Cluster.Get(system);
        RefuseRoleMinimum(cluster, clusterSettings);
        var hostsPartitions = cluster.SelfRoles.Contains(clusterSettings.Role);

        DataDirectory? dataDirectory = null;
        HandoffContext? handoff = null;
        Func<string, Props>? entityProps = null;
        if (hostsPartitions)
        {
            var partitionSettings = (storeSettings ?? CrabKvSettings.Create(system)) with { Partitions = clusterSettings.Partitions };
            dataDirectory = OpenDataDirectory(partitionSettings);
            foreach (var note in dataDirectory.Notes)
            {
                system.Log.Warning("CrabKv: {0}", note);
            }
            partitionSettings = partitionSettings.FitPreallocation(CrabKvSettings.FreeBytesAt(dataDirectory.Path), out var lowered);
            if (lowered is not null)
            {
                system.Log.Warning("CrabKv: {0}", lowered);
            }
            var directory = dataDirectory;
            // The node budgets are divided by the cluster's partition count (static: a node
            // holding fewer partitions uses that fraction of them).
            var entitySettings = partitionSettings.PerPartition(clusterSettings.Partitions);
            try
            {
                handoff = new HandoffContext(NodeIdentity.LoadOrCreate(directory.Path, partitionSettings.Files), directory.Path, clusterSettings,
                    TransferSettings.Create(system), partitionSettings.Files, name);
                SettleCrashedPartitions(system, directory, entitySettings);
            }
            catch
            {
                dataDirectory.Dispose();
                throw;
            }
            var context = handoff;
            var extractor = new PartitionMessageExtractor(clusterSettings.Partitions);
            entityProps = id =>
            {
                var partition = extractor.PartitionOf(id);
                return PartitionEntity.Props(partition, partition >= 0 ? directory.PartitionPath(partition) : "", entitySettings, context);
            };
        }

        var ready = new TaskCompletionSource<IActorRef>(TaskCreationOptions.RunContinuationsAsynchronously);
        IActorRef endpoint;
        try
        {
            if (handoff is not null)
            {
                ((ExtendedActorSystem)system).SystemActorOf(HandoffAgent.Props(handoff), HandoffAgent.Name);
                var drain = handoff;
                CoordinatedShutdown.Get(system).AddTask("cluster-sharding-shutdown-region", "crabkv-drain-partitions",
                    () => HandoffAgent.DrainAsync(system, drain));
            }
            endpoint = system.ActorOf(ClusterEndpoint.Props(clusterSettings, entityProps, ready), name);
            ((ExtendedActorSystem)system).SystemActorOf(PartitionCountCheck.Props(clusterSettings, endpoint), PartitionCountCheck.Name);
        }
        catch
        {
            dataDirectory?.Dispose();
            throw;
        }
        if (dataDirectory is not null)
        {
            // After every actor has stopped: the partitions (each holding its own LOCK) have been
            // handed off or stopped by then.
            var closing = dataDirectory;
            system.RegisterOnTermination(() =>
            {
                // Under the directory's lock: a start racing this one must not lose its own count.
                if (CoordinatedShutdown.Get(system).ShutdownReason is PartitionCountMismatchReason)
                {
                    ForgetUnusedPartitionCount(system, closing.Path);
                }
                closing.Dispose();
            });
        }
        return new CrabKvClusterNode(endpoint, ready.Task, clusterSettings, hostsPartitions);
    }

    /// <summary>
    /// After a refused join (this node's partition count is not its cluster's): a data directory
    /// that holds no data yet (partition directories all empty: created by this start) forgets
    /// the count it was created with, so a start with the cluster's count is not refused by the
    /// directory in turn. A directory with any data keeps its count.
    /// </summary>
    private static void ForgetUnusedPartitionCount(ActorSystem system, string path)
    {
        try
        {
            var partitions = Directory.GetDirectories(path, "p-*");
            if (partitions.Any(p => Directory.EnumerateFileSystemEntries(p).Any()))
            {
                return;
            }
            foreach (var p in partitions)
            {
                Directory.Delete(p);
            }
            File.Delete(Path.Combine(path, DataDirectory.PartitionsFileName));
            system.Log.Info("CrabKv: the data directory '{0}' held no data: it keeps no partition count from this refused start", path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left as it is: the next start names the recorded count.
        }
    }

    /// <summary>
    /// Without the bindings every CrabKv message would cross the wire as JSON, slowly and
    /// silently; the injected fallback provides them (Akka.NET 1.5.73 picks up bindings injected
    /// after start), and this refuses to start should a configuration ever override them.
    /// </summary>
    private static void RequireBinarySerializers(ActorSystem system)
    {
        if (system.Serialization.FindSerializerForType(typeof(Put)) is not Actors.Serialization.CrabKvSerializer
            || system.Serialization.FindSerializerForType(typeof(PartitionEnvelope)) is not Serialization.CrabKvClusterSerializer
            || system.Serialization.FindSerializerForType(typeof(Akka.DistributedData.LWWDictionary<string, string>)) is Akka.Serialization.NewtonSoftJsonSerializer)
        {
            throw new CrabKvConfigurationException("cluster",
                "needs the CrabKv and DistributedData serializer bindings in the actor system's configuration from its creation " +
                "(include CrabKvClusterSettings.FullDefaultConfig(), or use WithCrabKvCluster); otherwise CrabKv messages would cross the network as JSON");
        }
    }

    /// <summary>
    /// Akka's shard coordinator reads <c>akka.cluster.role.&lt;role&gt;.min-nr-of-members</c> too: each
    /// time it starts (on the oldest kv node, again whenever that node leaves or dies) it answers
    /// no shard location until that many regions have registered. With 3 and a 3-node cluster,
    /// the oldest node leaving stalls every moved partition for good. The cluster is formed with
    /// all nodes at once by <c>akka.cluster.min-nr-of-members</c> instead, which the coordinator
    /// does not read when a role is set.
    /// </summary>
    private static void RefuseRoleMinimum(Akka.Cluster.Cluster cluster, CrabKvClusterSettings settings)
    {
        if (cluster.Settings.MinNrOfMembersOfRole.TryGetValue(settings.Role, out var minimum) && minimum > 1)
        {
            throw new CrabKvConfigurationException(
                $"Invalid CrabKv configuration: akka.cluster.role.{settings.Role}.min-nr-of-members is {minimum}: Akka's shard coordinator would answer no shard location after it moves (the oldest kv node leaving or dying) " +
                $"while fewer than {minimum} kv nodes remain, stalling the partitions that moved. " +
                $"To form the cluster with all nodes at once, set akka.cluster.min-nr-of-members = {minimum} instead.", innerException: null);
        }
    }

    /// <summary>
    /// A partition whose store did not stop cleanly (this node crashed) cannot be exported as it
    /// is (its newest segment is not sealed): open and close it once, which recovers and seals it,
    /// so that a new owner can pull it. Partitions without data are left alone.
    /// </summary>
    private static void SettleCrashedPartitions(ActorSystem system, DataDirectory directory, CrabKvSettings settings)
    {
        for (var p = 0; p < directory.Partitions; p++)
        {
            var path = directory.PartitionPath(p);
            if (!NodeIdentity.HasData(path, settings.Files) || PartitionExport.IsCleanlyStopped(path, settings.Files))
            {
                continue;
            }
            system.Log.Warning("CrabKv: partition {0} did not stop cleanly; recovering and sealing it", p);
            EmbeddedStore.Open(path, settings.ToStoreOptions()).Dispose();
        }
    }

    private static DataDirectory OpenDataDirectory(CrabKvSettings settings) =>
        CrabKvStore.OpenDataDirectory(settings, settings.Partitions, "cluster.partitions",
            recorded => $"Use a cluster of {recorded} partitions, or another data directory");
}

/// <summary>A CrabKv cluster node started by <see cref="CrabKvCluster.Start"/>.</summary>
/// <param name="Endpoint">The store endpoint: send it the public protocol, or <c>CrabKvClient.ConnectAsync</c> it.</param>
/// <param name="Ready">
/// Completes with the shard region (or proxy) once the node serves; fails with a
/// <see cref="CrabKvConfigurationException"/> naming both counts when the node's partition count
/// differs from its cluster's (the node then leaves and shuts its actor system down).
/// </param>
/// <param name="Settings">The cluster settings in force.</param>
/// <param name="HostsPartitions">Whether this node has the role and hosts partitions (false: a proxy).</param>
public sealed record CrabKvClusterNode(IActorRef Endpoint, Task<IActorRef> Ready, CrabKvClusterSettings Settings, bool HostsPartitions);

/// <summary>Why CoordinatedShutdown ran: this node's <c>crabkv.cluster.partitions</c> differs from its cluster's.</summary>
public sealed class PartitionCountMismatchReason : CoordinatedShutdown.Reason
{
    /// <summary>The one instance.</summary>
    public static readonly PartitionCountMismatchReason Instance = new();

    private PartitionCountMismatchReason()
    {
    }

    /// <summary>78, EX_CONFIG of sysexits.h: a configuration error.</summary>
    public override int ExitCode => 78;
}
