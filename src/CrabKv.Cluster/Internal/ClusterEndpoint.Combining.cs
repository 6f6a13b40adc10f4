using Akka.Actor;
using Akka.Event;
using CrabKv.Actors;

namespace CrabKv.Cluster.Internal;

// Request combining: one remote message carries many operations (ANCHORS.md: one request
// per remote message cannot pass the echo ceiling). Keyed requests are queued per partition
// and sent as one ProtocolBatch in a PartitionEnvelope. A partition has at most
// MaxInFlightBatches batches in flight (sent, not yet answered): an idle partition gets a
// request at once (no added delay), a busy one accumulates what arrives meanwhile and gets it
// as one batch when a batch in flight is answered — batches grow with the load, as a group
// commit does. (Sending every round at once, as before, made batches of 1.0–1.4 requests on
// average under 64 callers: the endpoint drains its mailbox faster than requests arrive.)
// A batch in flight longer than StallLimit stops counting against the window (its replies may
// have been lost with a shard handoff): requests are never held behind a lost reply for long.
// Each batched request gets a unique RequestId (its correlation id); the partition's
// ReplyCollector sends the replies back batched, and the endpoint restores each caller's
// RequestId and answers the caller. Per caller and key the order is kept: one partition, one
// outbox, FIFO mailboxes, batches sent in order.
internal sealed partial class ClusterEndpoint
{
    /// <summary>At most this many requests per batch (bounds a message holding large values).</summary>
    private const int MaxBatch = 256;

    /// <summary>Batches a partition may have in flight before its requests wait to be combined.</summary>
    private const int MaxInFlightBatches = 2;

    /// <summary>After this long unanswered, a batch no longer holds its partition's next one back.</summary>
    private static readonly TimeSpan StallLimit = TimeSpan.FromSeconds(1);

    private sealed class FlushOutboxes : INoSerializationVerificationNeeded
    {
        public static readonly FlushOutboxes Instance = new();
    }

    private sealed class SweepPending : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly SweepPending Instance = new();
    }

    private sealed class CheckHeld : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly CheckHeld Instance = new();
    }

    private readonly record struct Waiter(IActorRef Caller, long RequestId, long SentAtTicks, int Partition);

    /// <summary>A partition's batches in flight (size, when sent) and its replies counted against the oldest.</summary>
    private sealed class Window
    {
        public readonly Queue<(int Size, long SentAtTicks)> Batches = new();
        public int Answered;

        public void OnReply()
        {
            Answered++;
            while (Batches.Count > 0 && Answered >= Batches.Peek().Size)
            {
                Answered -= Batches.Dequeue().Size;
            }
        }

        /// <summary>Whether another batch may go: fewer than the limit in flight, stalled ones forgotten.</summary>
        public bool HasRoom(long nowTicks)
        {
            var stall = (long)StallLimit.TotalMilliseconds;
            while (Batches.Count > 0 && nowTicks - Batches.Peek().SentAtTicks >= stall)
            {
                Batches.Dequeue();
                Answered = 0;
            }
            return Batches.Count < MaxInFlightBatches;
        }
    }

    private readonly Dictionary<long, Waiter> _pending = new();
    private List<ICrabKvMessage>?[]? _outboxes;
    private Window[]? _windows;
    private readonly List<int> _dirty = new();
    private bool _flushScheduled;
    private bool _checkScheduled;
    private long _lastCorrelation;

    private void Combine(ICrabKvRequest request)
    {
        if (_settings.Partitions <= 0)
        {
            _region.Forward(request);
            return;
        }
        _outboxes ??= new List<ICrabKvMessage>?[_settings.Partitions];
        _windows ??= Enumerable.Range(0, _settings.Partitions).Select(_ => new Window()).ToArray();
        // The extractor's choice of partition (the bare request would go to the same entity).
        var partition = _extractor.PartitionOf(_extractor.EntityId(request));
        if (partition < 0 || RequestIds.With(request, 0) is null)
        {
            _region.Forward(request);
            return;
        }
        var correlation = ++_lastCorrelation;
        _pending[correlation] = new Waiter(Sender, request.RequestId, Environment.TickCount64, partition);
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

    /// <summary>Every request already in the mailbox has joined its outbox: send those whose partition has room.</summary>
    private void OnFlushOutboxes()
    {
        _flushScheduled = false;
        var now = Environment.TickCount64;
        var held = false;
        for (var i = _dirty.Count - 1; i >= 0; i--)
        {
            var partition = _dirty[i];
            if (_outboxes![partition] is not { Count: > 0 })
            {
                _dirty.RemoveAt(i);
            }
            else if (_windows![partition].HasRoom(now))
            {
                Send(partition);
                _dirty.RemoveAt(i);
            }
            else
            {
                held = true;
            }
        }
        if (held && !_checkScheduled)
        {
            // Held outboxes go when their partition answers; this check bounds the wait if it never does.
            _checkScheduled = true;
            Timers.StartSingleTimer(CheckHeld.Instance, CheckHeld.Instance, StallLimit / 4);
        }
    }

    private void OnCheckHeld()
    {
        _checkScheduled = false;
        OnFlushOutboxes();
    }

    private void Send(int partition)
    {
        var outbox = _outboxes![partition];
        if (outbox is null || outbox.Count == 0)
        {
            return;
        }
        _outboxes[partition] = new List<ICrabKvMessage>();
        if (NoHomeLeft())
        {
            // Combined before the shutdown began, not sent yet: refused now, never half-done.
            foreach (var queued in outbox)
            {
                if (queued is ICrabKvRequest request && _pending.Remove(request.RequestId, out var waiter))
                {
                    waiter.Caller.Tell(Stopping(waiter.RequestId));
                }
            }
            return;
        }
        _windows![partition].Batches.Enqueue((outbox.Count, Environment.TickCount64));
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
            _windows![waiter.Partition].OnReply();
            waiter.Caller.Tell(RequestIds.With(reply, waiter.RequestId) ?? reply);
        }
        if (_dirty.Count > 0 && !_flushScheduled)
        {
            // A partition may have room now: its held requests go behind what is already queued.
            _flushScheduled = true;
            Self.Tell(FlushOutboxes.Instance);
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
