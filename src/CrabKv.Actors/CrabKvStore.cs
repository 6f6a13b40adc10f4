using Akka;
using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Internal;
using CrabKv.Storage;

namespace CrabKv.Actors;

/// <summary>Starts a CrabKv store inside an actor system.</summary>
public static class CrabKvStore
{
    /// <summary>Name of the file in <c>data-dir</c> that records the partition count.</summary>
    public const string PartitionsFileName = DataDirectory.PartitionsFileName;

    /// <summary>
    /// Opens the data directory (taking its lock, settling the partition count), starts the
    /// store actor and registers its graceful stop with CoordinatedShutdown (so Ctrl-C,
    /// SIGTERM and <c>ActorSystem.Terminate</c> flush write-back entries and seal segments first).
    /// </summary>
    /// <exception cref="CrabKvConfigurationException">Bad settings, or a data directory made with another partition count.</exception>
    /// <exception cref="StoreLockedException">Another node or store holds the data directory; the message names the holder.</exception>
    public static IActorRef Start(ActorSystem system, CrabKvSettings? settings = null, string name = "crabkv") =>
        Start(system, settings, name, out _);

    /// <summary>
    /// Like <see cref="Start(ActorSystem, CrabKvSettings?, string)"/>, and gives the settings in
    /// force: with <c>crabkv.partitions = 0</c>, <see cref="CrabKvSettings.Partitions"/> is the
    /// count the data directory was created with.
    /// </summary>
    public static IActorRef Start(ActorSystem system, CrabKvSettings? settings, string name, out CrabKvSettings resolved)
    {
        // The I/O dispatcher and defaults must be visible to the system's dispatcher lookup.
        system.Settings.InjectTopLevelFallback(CrabKvSettings.DefaultConfig());
        settings ??= CrabKvSettings.Create(system);
        // The whole directory is locked before any partition actor exists: a second node on it
        // is refused here, as a whole, instead of racing for partition locks.
        var dataDirectory = OpenDataDirectory(settings);
        IActorRef store;
        var local = new LocalStoreEntry();
        try
        {
            foreach (var note in dataDirectory.Notes)
            {
                system.Log.Warning("CrabKv: {0}", note);
            }
            resolved = settings with { Partitions = dataDirectory.Partitions, ConfiguredPartitions = settings.ConfiguredPartitions };
            store = system.ActorOf(CrabKvStoreActor.Props(resolved, dataDirectory, local), name);
        }
        catch
        {
            dataDirectory.Dispose(); // the store actor never existed to release it
            throw;
        }
        LocalStores.Get(system).Register(store, local);
        var shutdownTimeout = TimeSpan.FromSeconds(30);
        CoordinatedShutdown.Get(system).AddTask(CoordinatedShutdown.PhaseServiceStop, $"crabkv-{name}-stop", async () =>
        {
            try
            {
                // Sends Shutdown and waits for the store actor to terminate; returns at once
                // when it already has (e.g. after CompactAndShutdown).
                await store.GracefulStop(shutdownTimeout, new Shutdown());
            }
            catch (TaskCanceledException)
            {
                // Timed out: the phase timeout of CoordinatedShutdown reports it.
            }
            return Done.Instance;
        });
        return store;
    }

    private static DataDirectory OpenDataDirectory(CrabKvSettings settings) =>
        OpenDataDirectory(settings, settings.ConfiguredPartitions, "partitions",
            recorded => $"Set crabkv.partitions = {recorded} (or 0, which keeps the recorded count)");

    /// <summary>
    /// Internal. Opens a node's data directory asking for <paramref name="requested"/> partitions
    /// (0 = the recorded count), turning its refusals into configuration errors that name
    /// <paramref name="countKey"/> and say what to do (<paramref name="advice"/> of the recorded count).
    /// </summary>
    internal static DataDirectory OpenDataDirectory(CrabKvSettings settings, int requested, string countKey, Func<int, string> advice)
    {
        try
        {
            return DataDirectory.Open(settings.DataDir, requested, settings.Partitions, settings.Files);
        }
        catch (PartitionCountMismatchException e)
        {
            throw new CrabKvConfigurationException(countKey,
                $"is {e.Requested}, but the data directory '{e.Directory}' was created with {e.Recorded} partitions; keys would be looked up in the wrong partition. " +
                advice(e.Recorded));
        }
        catch (DataDirectoryException e)
        {
            throw new CrabKvConfigurationException("data-dir", $"cannot be opened: {e.Message.TrimEnd('.')}");
        }
    }
}
