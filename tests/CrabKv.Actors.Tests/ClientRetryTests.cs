using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using CrabKv.Actors.Client;
using CrabKv.Actors.Tests.Support;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// The typed client against a fake store (TestActor answers by hand): opt-in retries of
/// transient refusals with bounded backoff, and the configured client timeout.
/// </summary>
public sealed class ClientRetryTests() : TestKit(ConfigurationFactory.ParseString("""
    akka.loglevel = WARNING
    crabkv.client-timeout = 7s
    """).WithFallback(CrabKvSettings.DefaultConfig()))
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    private static CrabKvClientOptions Retrying(int maxRetries = 5) => new()
    {
        DefaultTimeout = Wait,
        RetryTransient = true,
        MaxRetries = maxRetries,
        InitialBackoff = TimeSpan.FromMilliseconds(1),
        MaxBackoff = TimeSpan.FromMilliseconds(4),
    };

    /// <summary>The id of the last request received: a reply must echo it (the client matches replies by it).</summary>
    private long LastId => ((ICrabKvRequest)LastMessage).RequestId;

    private void Refuse(CrabKvErrorCode code) => LastSender.Tell(new CrabKvError(code, $"refused: {code}", LastId));

    [Theory]
    [InlineData(CrabKvErrorCode.Overloaded)]
    [InlineData(CrabKvErrorCode.PartitionMoving)]
    [InlineData(CrabKvErrorCode.PartitionUnavailable)]
    public async Task A_transient_refusal_is_retried_until_the_request_succeeds(CrabKvErrorCode code)
    {
        var client = new CrabKvClient(TestActor, Retrying());
        var put = client.PutAsync("k", "v");
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("k", ExpectMsg<Put>(Wait).Key);
            Refuse(code);
        }
        Assert.Equal("k", ExpectMsg<Put>(Wait).Key); // sent again, in full
        LastSender.Tell(new PutOk(LastId));
        await put.WaitAsync(Wait);
    }

    [Fact]
    public async Task Reads_deletes_and_batches_are_retried_too()
    {
        var client = new CrabKvClient(TestActor, Retrying());
        var get = client.GetStringAsync("k");
        ExpectMsg<Get>(Wait);
        Refuse(CrabKvErrorCode.PartitionMoving);
        ExpectMsg<Get>(Wait);
        LastSender.Tell(new GetResult("k", true, "v"u8.ToArray(), LastId));
        Assert.Equal("v", await get.WaitAsync(Wait));

        var delete = client.DeleteAsync("k");
        ExpectMsg<Delete>(Wait);
        Refuse(CrabKvErrorCode.Overloaded);
        ExpectMsg<Delete>(Wait);
        LastSender.Tell(new DeleteOk(true, LastId));
        Assert.True(await delete.WaitAsync(Wait));

        var batch = client.PutBatchAsync([new BatchEntry("a", "1"u8.ToArray())]);
        ExpectMsg<PutBatch>(Wait);
        Refuse(CrabKvErrorCode.PartitionUnavailable);
        Assert.Single(ExpectMsg<PutBatch>(Wait).Entries);
        LastSender.Tell(new PutBatchOk(1, LastId));
        Assert.Equal(1, await batch.WaitAsync(Wait));
    }

    [Fact]
    public async Task A_read_that_timed_out_is_asked_again_when_asked_to_but_a_write_never_is()
    {
        var options = Retrying() with { DefaultTimeout = TimeSpan.FromMilliseconds(300), RetryReadTimeouts = true };
        var client = new CrabKvClient(TestActor, options);

        // The first Get is lost (no answer): the client asks again, and the second is answered.
        var get = client.GetStringAsync("k");
        ExpectMsg<Get>(Wait);
        ExpectMsg<Get>(Wait);
        LastSender.Tell(new GetResult("k", true, "v"u8.ToArray(), LastId));
        Assert.Equal("v", await get.WaitAsync(Wait));

        // A put that timed out may have been applied: it is not sent again.
        var put = client.PutAsync("k", "w");
        ExpectMsg<Put>(Wait);
        await Assert.ThrowsAsync<TimeoutException>(() => put.WaitAsync(Wait));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        // Bounded: with every read lost, the timeout is thrown after MaxRetries retries.
        var bounded = new CrabKvClient(TestActor, options with { MaxRetries = 2 });
        var lost = bounded.GetAsync("k");
        for (var i = 0; i < 3; i++)
        {
            ExpectMsg<Get>(Wait);
        }
        await Assert.ThrowsAsync<TimeoutException>(() => lost.WaitAsync(Wait));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void A_request_timeout_that_is_not_positive_is_refused_before_anything_is_sent()
    {
        // Observed before: a get with timeout -1 s was sent, and against a silent endpoint failed
        // with "did not answer Get within -00:00:01".
        var client = new CrabKvClient(TestActor, Retrying());
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => { _ = client.GetAsync("k", timeout: TimeSpan.FromSeconds(-1)); }); // thrown by the call, not its task
        Assert.Equal("timeout", e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => { _ = client.PutAsync("k", "v", timeout: TimeSpan.Zero); });
        ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        var nobody = Assert.Throws<ArgumentException>(() => new CrabKvClient(ActorRefs.Nobody));
        Assert.Contains("ActorRefs.Nobody", nobody.Message);
    }

    [Fact]
    public async Task Without_the_option_a_read_that_timed_out_is_thrown_at_once()
    {
        var client = new CrabKvClient(TestActor, Retrying() with { DefaultTimeout = TimeSpan.FromMilliseconds(300) });
        var get = client.GetAsync("k");
        ExpectMsg<Get>(Wait);
        await Assert.ThrowsAsync<TimeoutException>(() => get.WaitAsync(Wait));
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public async Task Retries_are_bounded_and_the_last_refusal_is_thrown()
    {
        var client = new CrabKvClient(TestActor, Retrying(maxRetries: 2));
        var put = client.PutAsync("k", "v");
        for (var i = 0; i < 3; i++) // the first attempt and two retries
        {
            ExpectMsg<Put>(Wait);
            Refuse(CrabKvErrorCode.Overloaded);
        }
        var e = await Assert.ThrowsAsync<CrabKvRequestException>(() => put.WaitAsync(Wait));
        Assert.Equal(CrabKvErrorCode.Overloaded, e.Code);
        Assert.Contains("after 2 retries", e.Message);
        ExpectNoMsg(TimeSpan.FromMilliseconds(200)); // no fourth attempt
    }

    [Theory]
    [InlineData(CrabKvErrorCode.ShuttingDown)]
    [InlineData(CrabKvErrorCode.StoreFailed)]
    [InlineData(CrabKvErrorCode.KeyTooLarge)]
    [InlineData(CrabKvErrorCode.WriteBackBufferFull)]
    public async Task Other_errors_are_never_retried(CrabKvErrorCode code)
    {
        var client = new CrabKvClient(TestActor, Retrying());
        var put = client.PutAsync("k", "v");
        ExpectMsg<Put>(Wait);
        Refuse(code);
        Assert.Equal(code, (await Assert.ThrowsAsync<CrabKvRequestException>(() => put.WaitAsync(Wait))).Code);
    }

    [Fact]
    public async Task ShuttingDown_is_retried_when_the_caller_adds_it()
    {
        var client = new CrabKvClient(TestActor, Retrying() with { RetryCodes = new HashSet<CrabKvErrorCode> { CrabKvErrorCode.ShuttingDown } });
        var put = client.PutAsync("k", "v");
        ExpectMsg<Put>(Wait);
        Refuse(CrabKvErrorCode.ShuttingDown);
        ExpectMsg<Put>(Wait);
        LastSender.Tell(new PutOk(LastId));
        await put.WaitAsync(Wait);
    }

    [Fact]
    public async Task Without_the_option_a_transient_refusal_is_thrown_at_once()
    {
        var client = new CrabKvClient(TestActor, Wait);
        var put = client.PutAsync("k", "v");
        ExpectMsg<Put>(Wait);
        Refuse(CrabKvErrorCode.Overloaded);
        var e = await Assert.ThrowsAsync<CrabKvRequestException>(() => put.WaitAsync(Wait));
        Assert.Equal(CrabKvErrorCode.Overloaded, e.Code);
        Assert.Equal("refused: Overloaded", e.Message);
    }

    [Fact]
    public void Backoff_doubles_from_the_initial_pause_up_to_the_maximum()
    {
        var o = new CrabKvClientOptions { InitialBackoff = TimeSpan.FromMilliseconds(50), MaxBackoff = TimeSpan.FromMilliseconds(300) };
        Assert.Equal([50, 100, 200, 300, 300], Enumerable.Range(1, 5).Select(r => o.BackoffBefore(r).TotalMilliseconds));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CrabKvClient(TestActor, new CrabKvClientOptions { MaxRetries = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new CrabKvClient(TestActor, new CrabKvClientOptions { DefaultTimeout = TimeSpan.Zero }));
    }

    [Fact]
    public void Without_a_timeout_the_client_uses_crabkv_client_timeout_of_the_store_system()
    {
        Assert.Equal(TimeSpan.FromSeconds(7), new CrabKvClient(TestActor).DefaultTimeout);
        Assert.Equal(TimeSpan.FromSeconds(3), new CrabKvClient(TestActor, TimeSpan.FromSeconds(3)).DefaultTimeout);
    }

    [Fact]
    public async Task ConnectAsync_uses_crabkv_client_timeout_for_a_local_store_and_its_requests()
    {
        using var dir = new TempDataDir();
        var store = CrabKvStore.Start(Sys, dir.Settings("crabkv.segment.preallocate = 0"));
        var client = await CrabKvClient.ConnectAsync(store);
        Assert.Equal(1, client.Partitions);
        Assert.Equal(TimeSpan.FromSeconds(7), client.DefaultTimeout); // not the former fixed 10 s
        var explicitTimeout = await CrabKvClient.ConnectAsync(store, TimeSpan.FromSeconds(2));
        Assert.Equal(TimeSpan.FromSeconds(2), explicitTimeout.DefaultTimeout);
        var retrying = await CrabKvClient.ConnectAsync(store, Retrying());
        await retrying.PutAsync("k", "v");
        Assert.Equal("v", await retrying.GetStringAsync("k"));
        Watch(store);
        store.Tell(new Shutdown(1));
        ExpectMsg<ShutdownOk>(Wait);
        ExpectTerminated(store, Wait);
    }
}
