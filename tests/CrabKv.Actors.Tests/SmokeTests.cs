using Akka.Actor;
using Akka.TestKit.Xunit2;
using CrabKv.Actors.Client;
using CrabKv.Actors.Tests.Support;
using Xunit;

namespace CrabKv.Actors.Tests;

public sealed class SmokeTests : TestKit, IDisposable
{
    private readonly TempDataDir _dir = new();

    public SmokeTests() : base(CrabKvSettings.DefaultConfig()) { }

    [Fact]
    public async Task PutGetDeleteRoundTrip()
    {
        var store = CrabKvStore.Start(Sys, _dir.Settings());
        var client = await CrabKvClient.ConnectAsync(store);
        await client.PutAsync("a", "1");
        Assert.Equal("1", await client.GetStringAsync("a"));
        Assert.True(await client.DeleteAsync("a"));
        Assert.Null(await client.GetStringAsync("a"));
        await client.PutBatchAsync([new BatchEntry("b", "x"u8.ToArray()), new BatchEntry("c", "y"u8.ToArray())]);
        await client.FlushAsync();
        var stats = await client.GetStatsAsync();
        Assert.Equal(2, stats.Keys);
        var c = await client.CompactAsync();
        Assert.True(c.BytesAfter <= c.BytesBefore);
        Assert.Equal("y", await client.GetStringAsync("c"));
        store.Tell(new Shutdown(7));
        ExpectMsg<ShutdownOk>(m => m.RequestId == 7);
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        _dir.Dispose();
    }
}
