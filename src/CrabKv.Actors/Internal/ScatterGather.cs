using Akka.Actor;
using CrabKv.Actors.Partition;

namespace CrabKv.Actors.Internal;

/// <summary>
/// Internal. Sends one store-wide request (Flush, Compact, CompactAndShutdown, GetStats,
/// Shutdown) to every partition and answers the caller once with the combined reply, or
/// the first error. Replies may come from a partition's children (the writer answers a
/// Flush, the cache a GetStats), so each one is matched to its partition by index; a
/// partition that dies before answering counts as an error.
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
        Receive<Terminated>(t =>
        {
            // Every partition sent through the actor that stopped (one shard region may carry them all).
            for (var i = 0; i < _partitions.Length; i++)
            {
                if (_partitions[i].Equals(t.ActorRef))
                {
                    // A partition that stops is what a Shutdown asked for: its PartitionStopped and its
                    // Terminated race (the reply travels through the ask), so either one answers.
                    Collect(i, _request is Shutdown
                        ? new PartitionStopped(i)
                        : new CrabKvError(CrabKvErrorCode.ShuttingDown, $"Partition actor {t.ActorRef.Path.Name} stopped before answering.", _requestId));
                }
            }
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
        for (var i = 0; i < _partitions.Length; i++)
        {
            var index = i;
            Context.Watch(_partitions[i]);
            // Locally no ask timeout: every partition answers (or dies, which Terminated reports).
            _partitions[i].Ask<object>(_messageFor?.Invoke(i) ?? message, timeout: _timeout).PipeTo(Self,
                success: reply => new Answer(index, reply),
                failure: e => new Answer(index, e is AskTimeoutException
                    ? new CrabKvError(CrabKvErrorCode.StoreFailed, $"Partition {index} did not answer within {_timeout}; its node may be unreachable.", _requestId)
                    : new CrabKvError(CrabKvErrorCode.ShuttingDown, e.Message, _requestId)));
        }
    }

    private void Collect(int partition, object reply)
    {
        if (_replies[partition] is not null)
        {
            return; // one answer per partition (a reply and its partition's Terminated)
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
        _replyTo.Tell(error is not null ? error with { RequestId = _requestId } : _request switch
        {
            Flush => new FlushOk(_requestId),
            Shutdown => new ShutdownOk(_requestId),
            GetStats => StoreStats.Merge(replies.OfType<StoreStats>(), _requestId),
            _ => Combine(replies.OfType<CompactOk>()),
        });
        Context.Stop(Self);
    }

    private CompactOk Combine(IEnumerable<CompactOk> parts) => new(CompactionOutcome.Sum(parts.Select(p => p.Outcome)), _requestId);
}
