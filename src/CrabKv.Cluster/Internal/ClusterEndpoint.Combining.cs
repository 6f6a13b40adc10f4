using Akka.Actor;
using Akka.Event;
using CrabKv.Actors;

namespace CrabKv.Cluster.Internal;

// Request combining: one remote message carries many operations (ANCHORS.md: one request
// per remote message cannot pass the echo ceiling). Keyed requests are queued per partition
// and sent as one ProtocolBatch in a PartitionEnvelope per round — every request already in
// the endpoint's mailbox joins the round (a FlushOutboxes self-message behind them), so a busy
// endpoint batches and an idle one adds no delay. Each batched request gets a unique RequestId
// (its correlation id); the partition's ReplyCollector sends the replies back batched, and
// the endpoint restores each caller's RequestId and answers the caller. Per caller and key the
// order is kept: one partition, one outbox, FIFO mailboxes.
internal sealed partial class ClusterEndpoint
{
    /// <summary>At most this many requests per batch (bounds a message holding large values).</summary>
    private const int MaxBatch = 256;

    private sealed class FlushOutboxes : INoSerializationVerificationNeeded
    {
        public static readonly FlushOutboxes Instance = new();
    }

    private sealed class SweepPending : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly SweepPending Instance = new();
    }

    private readonly record struct Waiter(IActorRef Caller, long RequestId, long SentAtTicks);

    private readonly Dictionary<long, Waiter> _pending = new();
    private List<ICrabKvMessage>?[]? _outboxes;
    private readonly List<int> _dirty = new();
    private bool _flushScheduled;
    private long _lastCorrelation;

    private void Combine(ICrabKvRequest request)
    {
        if (_settings.Partitions <= 0)
        {
            _region.Forward(request);
            return;
        }
        _outboxes ??= new List<ICrabKvMessage>?[_settings.Partitions];
        // The extractor's choice of partition (the bare request would go to the same entity).
        var partition = _extractor.PartitionOf(_extractor.EntityId(request));
        if (partition < 0 || RequestIds.With(request, 0) is null)
        {
            _region.Forward(request);
            return;
        }
        var correlation = ++_lastCorrelation;
        _pending[correlation] = new Waiter(Sender, request.RequestId, Environment.TickCount64);
        var outbox = _outboxes[partition] ??= new List<ICrabKvMessage>();
        if (outbox.Count == 0)
        {
            _dirty.Add(partition);
        }
        outbox.Add(RequestIds.With(request, correlation)!);
        if (outbox.Count >= MaxBatch)
        {
            Send(partition);
        }
        if (!_flushScheduled)
        {
            _flushScheduled = true;
            Self.Tell(FlushOutboxes.Instance);
        }
    }

    private void OnFlushOutboxes()
    {
        _flushScheduled = false;
        foreach (var partition in _dirty)
        {
            Send(partition);
        }
        _dirty.Clear();
    }

    private void Send(int partition)
    {
        var outbox = _outboxes![partition];
        if (outbox is null || outbox.Count == 0)
        {
            return;
        }
        _outboxes[partition] = new List<ICrabKvMessage>();
        _region.Tell(new PartitionEnvelope(partition, new ProtocolBatch(outbox)), Self);
    }

    /// <summary>Replies of a partition to batched requests: each goes to its caller with the caller's RequestId.</summary>
    private void DispatchReplies(ProtocolBatch batch)
    {
        foreach (var message in batch.Messages)
        {
            if (message is not ICrabKvReply reply || !_pending.Remove(reply.RequestId, out var waiter))
            {
                continue; // its caller's wait was swept (it timed out long ago)
            }
            waiter.Caller.Tell(RequestIds.With(reply, waiter.RequestId) ?? reply);
        }
    }

    /// <summary>
    /// Forgets callers whose replies never came (a batch lost with a node): they timed out on
    /// their side long ago (the fan-out timeout is longer than any client timeout); bounded memory.
    /// </summary>
    private void Sweep()
    {
        var cutoff = Environment.TickCount64 - (long)_settings.FanOutTimeout.TotalMilliseconds;
        foreach (var (correlation, waiter) in _pending.Where(kv => kv.Value.SentAtTicks < cutoff).ToList())
        {
            _pending.Remove(correlation);
            waiter.Caller.Tell(new CrabKvError(CrabKvErrorCode.StoreFailed,
                $"No reply from the partition within {_settings.FanOutTimeout} (a node left or failed meanwhile); retry.", waiter.RequestId));
        }
    }
}
