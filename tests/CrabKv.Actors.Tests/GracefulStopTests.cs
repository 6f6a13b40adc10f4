using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Internal;
using CrabKv.Actors.Tests.Support;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// What a user sees on every stop: no <see cref="ShutdownOk"/> dead letter when the stop comes
/// from CoordinatedShutdown (GracefulStop sends Shutdown without a sender), and no
/// "stopped before answering" when a partition answers and then stops.
/// </summary>
public sealed class GracefulStopTests : StoreTestBase
{
    private sealed record Marker;

    /// <summary>
    /// Every dead letter published before a marker published now. Dead letters are published
    /// synchronously by whoever sends to a dead reference, so everything sent before the store
    /// terminated (observed by the caller) is ahead of the marker in the probe's queue.
    /// </summary>
    private List<object> DeadLettersSoFar(Akka.TestKit.TestProbe probe)
    {
        Sys.EventStream.Publish(new DeadLetter(new Marker(), Sys.DeadLetters, Sys.DeadLetters));
        var seen = new List<object>();
        for (var i = 0; i < 10_000; i++)
        {
            var d = probe.ExpectMsg<AllDeadLetters>(Timeout);
            if (d.Message is Marker)
            {
                return seen;
            }
            seen.Add(d.Message);
        }
        throw new InvalidOperationException("The marker dead letter never arrived.");
    }

    private IActorRef StartWithData(int partitions)
    {
        var store = StartStore($"crabkv.partitions = {partitions}\ncrabkv.segment.preallocate = 0");
        for (var i = 0; i < 20; i++)
        {
            Request<PutOk>(store, new Put($"k{i}", Bytes("v")));
        }
        return store;
    }

    [Fact]
    public async Task Stop_through_GracefulStop_as_CoordinatedShutdown_does_sends_no_dead_letter()
    {
        var store = StartWithData(partitions: 4);
        var deadLetters = SubscribeProbe<AllDeadLetters>();

        // Exactly what CrabKvStore.Start registers with CoordinatedShutdown's service-stop phase.
        Assert.True(await store.GracefulStop(Timeout, new Shutdown()));

        AssertNoStopDeadLetters(DeadLettersSoFar(deadLetters));
    }

    /// <summary>
    /// None of the dead letters the stop itself used to produce: the ShutdownOk to a caller without
    /// a sender, a PartitionStopped, or a partition's death notice to a watcher that had stopped
    /// first. (A timer tick already queued in a stopping actor's mailbox may still become a dead
    /// letter; that is Akka's and harmless, so it is not counted here.)
    /// </summary>
    private static void AssertNoStopDeadLetters(List<object> seen)
    {
        Assert.DoesNotContain(seen, m => m is ShutdownOk or PartitionStopped or Terminated);
        Assert.DoesNotContain(seen, m => m.GetType().Name == "DeathWatchNotification");
        Assert.DoesNotContain(seen, m => m is ICrabKvReply);
    }

    [Fact]
    public void Shutdown_told_without_a_sender_stops_the_store_without_a_dead_letter()
    {
        var store = StartWithData(partitions: 2);
        var deadLetters = SubscribeProbe<AllDeadLetters>();
        Watch(store);

        store.Tell(new Shutdown(7), ActorRefs.NoSender);
        ExpectTerminated(store, Timeout);

        AssertNoStopDeadLetters(DeadLettersSoFar(deadLetters));
    }

    [Fact]
    public void Shutdown_with_a_sender_is_still_answered()
    {
        var store = StartWithData(partitions: 2);
        GracefulStop(store); // ShutdownOk with the request id, then Terminated
    }

    /// <summary>Answers any request with <paramref name="reply"/>, then stops at once (like a partition's CompactAndShutdown).</summary>
    private sealed class AnswerThenStop : ReceiveActor
    {
        public AnswerThenStop(object reply) => ReceiveAny(_ =>
        {
            Sender.Tell(reply);
            Context.Stop(Self);
        });
    }

    [Fact]
    public void A_partition_that_answers_and_then_stops_counts_as_answered()
    {
        // The reply goes through the ask's continuation, the Terminated straight to the mailbox:
        // before the fix the Terminated won now and then ("Partition actor p-001 stopped before
        // answering"). Many partitions and rounds make that race likely; after the fix every
        // round must succeed.
        const int partitions = 16;
        for (var round = 0; round < 30; round++)
        {
            var actors = Enumerable.Range(0, partitions)
                .Select(i => Sys.ActorOf(Props.Create(() => new AnswerThenStop(new CompactOk(CompactionOutcome.None, 0)))))
                .ToArray();
            Sys.ActorOf(ScatterGather.Props(new CompactAndShutdown(round), round, TestActor, actors));
            var reply = ExpectMsg<object>(Timeout);
            if (reply is CrabKvError e)
            {
                Assert.Fail($"round {round}: {e.Code}: {e.Message}");
            }
            var ok = Assert.IsType<CompactOk>(reply);
            Assert.Equal(round, ok.RequestId);
        }
    }

    [Fact]
    public void A_partition_that_stops_on_a_Shutdown_counts_as_stopped()
    {
        const int partitions = 16;
        for (var round = 0; round < 30; round++)
        {
            var actors = Enumerable.Range(0, partitions)
                .Select(i => Sys.ActorOf(Props.Create(() => new AnswerThenStop(new PartitionStopped(i)))))
                .ToArray();
            Sys.ActorOf(ScatterGather.Props(new Shutdown(round), round, TestActor, actors));
            Assert.Equal(round, ExpectMsg<ShutdownOk>(Timeout).RequestId);
        }
    }

    [Fact]
    public void A_partition_that_stops_without_answering_is_still_an_error()
    {
        var silent = Sys.ActorOf(Props.Create(() => new StopsSilently()));
        Sys.ActorOf(ScatterGather.Props(new Flush(3), 3, TestActor, [silent]));
        var error = ExpectMsg<CrabKvError>(Timeout);
        Assert.Equal(CrabKvErrorCode.ShuttingDown, error.Code);
        Assert.Contains("stopped before answering", error.Message);
    }

    private sealed class StopsSilently : ReceiveActor
    {
        public StopsSilently() => ReceiveAny(_ => Context.Stop(Self));
    }

    [Fact]
    public void CompactAndShutdown_of_a_real_store_is_answered_with_CompactOk()
    {
        var store = StartWithData(partitions: 8);
        Watch(store);
        var reply = Request(store, new CompactAndShutdown(11));
        Assert.Equal(11, Assert.IsType<CompactOk>(reply).RequestId);
        ExpectTerminated(store, Timeout);
    }
}
