using System.Globalization;
using Akka;
using Akka.Actor;

namespace CrabKv.Actors;

/// <summary>Starts a CrabKv store inside an actor system.</summary>
public static class CrabKvStore
{
    /// <summary>Name of the file in <c>data-dir</c> that records the partition count.</summary>
    public const string PartitionsFileName = "PARTITIONS";

    /// <summary>
    /// Validates the settings against the data directory, starts the store actor and
    /// registers its graceful stop with CoordinatedShutdown (so Ctrl-C, SIGTERM and
    /// <c>ActorSystem.Terminate</c> flush write-back entries and seal segments first).
    /// </summary>
    /// <exception cref="CrabKvConfigurationException">Bad settings, or a data directory made with another partition count.</exception>
    public static IActorRef Start(ActorSystem system, CrabKvSettings? settings = null, string name = "crabkv")
    {
        // The I/O dispatcher and defaults must be visible to the system's dispatcher lookup.
        system.Settings.InjectTopLevelFallback(CrabKvSettings.DefaultConfig());
        settings ??= CrabKvSettings.Create(system);
        PrepareDataDirectory(settings);
        var store = system.ActorOf(CrabKvStoreActor.Props(settings), name);
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

    /// <summary>Creates the data directory and checks (or records) its partition count.</summary>
    public static void PrepareDataDirectory(CrabKvSettings settings)
    {
        var dir = Path.GetFullPath(settings.DataDir);
        Directory.CreateDirectory(dir);
        var marker = Path.Combine(dir, PartitionsFileName);
        if (File.Exists(marker))
        {
            var text = File.ReadAllText(marker).Trim();
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var recorded))
            {
                throw new CrabKvConfigurationException("data-dir", $"holds a damaged {PartitionsFileName} file ('{text}') in '{dir}'");
            }
            if (recorded != settings.Partitions)
            {
                throw new CrabKvConfigurationException("partitions",
                    $"is {settings.Partitions}, but the data directory '{dir}' was created with {recorded} partitions; keys would be looked up in the wrong partition. Set crabkv.partitions = {recorded}");
            }
            return;
        }
        File.WriteAllText(marker, settings.Partitions.ToString(CultureInfo.InvariantCulture) + "\n");
    }
}
