using Akka.Actor;
using CrabKv.Actors.Partition;

namespace CrabKv.Actors.Internal;

/// <summary>
/// Internal. Sends one store-wide request (Flush, Compact, CompactAndShutdown, GetStats,
/// Shutdown) to every partition and answers the caller once with the combined reply, or
/// the first error (GetStats: the partitions that answered, the others as unavailable entries). Replies may come from a partition's children (the writer answers a
/// Flush, the cache a GetStats), so each partition gets its own <see cref="Relay"/> child,
/// which sends the request as itself, watches the partition and reports one
/// <see cref="Answer"/>: the reply, or, when the partition stops first, an error (a
/// <see cref="PartitionStopped"/> for a Shutdown: stopping is what it asked for).
/// <para>
/// Why relays and not Ask: a partition that answers and then stops (CompactAndShutdown,
/// StopPartition) sends its reply before it stops, so the reply is in the relay's mailbox
/// before the Terminated (Akka queues Terminated behind the messages already delivered). Through
/// an Ask the reply came back by a task continuation, which the Terminated could overtake:
/// "Partition actor p-001 stopped before answering" after a successful answer.
/// </para>
/// A request that stops the partitions (Shutdown, CompactAndShutdown, sent to local partition
/// actors) keeps each relay, and so this actor, alive until its partition has terminated:
/// a watcher that stopped first would get the partition's death notice as a dead letter,
/// logged on every stop.
/// The cluster sends through one shard region instead of partition actors: every target is the
/// region, <c>messageFor</c> wraps the request in an envelope naming the partition, and a
/// <c>timeout</c> bounds the wait (a partition on an unreachable node never answers); a
/// partition that times out counts as a <see cref="CrabKvErrorCode.StoreFailed"/> error.
/// </summary>
internal sealed class ScatterGather : ReceiveActor
{
    private sealed record Answer(int Partition, object Reply);

    private readonly object _request;
    private readonly long _requestId;
    private readonly IActorRef _replyTo;
    private readonly IActorRef[] _partitions;
    private readonly object?[] _replies;
    private readonly Func<int, object>? _messageFor;
    private readonly TimeSpan? _timeout;
    private int _outstanding;
    private int _relays;
    private bool _finished;

    public ScatterGather(object request, long requestId, IActorRef replyTo, IActorRef[] partitions, Func<int, object>? messageFor = null, TimeSpan? timeout = null)
    {
        _request = request;
        _messageFor = messageFor;
        _timeout = timeout;
        _requestId = requestId;
        _replyTo = replyTo;
        _partitions = partitions;
        _replies = new object?[partitions.Length];
        _outstanding = partitions.Length;
        Receive<Answer>(a => Collect(a.Partition, a.Reply));
        Receive<Terminated>(_ =>
        {
            _relays--;
            StopWhenDone();
        });
    }

    public static Props Props(object request, long requestId, IActorRef replyTo, IActorRef[] partitions, Func<int, object>? messageFor = null, TimeSpan? timeout = null) =>
        Akka.Actor.Props.Create(() => new ScatterGather(request, requestId, replyTo, partitions, messageFor, timeout));

    protected override void PreStart()
    {
        if (_partitions.Length == 0)
        {
            Finish();
            return;
        }
        var message = _request is Shutdown ? StopPartition.Instance : _request;
        // Only local partition actors stop on these; a shard region (messageFor) never does.
        var awaitStop = _messageFor is null && _request is Shutdown or CompactAndShutdown;
        for (var i = 0; i < _partitions.Length; i++)
        {
            var index = i;
            var target = _partitions[i];
            var request = _messageFor?.Invoke(i) ?? message;
            var stopped = _request is Shutdown
                ? (object)new PartitionStopped(index)
                : new CrabKvError(CrabKvErrorCode.ShuttingDown, $"Partition actor {target.Path.Name} stopped before answering.", _requestId);
            var timedOut = new CrabKvError(CrabKvErrorCode.StoreFailed, $"Partition {index} did not answer within {_timeout}; its node may be unreachable.", _requestId);
            Context.Watch(Context.ActorOf(Akka.Actor.Props.Create(() => new Relay(index, target, request, stopped, _timeout, timedOut, awaitStop))));
            _relays++;
        }
    }

