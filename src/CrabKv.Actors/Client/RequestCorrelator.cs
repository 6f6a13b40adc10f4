using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Akka.Actor;
using Akka.Event;

namespace CrabKv.Actors.Client;

/// <summary>
/// Internal. The reply address of every <see cref="CrabKvClient"/> of one actor system: a
/// long-lived actor reference (registered once as a temporary actor, so replies from remote
/// nodes find it too) that matches each reply to its waiting request by the
/// <see cref="ICrabKvReply.RequestId"/> the protocol echoes. It replaces Akka's Ask, which
/// creates and registers a temporary actor, a TaskCompletionSource and a timer per request.
/// <para>
/// A request is sent with <see cref="Send"/>: it is entered in the table under its id, then
/// told to the endpoint with this reference as the sender. Its reply, delivered straight into
/// <see cref="TellInternal"/> on the replying actor's thread, removes it from the table and
/// completes it. Timeouts are coarse: one timer sweeps the table every
/// <see cref="SweepInterval"/> while requests are pending (and stops when the table stayed
/// empty for a while), failing those past their deadline, so a request fails at most one
/// interval after its timeout. A reply that finds no request (it came after its timeout) or
/// that carries no id is dropped.
/// </para>
/// <para>
/// Completed requests are handed to the caller by a drain on the .NET thread pool (this object
/// is the work item, so nothing is allocated), not one work item per reply: replies come in
/// bursts (a partition acknowledges every put of an fsync or a flush at once, and answers its
/// mailbox's gets in a row), and one drain runs their continuations one after the other. So
/// that a continuation that blocks cannot hold up the others, a drain that still sees completed
/// requests queued makes sure another drain is scheduled before it runs the next continuation.
/// </para>
/// </summary>
internal sealed class RequestCorrelator : MinimalActorRef, IThreadPoolWorkItem
{
    /// <summary>How often the pending requests are checked for their deadlines.</summary>
    public static readonly TimeSpan SweepInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>Sweeps that found nothing pending before the timer stops.</summary>
    private const int IdleSweepsBeforeStop = 50;

    /// <summary>Most pooled <see cref="PendingRequest"/>s kept.</summary>
    private const int MaxPooled = 4096;

    private static readonly ConditionalWeakTable<IActorRefProvider, RequestCorrelator> Correlators = new();

    private readonly IActorRefProvider _provider;
    private readonly ActorPath _path;
    private readonly ConcurrentDictionary<long, PendingRequest> _pending = new();
    private readonly ConcurrentQueue<PendingRequest> _pool = new();
    private readonly ConcurrentQueue<PendingRequest> _completed = new();
    private readonly Timer _timer;
    private int _pooled;
    private long _lastId;
    private int _sweeping;   // 1 while the timer runs
    private int _inSweep;    // 1 while a sweep runs (timer callbacks may overlap)
    private int _idleSweeps;
    private int _drainScheduled; // 1 while a drain is queued and has not started

    private RequestCorrelator(IActorRefProvider provider)
    {
        _provider = provider;
        _path = provider.TempPath();
        _timer = new Timer(static state => ((RequestCorrelator)state!).Sweep(), this, Timeout.Infinite, Timeout.Infinite);
        provider.RegisterTempActor(this, _path);
    }

    /// <summary>
    /// The correlator of the actor system <paramref name="endpoint"/> is known to (local or remote
    /// reference), or null for a reference without one (the client then falls back to Ask).
    /// </summary>
    public static RequestCorrelator? For(IActorRef endpoint) =>
        endpoint is IInternalActorRef { Provider: { } provider } ? Correlators.GetValue(provider, static p => new RequestCorrelator(p)) : null;

    /// <inheritdoc />
    public override ActorPath Path => _path;

    /// <inheritdoc />
    public override IActorRefProvider Provider => _provider;

    /// <summary>Requests waiting for their reply.</summary>
    public int Pending => _pending.Count;

    /// <summary>True while the timeout timer runs.</summary>
    public bool Sweeping => Volatile.Read(ref _sweeping) == 1;

    /// <summary>A new correlation id (never 0, never repeated by this correlator).</summary>
    public long NextId() => Interlocked.Increment(ref _lastId);

