using Akka.Configuration;
using Akka.Hosting;
using Akka.Remote.Hosting;
using CrabKv.Actors;
using CrabKv.Actors.Hosting;
using CrabKv.Cluster.Hosting;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace CrabKv.Cluster.Tests;

/// <summary>Unknown keys on a cluster node: crabkv.cluster.* against the cluster reference, crabkv.* against the store's.</summary>
public sealed class ClusterSettingsValidationTests
{
    private static CrabKvConfigurationException Refused(string hocon) =>
        Assert.Throws<CrabKvConfigurationException>(() => CrabKvClusterSettings.Create(ConfigurationFactory.ParseString(hocon)));

    [Theory]
    [InlineData("crabkv.cluster.partitons = 8", "crabkv.cluster.partitions")]
    [InlineData("crabkv.cluster.fan-out-timout = 5s", "crabkv.cluster.fan-out-timeout")]
    [InlineData("crabkv.clustr.partitions = 8", "crabkv.cluster.partitions")]
    [InlineData("crabkv.sync-intervall = 5ms", "crabkv.sync-interval")]
    public void An_unknown_key_is_refused_naming_the_closest_known_one(string hocon, string suggestion)
    {
        var key = hocon[..hocon.IndexOf(' ')];
        var e = Refused(hocon);
        Assert.Equal($"Invalid CrabKv configuration: unknown key {key}; did you mean {suggestion}?", e.Message);
    }

    [Fact]
    public void Known_store_and_cluster_keys_pass()
    {
        var s = CrabKvClusterSettings.Create(ConfigurationFactory.ParseString("""
            crabkv.cluster.partitions = 8
            crabkv.sync-interval = 5ms
            crabkv.io-dispatcher-config.throughput = 10
            """));
        Assert.Equal(8, s.Partitions);
        Assert.Contains("crabkv.cluster.leave-drain-timeout", CrabKvClusterSettings.KnownKeys);
        Assert.Contains("crabkv.segment.preallocate", CrabKvClusterSettings.KnownKeys);
    }

    [Fact]
    public async Task A_per_role_min_nr_of_members_is_refused_naming_the_setting_to_use_instead()
    {
        var system = Akka.Actor.ActorSystem.Create("crabkv-role-min", ConfigurationFactory.ParseString("""
            akka.loglevel = WARNING
            akka.actor.provider = cluster
            akka.remote.dot-netty.tcp.hostname = 127.0.0.1
            akka.remote.dot-netty.tcp.port = 0
            akka.cluster.roles = [crabkv]
            akka.cluster.role.crabkv.min-nr-of-members = 3
            akka.coordinated-shutdown.exit-clr = off
            crabkv.data-dir = "/nonexistent/never-opened"
            """).WithFallback(CrabKvClusterSettings.FullDefaultConfig()));
        try
        {
            var e = Assert.Throws<CrabKvConfigurationException>(() => CrabKvCluster.Start(system));
            Assert.Contains("akka.cluster.role.crabkv.min-nr-of-members is 3", e.Message);
            Assert.Contains("set akka.cluster.min-nr-of-members = 3 instead", e.Message);
        }
        finally
        {
            await system.Terminate().WaitAsync(TimeSpan.FromSeconds(60));
        }
    }

    [Fact]
    public async Task WithCrabKvCluster_fails_the_host_start_on_an_unknown_key()
    {
        var dir = Path.Combine(Path.GetTempPath(), "crabkv-cluster-validation-" + Guid.NewGuid().ToString("N"));
        using var host = new HostBuilder()
            .ConfigureServices(services => services.AddAkka("crabkv-validation", (akka, _) => akka
                .AddHocon("akka.loglevel = WARNING\nakka.coordinated-shutdown.exit-clr = off", HoconAddMode.Prepend)
                .WithRemoting("127.0.0.1", 0)
                .WithCrabKvCluster(new CrabKvClusterOptions { Partitions = 4 }, new CrabKvOptions { DataDir = dir },
                    hocon: "crabkv.cluster.rebalanse = on")))
            .Build();
        try
        {
            var e = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync().WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.IsNotType<TimeoutException>(e);
            var messages = new List<string>();
            for (Exception? x = e; x is not null; x = x.InnerException)
            {
                messages.Add(x.Message);
            }
            Assert.Contains(messages, m => m.Contains("unknown key crabkv.cluster.rebalanse; did you mean crabkv.cluster.rebalance?", StringComparison.Ordinal));
            await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
