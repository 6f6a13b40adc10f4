using Akka.Actor;
using Akka.Hosting;
using CrabKv.Actors.Client;
using CrabKv.Actors.Hosting;
using CrabKv.Actors.Serialization;
using CrabKv.Actors.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>A real Microsoft.Extensions.Hosting host running a CrabKv store through Akka.Hosting.</summary>
public sealed class HostingTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);
    private readonly TempDataDir _dir = new();

    private IHost BuildHost(Action<AkkaConfigurationBuilder> configure) =>
        new HostBuilder()
            .ConfigureServices(services => services.AddAkka("crabkv-hosting-test", (builder, _) =>
            {
                builder.AddHocon("akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING", HoconAddMode.Prepend);
                configure(builder);
            }))
            .Build();

    private CrabKvOptions Options(bool writeBack = true) => new()
    {
        DataDir = _dir.Path,
        Partitions = 2,
        WriteBack = writeBack,
        FlushInterval = TimeSpan.FromHours(1), // only the graceful stop flushes
        SyncInterval = TimeSpan.FromMilliseconds(100),
    };

    [Fact]
    public async Task Host_runs_the_store_and_its_stop_flushes_write_back_data()
    {
        using (var host = BuildHost(b => b.WithCrabKv(Options())))
        {
            await host.StartAsync().WaitAsync(Timeout);
            var store = host.Services.GetRequiredService<ActorRegistry>().Get<CrabKvStoreKey>();
            var required = host.Services.GetRequiredService<IRequiredActor<CrabKvStoreKey>>();
            Assert.Equal(store, await required.GetAsync());

            var client = await CrabKvClient.ConnectAsync(store, Timeout);
            Assert.Equal(2, client.Partitions);
            for (var i = 0; i < 50; i++)
            {
                await client.PutAsync($"k{i}", $"v{i}");
            }
            Assert.Equal("v7", await client.GetStringAsync("k7"));
            var stats = await client.GetStatsAsync();
            Assert.Equal(2, stats.Partitions.Count);
            Assert.Equal(50, stats.Partitions.Sum(p => p.DirtyKeys)); // still only in memory
            Assert.Equal(0, stats.Keys);

            await host.StopAsync().WaitAsync(Timeout); // CoordinatedShutdown → Shutdown → flush
            await host.Services.GetRequiredService<ActorSystem>().WhenTerminated.WaitAsync(Timeout);
        }

        // A second host (the lock was released) sees every write, from the log.
        using var second = BuildHost(b => b.WithCrabKv(o =>
        {
            o.DataDir = _dir.Path;
            o.Partitions = 2;
        }));
        await second.StartAsync().WaitAsync(Timeout);
        var client2 = await CrabKvClient.ConnectAsync(second.Services.GetRequiredService<ActorRegistry>().Get<CrabKvStoreKey>(), Timeout);
        for (var i = 0; i < 50; i++)
        {
            Assert.Equal($"v{i}", await client2.GetStringAsync($"k{i}"));
        }
        Assert.Equal(50, (await client2.GetStatsAsync()).Keys);
        await second.StopAsync().WaitAsync(Timeout);
    }

    [Fact]
    public async Task Hocon_and_options_are_both_applied_and_options_win()
    {
        using var host = BuildHost(b => b.WithCrabKv(
            new CrabKvOptions { DataDir = _dir.Path, Partitions = 1, MaxKeyBytes = 8 },
            hocon: "crabkv.partitions = 3\ncrabkv.limits.max-value-bytes = 10"));
        await host.StartAsync().WaitAsync(Timeout);
        var system = host.Services.GetRequiredService<ActorSystem>();
        var settings = CrabKvSettings.Create(system);
        Assert.Equal(1, settings.Partitions);
        Assert.Equal(8, settings.MaxKeyBytes);
        Assert.Equal(10, settings.MaxValueBytes);

        var client = await CrabKvClient.ConnectAsync(host.Services.GetRequiredService<ActorRegistry>().Get<CrabKvStoreKey>(), Timeout);
        Assert.Equal(1, client.Partitions);
        Assert.Equal(CrabKvErrorCode.KeyTooLarge, (await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("123456789", "v"))).Code);
        Assert.Equal(CrabKvErrorCode.ValueTooLarge, (await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("k", new byte[11]))).Code);
        await host.StopAsync().WaitAsync(Timeout);
    }

    [Fact]
    public async Task A_bad_setting_fails_the_host_start_naming_the_key()
    {
        using var host = BuildHost(b => b.WithCrabKv(new CrabKvOptions { DataDir = _dir.Path, Partitions = 1 }, hocon: "crabkv.compaction.stale-ratio = 5"));
        var e = await Assert.ThrowsAnyAsync<Exception>(() => host.StartAsync().WaitAsync(Timeout));
        Assert.IsNotType<TimeoutException>(e);
        var all = Flatten(e).ToList();
        Assert.Contains(all, x => x.Message.Contains("crabkv.compaction.stale-ratio", StringComparison.Ordinal));
        await host.StopAsync().WaitAsync(Timeout);
    }

    [Fact]
    public async Task Hosted_system_binds_the_protocol_to_the_CrabKv_serializer()
    {
        using var host = BuildHost(b => b.WithCrabKv(Options(writeBack: false)));
        await host.StartAsync().WaitAsync(Timeout);
        var system = host.Services.GetRequiredService<ActorSystem>();
        Assert.IsType<CrabKvSerializer>(system.Serialization.FindSerializerForType(typeof(Put)));
        Assert.IsType<CrabKvSerializer>(system.Serialization.FindSerializerForType(typeof(StoreStats)));
        await host.StopAsync().WaitAsync(Timeout);
    }

    private static IEnumerable<Exception> Flatten(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            yield return x;
            if (x is AggregateException agg)
            {
                foreach (var inner in agg.InnerExceptions.SelectMany(Flatten))
                {
                    yield return inner;
                }
            }
        }
    }

    public void Dispose() => _dir.Dispose();
}
