using Akka.Hosting;
using CrabKv.Actors;
using CrabKv.Actors.Hosting;

namespace CrabKv.Cluster.Hosting;

/// <summary>Akka.Hosting registration of a CrabKv cluster node.</summary>
public static class CrabKvClusterHostingExtensions
{
    /// <summary>
    /// Starts CrabKv on this cluster node (see <see cref="CrabKvCluster.Start"/>): a shard region
    /// of the partitions when the node has the role <c>crabkv.cluster.role</c> (give it with
    /// Akka.Cluster.Hosting's <c>WithClustering</c>), a proxy otherwise, and the store endpoint
    /// registered under <see cref="CrabKvStoreKey"/>, so <c>CrabKvClient.ConnectAsync</c> and
    /// raw Tell/Ask work as with a single-node store. <paramref name="hocon"/>, then
    /// <paramref name="storeOptions"/> and <paramref name="options"/> are prepended (options
    /// win); the cluster and store reference configurations are appended as the fallback.
    /// Invalid settings (out of range, an unknown key under <c>crabkv</c>, a HOCON syntax error in
    /// <paramref name="hocon"/>) fail the host's start with a <see cref="CrabKvConfigurationException"/>.
    /// </summary>
    public static AkkaConfigurationBuilder WithCrabKvCluster(this AkkaConfigurationBuilder builder, CrabKvClusterOptions? options = null,
        CrabKvOptions? storeOptions = null, string? hocon = null, string actorName = "crabkv")
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (!string.IsNullOrWhiteSpace(hocon))
        {
            // Syntax checked here: Akka's parser would accept some malformed HOCON silently.
            builder.AddHocon(CrabKvConfig.ParseString(hocon, "WithCrabKvCluster hocon"), HoconAddMode.Prepend);
        }
        if (storeOptions is not null)
        {
            builder.AddHocon(storeOptions.ToHocon(), HoconAddMode.Prepend);
        }
        if (options is not null)
        {
            builder.AddHocon(options.ToHocon(), HoconAddMode.Prepend);
        }
        builder.AddHocon(CrabKvClusterSettings.FullDefaultConfig(), HoconAddMode.Append);
        builder.WithActors((system, registry) =>
        {
            var node = CrabKvCluster.Start(system, name: actorName);
            registry.Register<CrabKvStoreKey>(node.Endpoint);
        });
        return builder;
    }

    /// <summary>Starts a CrabKv cluster node configured from code only.</summary>
    public static AkkaConfigurationBuilder WithCrabKvCluster(this AkkaConfigurationBuilder builder, Action<CrabKvClusterOptions> configure,
        Action<CrabKvOptions>? configureStore = null, string actorName = "crabkv")
    {
        ArgumentNullException.ThrowIfNull(configure);
        var options = new CrabKvClusterOptions();
        configure(options);
        CrabKvOptions? storeOptions = null;
        if (configureStore is not null)
        {
            storeOptions = new CrabKvOptions();
            configureStore(storeOptions);
        }
        return builder.WithCrabKvCluster(options, storeOptions, null, actorName);
    }
}
