using Akka.Hosting;

namespace CrabKv.Actors.Hosting;

/// <summary>Key of the CrabKv store actor in the <see cref="ActorRegistry"/> (<c>IRequiredActor&lt;CrabKvStoreKey&gt;</c>).</summary>
public sealed class CrabKvStoreKey;

/// <summary>Akka.Hosting registration of a CrabKv store.</summary>
public static class CrabKvHostingExtensions
{
    /// <summary>
    /// Starts a CrabKv store in the actor system: <paramref name="hocon"/> and then
    /// <paramref name="options"/> are prepended (options win), the reference configuration is
    /// appended as the fallback, and the store actor is registered under
    /// <see cref="CrabKvStoreKey"/>. Invalid settings fail the host's start with a
    /// <see cref="CrabKvConfigurationException"/> naming the key: a value out of range, a key under
    /// <c>crabkv</c> the reference does not know (with the closest known one), or a HOCON syntax
    /// error in <paramref name="hocon"/> (with its line).
    /// </summary>
    public static AkkaConfigurationBuilder WithCrabKv(this AkkaConfigurationBuilder builder, CrabKvOptions? options = null, string? hocon = null, string actorName = "crabkv")
    {
        if (!string.IsNullOrWhiteSpace(hocon))
        {
            // Syntax checked here: Akka's parser would accept some malformed HOCON silently.
            builder.AddHocon(CrabKvConfig.ParseString(hocon, "WithCrabKv hocon"), HoconAddMode.Prepend);
        }
        if (options is not null)
        {
            builder.AddHocon(options.ToHocon(), HoconAddMode.Prepend);
        }
        builder.AddHocon(CrabKvSettings.DefaultConfig(), HoconAddMode.Append);
        builder.WithActors((system, registry) =>
        {
            var settings = CrabKvSettings.Create(system);
            registry.Register<CrabKvStoreKey>(CrabKvStore.Start(system, settings, actorName));
        });
        return builder;
    }

    /// <summary>Starts a CrabKv store configured from code only.</summary>
    public static AkkaConfigurationBuilder WithCrabKv(this AkkaConfigurationBuilder builder, Action<CrabKvOptions> configure, string actorName = "crabkv")
    {
        var options = new CrabKvOptions();
        configure(options);
        return builder.WithCrabKv(options, null, actorName);
    }
}
