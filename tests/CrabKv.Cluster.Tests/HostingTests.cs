using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using CrabKv.Actors.Client;
using CrabKv.Actors.Hosting;
using CrabKv.Cluster.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace CrabKv.Cluster.Tests;

/// <summary>
/// The Akka.Hosting path: WithRemoting + WithClustering (role crabkv) + WithCrabKvCluster in a
/// real generic host; the endpoint registered under CrabKvStoreKey serves the typed client on a
/// one-node cluster, with the options' partition count.
/// </summary>
public sealed class HostingTests
{
    [Fact]
    public async Task WithCrabKvCluster_registers_an_endpoint_that_serves_the_client()
    {
        var dir = Path.Combine(Path.GetTempPath(), "crabkv-cluster-hosting-" + Guid.NewGuid().ToString("N"));
        using var host = new HostBuilder()
            .ConfigureServices(services => services.AddAkka("crabkv-hosting", (akka, _) => akka
                .AddHocon("akka.loglevel = WARNING\nakka.coordinated-shutdown.exit-clr = off", HoconAddMode.Prepend)
                .WithRemoting("127.0.0.1", 0)
                .WithClustering(new ClusterOptions { Roles = ["crabkv"] })
                .WithCrabKvCluster(
                    new CrabKvClusterOptions { Partitions = 4 },
                    new CrabKvOptions { DataDir = dir, SegmentMaxBytes = 1 << 20 })))
            .Build();
        try
        {
            await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(60));
            var system = host.Services.GetRequiredService<ActorSystem>();
            var cluster = Akka.Cluster.Cluster.Get(system);
            cluster.Join(cluster.SelfAddress);

            var endpoint = await host.Services.GetRequiredService<IRequiredActor<CrabKvStoreKey>>().GetAsync();
            var client = await CrabKvClient.ConnectAsync(endpoint, TimeSpan.FromSeconds(60));
            await client.PutAsync("hosted", "yes");
            Assert.Equal("yes", await client.GetStringAsync("hosted"));
            Assert.Equal([0, 1, 2, 3], (await client.GetStatsAsync()).Partitions.Select(p => p.Partition));
            Assert.Equal("4", File.ReadAllText(Path.Combine(dir, "PARTITIONS")).Trim());
        }
        finally
        {
            await host.StopAsync().WaitAsync(TimeSpan.FromSeconds(60));
            Directory.Delete(dir, recursive: true);
        }
    }
}
