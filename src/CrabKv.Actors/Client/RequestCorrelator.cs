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
/// Waiting requests live in a slot table: a request takes a free <see cref="PendingRequest"/>
/// (<see cref="Reserve"/>), is built with the id the slot gives it (slot index and a new
/// generation), and is told to the endpoint with this reference as the sender
/// (<see cref="Send"/>). Its reply, delivered straight into <see cref="TellInternal"/> on the
/// replying actor's thread, indexes the slot by its id and claims it with one compare-and-swap
/// of the id, so nothing is allocated, locked or hashed per request, and a late reply (its
/// generation is an older one) completes nothing. The slot goes back to the free list and the
/// waiter is told on that thread; the waiter must not run the caller's code there (the
/// client's task runs its continuations asynchronously, on the thread pool).
/// </para>
/// <para>
/// Timeouts are coarse: one timer sweeps the table every <see cref="SweepInterval"/> while
/// requests are pending (and stops when the table stayed empty for a while), failing those
/// past their deadline, so a request fails at most one interval after its timeout. A reply
/// that finds no request (it came after its timeout) or that carries no id is dropped.
/// When the actor system terminates, no reply can arrive: every waiting request fails then
/// with <see cref="CrabKvErrorCode.ShuttingDown"/>, and every later one at once.
/// </para>
/// </summary>
internal sealed class RequestCorrelator : MinimalActorRef
{
    /// <summary>How often the pending requests are checked for their deadlines.</summary>
    public static readonly TimeSpan SweepInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>Sweeps that found nothing pending before the timer stops.</summary>
    private const int IdleSweepsBeforeStop = 50;

    private static readonly ConditionalWeakTable<IActorRefProvider, RequestCorrelator> Correlators = new();

    private readonly IActorRefProvider _provider;
    private readonly ActorPath _path;
    private readonly ConcurrentQueue<PendingRequest> _free = new();
    private readonly object _growLock = new();
    private readonly Timer _timer;
    private PendingRequest[] _slots = new PendingRequest[64];
    private int _slotCount;
    private int _sweeping;   // 1 while the timer runs
    private int _inSweep;    // 1 while a sweep runs (timer callbacks may overlap)
    private int _idleSweeps;
    private volatile bool _terminated; // the actor system stopped: no reply can arrive any more

