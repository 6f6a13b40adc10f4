using System.Collections.Concurrent;
using Akka.Actor;

namespace CrabKv.Actors.Internal;

/// <summary>
/// Internal. The local routing shortcut, outside the wire protocol: which store actors of
/// this actor system exist, and (once they exist) their partition actors. <c>CrabKvStore.Start</c>
/// registers each store synchronously; the store actor completes its entry when its
/// partitions exist and removes it when it stops. <c>CrabKvClient.ConnectAsync</c> routes
/// keys straight to the partitions of a store found here, and sends everything through
/// the endpoint otherwise (a remote store, a shard region or proxy, any forwarding actor).
/// </summary>
internal sealed class LocalStores : IExtension
{
    private readonly ConcurrentDictionary<IActorRef, LocalStoreEntry> _stores = new();

    /// <summary>The registry of <paramref name="system"/>.</summary>
    public static LocalStores Get(ActorSystem system) => system.WithExtension<LocalStores, LocalStoresProvider>();

    /// <summary>The registry of the actor system <paramref name="actor"/> lives in, when it is a local actor.</summary>
    public static LocalStores? Of(IActorRef actor) =>
        actor is ActorRefWithCell local ? Get(local.Underlying.System) : null;

    /// <summary>Registers a store just started; a store that already stopped is not kept.</summary>
    public void Register(IActorRef store, LocalStoreEntry entry)
    {
        _stores[store] = entry;
        if (entry.Stopped)
        {
            // The store stopped before it was registered: its PostStop found nothing to remove.
            Unregister(store, entry);
        }
    }

    /// <summary>Removes a stopped store (only its own entry).</summary>
    public void Unregister(IActorRef store, LocalStoreEntry entry) =>
        _stores.TryRemove(new KeyValuePair<IActorRef, LocalStoreEntry>(store, entry));

    /// <summary>The partition actors of a local store (completed once they exist), or null when <paramref name="store"/> is not one.</summary>
    public static Task<IActorRef[]>? PartitionsOf(IActorRef store) => Of(store)?.Find(store)?.Partitions.Task;

    /// <summary>The entry of a local store, or null.</summary>
    public LocalStoreEntry? Find(IActorRef store) => _stores.TryGetValue(store, out var entry) ? entry : null;
}

/// <summary>Internal. One local store: its partition actors once they exist.</summary>
internal sealed class LocalStoreEntry
{
    private volatile bool _stopped;

    /// <summary>Completed by the store actor with its partition actors, indexed by partition number.</summary>
    public TaskCompletionSource<IActorRef[]> Partitions { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Set by the store actor when it stops.</summary>
    public bool Stopped
    {
        get => _stopped;
        set => _stopped = value;
    }
}

internal sealed class LocalStoresProvider : ExtensionIdProvider<LocalStores>
{
    public override LocalStores CreateExtension(ExtendedActorSystem system) => new();
}
