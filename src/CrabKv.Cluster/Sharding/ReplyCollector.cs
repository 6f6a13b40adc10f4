using Akka.Actor;
using CrabKv.Actors;

namespace CrabKv.Cluster.Sharding;

/// <summary>
/// Internal. Collects the replies one partition sends to the requests a remote endpoint
/// batched, and sends them back as one <see cref="ProtocolBatch"/> per round: every reply
/// already waiting in the mailbox joins the batch (a <c>FlushNow</c> self-message queued
/// behind them, as the WAL writer does for its group commit), so a busy partition answers
/// many requests per network message and an idle one answers at once. Stops with its origin.
/// </summary>
internal sealed class ReplyCollector : ReceiveActor
{
    /// <summary>At most this many replies per batch (a batch of GetResults of large values is large).</summary>
    private const int MaxBatch = 256;

    private sealed class FlushNow
    {
        public static readonly FlushNow Instance = new();
    }

    private readonly IActorRef _origin;
    private List<ICrabKvMessage> _replies = new();
    private bool _flushScheduled;

    public ReplyCollector(IActorRef origin)
    {
        _origin = origin;
        Receive<ICrabKvReply>(reply =>
        {
            _replies.Add(reply);
            if (_replies.Count >= MaxBatch)
            {
                Send();
            }
            else if (!_flushScheduled)
            {
                _flushScheduled = true;
                Self.Tell(FlushNow.Instance);
            }
        });
        Receive<FlushNow>(_ =>
        {
            _flushScheduled = false;
            Send();
        });
        Receive<Terminated>(t => t.ActorRef.Equals(_origin), _ => Context.Stop(Self));
    }

    public static Props Props(IActorRef origin) => Akka.Actor.Props.Create(() => new ReplyCollector(origin));

    protected override void PreStart() => Context.Watch(_origin);

    private void Send()
    {
        if (_replies.Count == 0)
        {
            return;
        }
        _origin.Tell(new ProtocolBatch(_replies));
        _replies = new List<ICrabKvMessage>();
    }
}