    private void Collect(int partition, object reply)
    {
        if (_replies[partition] is not null)
        {
            return; // one answer per partition
        }
        _replies[partition] = reply;
        if (--_outstanding == 0)
        {
            Finish();
        }
    }

    private void Finish()
    {
        var replies = _replies.Where(r => r is not null).Select(r => r!).ToList();
        var error = replies.OfType<CrabKvError>().FirstOrDefault();
        if (_request is GetStats && error is not null && replies.OfType<StoreStats>().Any())
        {
            // Stats are most wanted when something is wrong: the partitions that answered are
            // reported, each one that did not as an unavailable entry saying why.
            replies = _replies.Select((r, i) => r is StoreStats
                ? r
                : new StoreStats([new PartitionStats
                {
                    Partition = i, Unavailable = true,
                    FailureReason = r is CrabKvError e ? $"unavailable: {e.Code}: {e.Message}" : $"unavailable: answered {r?.GetType().Name ?? "nothing"}",
                }], _requestId)).Select(r => r!).ToList();
            error = null;
        }
        // Sent without a sender: nobody to answer (a reply would only be a dead letter).
        if (!_replyTo.IsNobody() && !_replyTo.Equals(Context.System.DeadLetters))
        {
            _replyTo.Tell(error is not null ? error with { RequestId = _requestId } : _request switch
            {
                Flush => new FlushOk(_requestId),
                Shutdown => new ShutdownOk(_requestId),
                GetStats => StoreStats.Merge(replies.OfType<StoreStats>(), _requestId),
                _ => Combine(replies.OfType<CompactOk>()),
            });
        }
        _finished = true;
        StopWhenDone();
    }

    /// <summary>Stops once the caller is answered and every relay has stopped (each after its partition, for a stopping request).</summary>
    private void StopWhenDone()
    {
        if (_finished && _relays == 0)
        {
            Context.Stop(Self);
        }
    }

    private CompactOk Combine(IEnumerable<CompactOk> parts) => new(CompactionOutcome.Sum(parts.Select(p => p.Outcome)), _requestId);

    /// <summary>
    /// One partition's part of the request: sends it as itself, so whoever answers (the
    /// partition or one of its children) answers here, and reports one <see cref="Answer"/>
    /// to the gatherer: the first reply, <c>stopped</c> when the target terminates first, or
    /// <c>timedOut</c> when a timeout is given and nothing came within it. With
    /// <c>awaitStop</c> (the request stops the partition) it reports the reply at once but
    /// stops only when the partition has terminated.
    /// </summary>
    private sealed class Relay : ReceiveActor
    {
        private readonly IActorRef _target;
        private readonly object _request;
        private readonly TimeSpan? _timeout;
        private readonly bool _awaitStop;
        private bool _reported;

        public Relay(int partition, IActorRef target, object request, object stopped, TimeSpan? timeout, object timedOut, bool awaitStop)
        {
            _target = target;
            _request = request;
            _timeout = timeout;
            _awaitStop = awaitStop;
            Receive<Terminated>(t => t.ActorRef.Equals(_target), _ =>
            {
                Report(new Answer(partition, stopped));
                Context.Stop(Self);
            });
            Receive<ReceiveTimeout>(_ =>
            {
                Report(new Answer(partition, timedOut));
                Context.Stop(Self);
            });
            ReceiveAny(reply =>
            {
                Report(new Answer(partition, reply));
                if (!_awaitStop)
                {
                    Context.Stop(Self);
                }
            });
        }

        protected override void PreStart()
        {
            Context.Watch(_target);
            if (_timeout is { } t)
            {
                Context.SetReceiveTimeout(t);
            }
            _target.Tell(_request, Self);
        }

        /// <summary>The first of reply, stop and timeout is the answer.</summary>
        private void Report(Answer answer)
        {
            if (_reported)
            {
                return;
            }
            _reported = true;
            Context.SetReceiveTimeout(null);
            Context.Parent.Tell(answer);
        }
    }
}
