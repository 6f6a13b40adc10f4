using Akka.Actor;
using CrabKv.Actors.Partition;

namespace CrabKv.Actors.Internal;

/// <summary>
/// Internal. Sends one store-wide request (Flush, Compact, CompactAndShutdown, GetStats,
/// Shutdown) to every partition and answers the caller once with the combined reply, or
/// the first error. A partition that dies meanwhile counts as an error.
/// </summary>
internal sealed class ScatterGather : ReceiveActor
{
    private readonly object _request;
    private readonly long _requestId;
    private readonly IActorRef _replyTo;
    private readonly IActorRef[] _partitions;
    private readonly List<object> _replies = new();
    private int _outstanding;

    public ScatterGather(object request, long requestId, IActorRef replyTo, IActorRef[] partitions)
    {
        _request = request;
        _requestId = requestId;
        _replyTo = replyTo;
        _partitions = partitions;
        _outstanding = partitions.Length;
        ReceiveAny(Collect);
    }

    public static Props Props(object request, long requestId, IActorRef replyTo, IActorRef[] partitions) =>
        Akka.Actor.Props.Create(() => new ScatterGather(request, requestId, replyTo, partitions));

    protected override void PreStart()
    {
        if (_partitions.Length == 0)
        {
            Finish();
            return;
        }
        foreach (var p in _partitions)
        {
            Context.Watch(p);
            p.Tell(_request is Shutdown ? StopPartition.Instance : _request);
        }
    }

    private readonly HashSet<IActorRef> _answered = new();

    private void Collect(object reply)
    {
        var from = reply is Terminated t ? t.ActorRef : Sender;
        if (!_answered.Add(from))
        {
            return; // one answer per partition
        }
        Context.Unwatch(from);
        _replies.Add(reply is Terminated
            ? new CrabKvError(CrabKvErrorCode.ShuttingDown, $"Partition actor {from.Path.Name} stopped before answering.", _requestId)
            : reply);
        if (--_outstanding == 0)
        {
            Finish();
        }
    }

    private void Finish()
    {
        var error = _replies.OfType<CrabKvError>().FirstOrDefault();
        _replyTo.Tell(error is not null ? error with { RequestId = _requestId } : _request switch
        {
            Flush => new FlushOk(_requestId),
            Shutdown => new ShutdownOk(_requestId),
            GetStats => new StoreStats(_replies.OfType<StoreStats>().SelectMany(s => s.Partitions).OrderBy(p => p.Partition).ToList(), _requestId),
            _ => Combine(_replies.OfType<CompactOk>()),
        });
        Context.Stop(Self);
    }

    private CompactOk Combine(IEnumerable<CompactOk> parts)
    {
        long before = 0, after = 0;
        var merged = 0;
        var duration = TimeSpan.Zero;
        foreach (var p in parts)
        {
            before += p.BytesBefore;
            after += p.BytesAfter;
            merged += p.SegmentsMerged;
            duration = duration > p.Duration ? duration : p.Duration;
        }
        return new CompactOk(before, after, merged, duration, _requestId);
    }
}