    /// <summary>
    /// Tells <paramref name="request"/> (its <c>RequestId</c> from <see cref="NextId"/>) to
    /// <paramref name="target"/> and returns its reply: any message with that id (a success or a
    /// <see cref="CrabKvError"/>). Fails with a <see cref="TimeoutException"/> when none arrives
    /// within <paramref name="timeout"/> (give or take <see cref="SweepInterval"/>), with an
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> is cancelled first.
    /// </summary>
    public ValueTask<object> Send(IActorRef target, ICrabKvRequest request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<object>(cancellationToken);
        }
        var pending = Rent();
        var deadline = Environment.TickCount64 + (long)Math.Ceiling(Math.Min(timeout.TotalMilliseconds, int.MaxValue));
        pending.Start(request.RequestId, request.GetType(), timeout, deadline);
        var task = pending.Task;
        if (cancellationToken.CanBeCanceled)
        {
            // Before the request is in the table: a callback that runs at once finds nothing to
            // remove, and the check below fails the request instead.
            pending.CancelOn(cancellationToken);
        }
        if (!_pending.TryAdd(request.RequestId, pending))
        {
            throw new InvalidOperationException($"The request id {request.RequestId} of {request.GetType().Name} is already waiting for a reply.");
        }
        if (cancellationToken.IsCancellationRequested)
        {
            Fail(pending, request.RequestId, new TaskCanceledException("The request was cancelled before it was sent.", null, cancellationToken));
            return task;
        }
        EnsureSweeping();
        target.Tell(request, this);
        return task;
    }

    /// <summary>Fails <paramref name="pending"/> with <paramref name="error"/> unless it was completed already.</summary>
    internal void Fail(PendingRequest pending, long id, Exception error)
    {
        if (id != 0 && _pending.TryRemove(new KeyValuePair<long, PendingRequest>(id, pending)))
        {
            Completed(pending, null, error);
        }
    }

    /// <inheritdoc />
    protected override void TellInternal(object message, IActorRef sender)
    {
        switch (message)
        {
            case ICrabKvReply reply:
                if (_pending.TryRemove(reply.RequestId, out var pending))
                {
                    Completed(pending, reply, null);
                }
                break;
            case ProtocolBatch batch:
                foreach (var m in batch.Messages)
                {
                    TellInternal(m, sender);
                }
                break;
            default:
                // Nothing to match it with: where a misdirected message goes.
                _provider.DeadLetters.Tell(new DeadLetter(message, sender ?? ActorRefs.NoSender, this), sender);
                break;
        }
    }

    /// <summary>Fails every pending request past its deadline; stops the timer after a while with nothing pending.</summary>
    internal void Sweep()
    {
        if (Interlocked.Exchange(ref _inSweep, 1) == 1)
        {
            return;
        }
        try
        {
            var now = Environment.TickCount64;
            var any = false;
            foreach (var (id, pending) in _pending)
            {
                any = true;
                if (pending.Deadline <= now && pending.RequestType is { } type
                    && _pending.TryRemove(new KeyValuePair<long, PendingRequest>(id, pending)))
                {
                    Completed(pending, null, new TimeoutException($"CrabKv did not answer {type.Name} within {pending.Timeout}."));
                }
            }
            if (any)
            {
                _idleSweeps = 0;
                return;
            }
            if (++_idleSweeps < IdleSweepsBeforeStop)
            {
                return;
            }
            // Stop, then look again: a request entered before the flag was cleared is seen here,
            // one entered after it restarts the timer itself (EnsureSweeping).
            _idleSweeps = 0;
            _timer.Change(Timeout.Infinite, Timeout.Infinite);
            Volatile.Write(ref _sweeping, 0);
            if (!_pending.IsEmpty)
            {
                EnsureSweeping();
            }
        }
        finally
        {
            Volatile.Write(ref _inSweep, 0);
        }
    }

    /// <summary>Queues a request removed from the table for the drain.</summary>
    private void Completed(PendingRequest pending, object? reply, Exception? error)
    {
        pending.Complete(reply, error);
        _completed.Enqueue(pending);
        ScheduleDrain();
    }

    private void ScheduleDrain()
    {
        if (Volatile.Read(ref _drainScheduled) == 0 && Interlocked.Exchange(ref _drainScheduled, 1) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    /// <summary>The drain: delivers completed requests, running their continuations here.</summary>
    void IThreadPoolWorkItem.Execute()
    {
        Volatile.Write(ref _drainScheduled, 0);
        for (var delivered = 0; delivered < 1024 && _completed.TryDequeue(out var pending); delivered++)
        {
            if (!_completed.IsEmpty)
            {
                ScheduleDrain(); // the rest need not wait for this continuation (it may block)
            }
            pending.Deliver();
        }
        if (!_completed.IsEmpty)
        {
            ScheduleDrain();
        }
    }

    private void EnsureSweeping()
    {
        if (Volatile.Read(ref _sweeping) == 0 && Interlocked.CompareExchange(ref _sweeping, 1, 0) == 0)
        {
            _timer.Change(SweepInterval, SweepInterval);
        }
    }

    private PendingRequest Rent()
    {
        if (_pool.TryDequeue(out var pending))
        {
            Interlocked.Decrement(ref _pooled);
            return pending;
        }
        return new PendingRequest(this);
    }

    /// <summary>Takes back a request whose result was read.</summary>
    internal void Return(PendingRequest pending)
    {
        if (Interlocked.Increment(ref _pooled) <= MaxPooled)
        {
            _pool.Enqueue(pending);
        }
        else
        {
            Interlocked.Decrement(ref _pooled);
        }
    }
}