    private RequestCorrelator(IActorRefProvider provider)
    {
        _provider = provider;
        _path = provider.TempPath();
        _timer = new Timer(static state => ((RequestCorrelator)state!).Sweep(), this, Timeout.Infinite, Timeout.Infinite);
        provider.RegisterTempActor(this, _path);
        provider.TerminationTask?.ContinueWith(static (_, state) => ((RequestCorrelator)state!).OnSystemTerminated(), this,
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>True once the actor system has terminated: every request fails at once with <see cref="CrabKvErrorCode.ShuttingDown"/>.</summary>
    public bool Terminated => _terminated;

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

    /// <summary>Requests waiting for their reply (counts the table: for tests and diagnostics).</summary>
    public int Pending
    {
        get
        {
            var slots = Volatile.Read(ref _slots);
            var count = Math.Min(Volatile.Read(ref _slotCount), slots.Length);
            var pending = 0;
            for (var i = 0; i < count; i++)
            {
                if (slots[i] is { Id: not 0 })
                {
                    pending++;
                }
            }
            return pending;
        }
    }

    /// <summary>Slots in the table (the most requests that waited at once).</summary>
    public int Slots => Volatile.Read(ref _slotCount);

    /// <summary>True while the timeout timer runs.</summary>
    public bool Sweeping => Volatile.Read(ref _sweeping) == 1;

    /// <summary>
    /// A free slot with a new id (<see cref="PendingRequest.ReservedId"/>, never 0, never repeated
    /// by this correlator): build the request with it, then <see cref="Send"/> it, or give the
    /// slot back with <see cref="Release"/>.
    /// </summary>
    public PendingRequest Reserve()
    {
        if (!_free.TryDequeue(out var slot))
        {
            slot = NewSlot();
        }
        slot.Reserve();
        return slot;
    }

    /// <summary>Gives back a reserved slot whose request was not sent.</summary>
    public void Release(PendingRequest slot)
    {
        slot.Clear();
        _free.Enqueue(slot);
    }

    /// <summary>
    /// Tells <paramref name="request"/> (built with <paramref name="slot"/>'s id) to
    /// <paramref name="target"/>; <paramref name="waiter"/> is told its reply: any message with
    /// that id (a success or a <see cref="CrabKvError"/>). It fails with a
    /// <see cref="TimeoutException"/> when none arrives within <paramref name="timeout"/> (give or
    /// take <see cref="SweepInterval"/>), with an <see cref="OperationCanceledException"/> when
    /// <paramref name="cancellationToken"/> is cancelled first (possibly on this thread, before this returns).
    /// </summary>
    public void Send(PendingRequest slot, IActorRef target, ICrabKvRequest request, TimeSpan timeout, CancellationToken cancellationToken, IReplyWaiter waiter)
    {
        if (request.RequestId != slot.ReservedId)
        {
            Release(slot);
            throw new InvalidOperationException($"The request id {request.RequestId} of {request.GetType().Name} is not the one its slot reserved ({slot.ReservedId}).");
        }
        var deadline = Environment.TickCount64 + (long)Math.Ceiling(Math.Min(timeout.TotalMilliseconds, int.MaxValue));
        slot.Start(request.GetType(), timeout, deadline, waiter);
        if (cancellationToken.CanBeCanceled)
        {
            // Before the request is visible: a callback that runs at once finds nothing to
            // claim, and the check below fails the request instead.
            slot.CancelOn(cancellationToken);
        }
        var id = slot.ReservedId;
        slot.Publish();
        if (cancellationToken.IsCancellationRequested)
        {
            if (slot.TryClaim(id))
            {
                Finish(slot, null, new TaskCanceledException("The request was cancelled before it was sent.", null, cancellationToken));
            }
            return;
        }
        if (_terminated)
        {
            // Read after the publication (a full fence): either this sees the flag, or the
            // termination's pass over the table sees the request.
            if (slot.TryClaim(id))
            {
                Finish(slot, null, SystemTerminated(slot.RequestType));
            }
            return;
        }
        EnsureSweeping();
        target.Tell(request, this);
    }

    /// <summary>The actor system stopped: fails every waiting request now instead of at its timeout, and every later one at once.</summary>
    private void OnSystemTerminated()
    {
        _terminated = true;
        Interlocked.MemoryBarrier();
        _timer.Change(Timeout.Infinite, Timeout.Infinite);
        var slots = Volatile.Read(ref _slots);
        var count = Math.Min(Volatile.Read(ref _slotCount), slots.Length);
        for (var i = 0; i < count; i++)
        {
            var slot = slots[i];
            var id = slot?.Id ?? 0;
            if (id != 0 && slot!.TryClaim(id))
            {
                Finish(slot, null, SystemTerminated(slot.RequestType));
            }
        }
    }

    private static CrabKvRequestException SystemTerminated(Type? requestType) =>
        new(CrabKvErrorCode.ShuttingDown, $"The client's actor system has terminated: {requestType?.Name ?? "the request"} can get no reply.");

    /// <summary>Frees a slot claimed with <see cref="PendingRequest.TryClaim"/>, then tells its waiter the outcome.</summary>
    internal void Finish(PendingRequest slot, object? reply, Exception? error)
    {
        var waiter = slot.Clear();
        _free.Enqueue(slot);
        if (waiter is null)
        {
            return;
        }
        if (error is null)
        {
            waiter.OnReply(reply!);
        }
        else
        {
            waiter.OnFailure(error);
        }
    }

    /// <inheritdoc />
    protected override void TellInternal(object message, IActorRef sender)
    {
        switch (message)
        {
            case ICrabKvReply reply:
                var id = reply.RequestId;
                var slots = Volatile.Read(ref _slots);
                var index = PendingRequest.IndexOf(id);
                if (index < slots.Length && slots[index] is { } slot && slot.TryClaim(id))
                {
                    Finish(slot, reply, null);
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
            if (SweepOnce())
            {
                _idleSweeps = 0;
                return;
            }
            if (++_idleSweeps < IdleSweepsBeforeStop)
            {
                return;
            }
            // Stop, then look again: a request published before the flag was cleared is seen
            // here, one published after it restarts the timer itself (EnsureSweeping). Both the
            // flag's reset and the publication are full fences, so one of the two sees the other.
            _idleSweeps = 0;
            _timer.Change(Timeout.Infinite, Timeout.Infinite);
            Interlocked.Exchange(ref _sweeping, 0);
            if (Pending > 0)
            {
                EnsureSweeping();
            }
        }
        finally
        {
            Volatile.Write(ref _inSweep, 0);
        }
    }

    /// <summary>Fails the requests past their deadline; true when any request was pending.</summary>
    private bool SweepOnce()
    {
        var now = Environment.TickCount64;
        var any = false;
        var slots = Volatile.Read(ref _slots);
        var count = Math.Min(Volatile.Read(ref _slotCount), slots.Length);
        for (var i = 0; i < count; i++)
        {
            var slot = slots[i];
            var id = slot?.Id ?? 0;
            if (id == 0)
            {
                continue;
            }
            any = true;
            // The deadline read may be a later use's; then the claim of this id fails.
            if (slot!.Deadline <= now && slot.TryClaim(id))
            {
                // Claimed: the slot keeps this use's fields until Finish frees it.
                var type = slot.RequestType?.Name ?? "the request";
                Finish(slot, null, new TimeoutException($"CrabKv did not answer {type} within {slot.Timeout}."));
            }
        }
        return any;
    }

    private void EnsureSweeping()
    {
        if (!_terminated && Volatile.Read(ref _sweeping) == 0 && Interlocked.CompareExchange(ref _sweeping, 1, 0) == 0)
        {
            _timer.Change(SweepInterval, SweepInterval);
        }
    }

    /// <summary>A new slot at the end of the table, which doubles when full (old tables stay valid: they hold the same slots).</summary>
    private PendingRequest NewSlot()
    {
        lock (_growLock)
        {
            var count = _slotCount;
            var slots = _slots;
            if (count == slots.Length)
            {
                if (count >= PendingRequest.MaxSlots)
                {
                    throw new InvalidOperationException($"More than {PendingRequest.MaxSlots} CrabKv requests are waiting for their replies at once.");
                }
                var bigger = new PendingRequest[Math.Min(slots.Length * 2, PendingRequest.MaxSlots)];
                Array.Copy(slots, bigger, count);
                slots = bigger;
            }
            var slot = new PendingRequest(this, count);
            slots[count] = slot;
            Volatile.Write(ref _slots, slots);
            Volatile.Write(ref _slotCount, count + 1);
            return slot;
        }
    }
}
