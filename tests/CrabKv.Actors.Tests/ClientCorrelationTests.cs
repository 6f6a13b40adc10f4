using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.TestKit.Xunit2;
using CrabKv.Actors.Client;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// How the typed client matches replies to requests without a temporary actor per request:
/// one reply address per actor system, replies matched by the RequestId they echo, coarse
/// timeouts by a sweep, cancellation. The store is faked by TestActor (answers by hand).
/// </summary>
public sealed class ClientCorrelationTests() : TestKit(ConfigurationFactory.ParseString("""
    akka.loglevel = WARNING
    """).WithFallback(CrabKvSettings.DefaultConfig()))
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    private CrabKvClient Client(TimeSpan? timeout = null) => new(TestActor, timeout ?? Wait);

    private static GetResult Found(Get get, string value) => new(get.Key, true, System.Text.Encoding.UTF8.GetBytes(value), get.RequestId);

    [Fact]
    public async Task When_the_actor_system_terminates_waiting_and_later_requests_fail_at_once_not_at_their_timeout()
    {
        var system = ActorSystem.Create("terminating", ConfigurationFactory.ParseString("akka.loglevel = WARNING").WithFallback(CrabKvSettings.DefaultConfig()));
        try
        {
            var silent = system.ActorOf(Props.Create(() => new SilentActor()));
            var client = new CrabKvClient(silent, TimeSpan.FromMinutes(5));
            var waiting = client.GetAsync("k");
            var alsoWaiting = client.PutAsync("k", "v");
            Assert.False(waiting.IsCompleted);

            await system.Terminate().WaitAsync(Wait);

            // Failed by the termination, not by the 5-minute timeout.
            var e = await Assert.ThrowsAsync<CrabKvRequestException>(() => waiting.WaitAsync(Wait));
            Assert.Equal(CrabKvErrorCode.ShuttingDown, e.Code);
            Assert.Contains("Get", e.Message);
            Assert.Equal(CrabKvErrorCode.ShuttingDown, (await Assert.ThrowsAsync<CrabKvRequestException>(() => alsoWaiting.WaitAsync(Wait))).Code);

            // A request made afterwards fails before it returns.
            var later = client.DeleteAsync("k");
            Assert.True(later.IsFaulted);
            Assert.Equal(CrabKvErrorCode.ShuttingDown, (await Assert.ThrowsAsync<CrabKvRequestException>(() => later)).Code);
        }
        finally
        {
            await system.Terminate();
        }
    }

    /// <summary>Receives everything and answers nothing.</summary>
    private sealed class SilentActor : ReceiveActor
    {
        public SilentActor() => ReceiveAny(_ => { });
    }

    [Fact]
    public async Task Replies_are_matched_by_their_RequestId_in_any_order()
    {
        var client = Client();
        var a = client.GetStringAsync("a");
        var getA = ExpectMsg<Get>(Wait);
        var senderA = LastSender;
        var b = client.GetStringAsync("b");
        var getB = ExpectMsg<Get>(Wait);

        Assert.NotEqual(0, getA.RequestId);
        Assert.NotEqual(getA.RequestId, getB.RequestId);
        Assert.Equal(senderA, LastSender); // one reply address, not a temporary actor per request
        Assert.Equal("temp", senderA.Path.Parent.Name); // registered, so a remote node can answer it

        LastSender.Tell(Found(getB, "vb")); // the second answered first
        Assert.Equal("vb", await b.WaitAsync(Wait));
        Assert.False(a.IsCompleted);
        senderA.Tell(Found(getA, "va"));
        Assert.Equal("va", await a.WaitAsync(Wait));
    }

    [Fact]
    public async Task Clients_of_one_actor_system_share_the_reply_address_and_never_reuse_an_id()
    {
        var one = Client();
        var two = Client();
        var first = one.PutAsync("k", "1");
        var put1 = ExpectMsg<Put>(Wait);
        var sender1 = LastSender;
        var second = two.PutAsync("k", "2");
        var put2 = ExpectMsg<Put>(Wait);
        Assert.Equal(sender1, LastSender);
        Assert.NotEqual(put1.RequestId, put2.RequestId);
        LastSender.Tell(new PutOk(put2.RequestId));
        LastSender.Tell(new PutOk(put1.RequestId));
        await Task.WhenAll(first, second).WaitAsync(Wait);
    }

    [Fact]
    public async Task A_reply_with_an_unknown_id_completes_nothing()
    {
        var client = Client();
        var get = client.GetStringAsync("k");
        var request = ExpectMsg<Get>(Wait);
        LastSender.Tell(new GetResult("k", true, "wrong"u8.ToArray(), request.RequestId + 1000));
        LastSender.Tell(new GetResult("k", true, "wrong"u8.ToArray(), 0));
        // The reply address handles messages as they are told, in order: once the right reply
        // has been matched, the two before it were seen and ignored.
        LastSender.Tell(Found(request, "right"));
        Assert.Equal("right", await get.WaitAsync(Wait));
    }

    [Fact]
    public async Task Error_replies_are_matched_too_and_become_exceptions()
    {
        var client = Client();
        var put = client.PutAsync("k", "v");
        var request = ExpectMsg<Put>(Wait);
        LastSender.Tell(new CrabKvError(CrabKvErrorCode.KeyTooLarge, "too large", request.RequestId));
        var e = await Assert.ThrowsAsync<CrabKvRequestException>(() => put.WaitAsync(Wait));
        Assert.Equal(CrabKvErrorCode.KeyTooLarge, e.Code);
    }

    [Fact]
    public async Task Replies_inside_a_ProtocolBatch_each_complete_their_request()
    {
        var client = Client();
        var a = client.DeleteAsync("a");
        var deleteA = ExpectMsg<Delete>(Wait);
        var b = client.DeleteAsync("b");
        var deleteB = ExpectMsg<Delete>(Wait);
        LastSender.Tell(new ProtocolBatch([new DeleteOk(true, deleteB.RequestId), new DeleteOk(false, deleteA.RequestId)]));
        Assert.False(await a.WaitAsync(Wait));
        Assert.True(await b.WaitAsync(Wait));
    }

    [Fact]
    public async Task A_request_without_an_answer_times_out_and_its_late_reply_is_ignored()
    {
        var client = Client(TimeSpan.FromMilliseconds(200));
        var get = client.GetAsync("k");
        var request = ExpectMsg<Get>(Wait);
        var replyTo = LastSender;
        var e = await Assert.ThrowsAsync<TimeoutException>(() => get.WaitAsync(Wait));
        Assert.Contains("Get", e.Message);
        Assert.Contains("00:00:00.2", e.Message);

        replyTo.Tell(Found(request, "late")); // dropped: nothing waits for it
        var next = client.GetStringAsync("k", timeout: Wait);
        var again = ExpectMsg<Get>(Wait);
        Assert.NotEqual(request.RequestId, again.RequestId);
        replyTo.Tell(Found(again, "fresh"));
        Assert.Equal("fresh", await next.WaitAsync(Wait));
    }

    [Fact]
    public async Task Each_request_keeps_its_own_timeout()
    {
        var client = Client();
        var longOne = client.PutAsync("a", "1");
        var longPut = ExpectMsg<Put>(Wait);
        var shortOne = client.PutAsync("b", "2", timeout: TimeSpan.FromMilliseconds(100));
        ExpectMsg<Put>(Wait);
        await Assert.ThrowsAsync<TimeoutException>(() => shortOne.WaitAsync(Wait));
        Assert.False(longOne.IsCompleted); // its 15 s timeout has not passed
        LastSender.Tell(new PutOk(longPut.RequestId));
        await longOne.WaitAsync(Wait);
    }

    [Fact]
    public async Task A_cancelled_request_fails_with_TaskCanceledException_and_is_forgotten()
    {
        var client = Client();
        using var cts = new CancellationTokenSource();
        var get = client.GetAsync("k", cancellationToken: cts.Token);
        var request = ExpectMsg<Get>(Wait);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => get.WaitAsync(Wait));
        LastSender.Tell(Found(request, "late")); // ignored

        // Cancelled before it is sent: not sent at all.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.PutAsync("k", "v", cancellationToken: cts.Token).WaitAsync(Wait));
        ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public async Task Many_concurrent_requests_each_get_their_own_reply()
    {
        const int count = 500;
        var echo = Sys.ActorOf(Props.Create(() => new ReversingEcho(count)));
        var client = new CrabKvClient(echo, Wait);
        var gets = Enumerable.Range(0, count).Select(i => client.GetStringAsync($"k{i}")).ToArray();
        var values = await Task.WhenAll(gets).WaitAsync(Wait);
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"k{i}"), values);
        var correlator = RequestCorrelator.For(echo)!;
        Assert.Equal(0, correlator.Pending);
    }

    [Fact]
    public async Task The_timeout_sweep_stops_when_idle_and_restarts_with_the_next_request()
    {
        var correlator = RequestCorrelator.For(TestActor)!;
        var client = Client(TimeSpan.FromMilliseconds(100));
        var first = client.PutAsync("k", "v");
        ExpectMsg<Put>(Wait);
        await Assert.ThrowsAsync<TimeoutException>(() => first.WaitAsync(Wait));
        AwaitAssert(() => Assert.False(correlator.Sweeping), Wait, TimeSpan.FromMilliseconds(50));

        var second = client.PutAsync("k", "v");
        ExpectMsg<Put>(Wait);
        Assert.True(correlator.Sweeping);
        await Assert.ThrowsAsync<TimeoutException>(() => second.WaitAsync(Wait)); // so it still times out
    }

    [Fact]
    public void A_message_that_is_no_reply_goes_to_dead_letters()
    {
        Sys.EventStream.Subscribe(TestActor, typeof(DeadLetter));
        var correlator = RequestCorrelator.For(TestActor)!;
        correlator.Tell("not a reply", TestActor);
        Assert.Equal("not a reply", FishForMessage<DeadLetter>(d => d.Message is "not a reply", Wait).Message);
    }

    [Fact]
    public async Task A_late_reply_to_a_timed_out_request_cannot_complete_the_next_use_of_its_slot()
    {
        var correlator = RequestCorrelator.For(TestActor)!;
        var client = Client(TimeSpan.FromMilliseconds(100));
        var first = client.GetStringAsync("k");
        var stale = ExpectMsg<Get>(Wait);
        var replyTo = LastSender;
        await Assert.ThrowsAsync<TimeoutException>(() => first.WaitAsync(Wait));

        var second = client.GetStringAsync("k", timeout: Wait);
        var fresh = ExpectMsg<Get>(Wait);
        // The same slot, a new generation: the id differs, the slot index does not.
        Assert.Equal(PendingRequest.IndexOf(stale.RequestId), PendingRequest.IndexOf(fresh.RequestId));
        Assert.NotEqual(stale.RequestId, fresh.RequestId);
        Assert.Equal(1, correlator.Slots);

        replyTo.Tell(Found(stale, "stale")); // the old generation: ignored
        replyTo.Tell(Found(fresh, "fresh"));
        Assert.Equal("fresh", await second.WaitAsync(Wait));
        Assert.Equal(0, correlator.Pending);
    }

    [Fact]
    public async Task A_late_reply_to_a_cancelled_request_cannot_complete_the_next_use_of_its_slot()
    {
        var client = Client();
        using var cts = new CancellationTokenSource();
        var first = client.DeleteAsync("k", cancellationToken: cts.Token);
        var stale = ExpectMsg<Delete>(Wait);
        var replyTo = LastSender;
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first.WaitAsync(Wait));

        var second = client.DeleteAsync("k");
        var fresh = ExpectMsg<Delete>(Wait);
        Assert.Equal(PendingRequest.IndexOf(stale.RequestId), PendingRequest.IndexOf(fresh.RequestId));
        replyTo.Tell(new DeleteOk(true, stale.RequestId)); // ignored: it would say true
        replyTo.Tell(new DeleteOk(false, fresh.RequestId));
        Assert.False(await second.WaitAsync(Wait));
    }

    [Fact]
    public void A_slot_is_claimed_once_per_use_and_never_by_an_older_generation()
    {
        var correlator = RequestCorrelator.For(TestActor)!;
        var slot = correlator.Reserve();
        var first = slot.ReservedId;
        Assert.NotEqual(0, first);
        Assert.False(slot.TryClaim(first)); // reserved, not sent: nothing to claim
        slot.Publish();
        Assert.True(slot.TryClaim(first));
        Assert.False(slot.TryClaim(first)); // claimed once only
        correlator.Release(slot);

        var again = correlator.Reserve();
        Assert.Same(slot, again);
        var second = again.ReservedId;
        Assert.NotEqual(first, second);
        again.Publish();
        Assert.False(again.TryClaim(first)); // an older generation
        Assert.False(again.TryClaim(0));
        Assert.True(again.TryClaim(second));
        correlator.Release(again);
    }

    [Fact]
    public void A_slot_reused_past_its_last_generation_starts_again_at_1_and_its_ids_stay_positive()
    {
        var correlator = RequestCorrelator.For(TestActor)!;
        var slot = correlator.Reserve();
        correlator.Release(slot);
        var reused = correlator.Reserve();
        Assert.Same(slot, reused);
        correlator.Release(reused);

        // As if the slot had been used 2^39 - 2 times: the next two uses are the last generation and 1.
        slot.SetGenerationForTest(PendingRequest.MaxGeneration - 1);
        var last = correlator.Reserve();
        Assert.Same(slot, last);
        var lastId = last.ReservedId;
        Assert.True(lastId > 0, $"id {lastId}");
        Assert.Equal(slot.Index, PendingRequest.IndexOf(lastId));
        last.Publish();
        Assert.True(last.TryClaim(lastId));
        correlator.Release(last);

        var wrapped = correlator.Reserve();
        Assert.Same(slot, wrapped);
        var wrappedId = wrapped.ReservedId;
        Assert.Equal((1L << PendingRequest.IndexBits) | (uint)slot.Index, wrappedId); // generation 1 again, never 0
        Assert.NotEqual(lastId, wrappedId);
        wrapped.Publish();
        Assert.False(wrapped.TryClaim(lastId)); // the previous use's id
        Assert.True(wrapped.TryClaim(wrappedId));
        correlator.Release(wrapped);
    }

    [Fact]
    public async Task Many_concurrent_callers_reuse_a_slot_table_as_large_as_their_concurrency()
    {
        const int callers = 16;
        const int requestsEach = 100;
        var echo = Sys.ActorOf(Props.Create(() => new ImmediateEcho()));
        var client = new CrabKvClient(echo, Wait);
        var correlator = RequestCorrelator.For(echo)!;
        var loops = Enumerable.Range(0, callers).Select(c => Task.Run(async () =>
        {
            var mismatches = 0;
            for (var i = 0; i < requestsEach; i++)
            {
                var key = $"c{c}-{i}";
                if (await client.GetStringAsync(key) != key)
                {
                    mismatches++;
                }
            }
            return mismatches;
        })).ToArray();
        var results = await Task.WhenAll(loops).WaitAsync(Wait);
        Assert.All(results, m => Assert.Equal(0, m));
        Assert.Equal(0, correlator.Pending);
        Assert.InRange(correlator.Slots, 1, callers); // slots are reused, not one per request
    }

    [Fact]
    public async Task A_request_without_a_reply_times_out_while_others_around_it_complete()
    {
        var correlator = RequestCorrelator.For(TestActor)!;
        var client = Client(TimeSpan.FromMilliseconds(150));
        var lost = client.PutAsync("lost", "v");
        ExpectMsg<Put>(Wait);
        var answered = new List<Task>();
        for (var i = 0; i < 20; i++)
        {
            answered.Add(client.PutAsync($"k{i}", "v", timeout: Wait));
            var put = ExpectMsg<Put>(Wait);
            LastSender.Tell(new PutOk(put.RequestId));
        }
        await Task.WhenAll(answered).WaitAsync(Wait);
        var e = await Assert.ThrowsAsync<TimeoutException>(() => lost.WaitAsync(Wait));
        Assert.Contains("Put", e.Message);
        Assert.Equal(0, correlator.Pending);
    }

    [Fact]
    public async Task A_reply_never_runs_the_callers_continuation_on_the_replying_actors_thread()
    {
        var echo = Sys.ActorOf(Props.Create(() => new MarkingEcho()));
        var client = new CrabKvClient(echo, Wait);
        var insideActor = new List<bool>();
        for (var i = 0; i < 20; i++)
        {
            // ExecuteSynchronously would run it inside the echo's Tell if the task allowed it.
            insideActor.Add(await client.GetStringAsync($"k{i}").ContinueWith(
                _ => MarkingEcho.Replying,
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).WaitAsync(Wait));
        }
        Assert.Equal(20, insideActor.Count);
        Assert.All(insideActor, Assert.False);
    }

    /// <summary>Answers every get at once; <see cref="Replying"/> is true on its thread while it tells the reply.</summary>
    private sealed class MarkingEcho : ReceiveActor
    {
        [ThreadStatic]
        private static bool t_replying;

        public MarkingEcho() => Receive<Get>(g =>
        {
            t_replying = true;
            try
            {
                Sender.Tell(Found(g, g.Key));
            }
            finally
            {
                t_replying = false;
            }
        });

        public static bool Replying => t_replying;
    }

    /// <summary>Answers every get at once with its key as the value.</summary>
    private sealed class ImmediateEcho : ReceiveActor
    {
        public ImmediateEcho() => Receive<Get>(g => Sender.Tell(Found(g, g.Key)));
    }

    /// <summary>Collects <c>count</c> gets, then answers them in reverse order, each with its key as the value.</summary>
    private sealed class ReversingEcho : ReceiveActor
    {
        private readonly List<(IActorRef To, Get Get)> _gets = new();

        public ReversingEcho(int count) => Receive<Get>(g =>
        {
            _gets.Add((Sender, g));
            if (_gets.Count == count)
            {
                for (var i = _gets.Count - 1; i >= 0; i--)
                {
                    _gets[i].To.Tell(Found(_gets[i].Get, _gets[i].Get.Key));
                }
            }
        });
    }
}
