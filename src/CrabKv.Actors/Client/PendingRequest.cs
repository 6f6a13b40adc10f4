namespace CrabKv.Actors.Client;

/// <summary>
/// Internal. Who waits for the reply of a request sent through a <see cref="RequestCorrelator"/>.
/// Exactly one of the two methods is called, once, by whoever claimed the request's slot: the
/// reply (on the thread of the actor that sent it), the timeout sweep (on a timer thread) or
/// the caller's cancellation (on the cancelling thread). None of these threads may run the
/// caller's code, so an implementation hands the outcome on without running continuations
/// inline (a task created with <see cref="TaskCreationOptions.RunContinuationsAsynchronously"/>).
/// </summary>
internal interface IReplyWaiter
{
    /// <summary>The reply: any message that echoed the request's id (a success or a <see cref="CrabKvError"/>).</summary>
    void OnReply(object reply);

    /// <summary>No reply: a <see cref="TimeoutException"/> or an <see cref="OperationCanceledException"/>.</summary>
    void OnFailure(Exception error);
}

/// <summary>
/// Internal. One slot of a <see cref="RequestCorrelator"/>'s table: a request waiting for its
/// reply. The request id encodes the slot's index (low <see cref="IndexBits"/> bits) and a
/// generation that grows with every use of the slot, so a reply finds its slot by indexing,
/// not by a dictionary lookup, and a late reply to an earlier use (after a timeout or a
/// cancellation) cannot complete a later one: it carries an older generation. Whoever swaps
/// the published id for 0 (<see cref="TryClaim"/>) owns the outcome; the slot goes back to
/// the free list before the waiter is told.
/// </summary>
internal sealed class PendingRequest
{
    /// <summary>Bits of a request id that hold the slot index.</summary>
    public const int IndexBits = 24;

    /// <summary>The mask of the slot index in a request id.</summary>
    public const long IndexMask = (1L << IndexBits) - 1;

    /// <summary>Most slots a correlator may have (requests waiting at once).</summary>
    public const int MaxSlots = 1 << IndexBits;

    private long _id;          // the published id while the request waits, 0 otherwise
    private long _generation;  // written only by the renter, between Reserve and Publish
    private CancellationTokenRegistration _cancellation;

    public PendingRequest(RequestCorrelator owner, int index)
    {
        Owner = owner;
        Index = index;
    }

    /// <summary>The correlator this slot belongs to.</summary>
    public RequestCorrelator Owner { get; }

    /// <summary>The slot's index in its correlator's table.</summary>
    public int Index { get; }

    /// <summary>The id of the current use, from <see cref="Reserve"/> (valid until the slot is released).</summary>
    public long ReservedId { get; private set; }

    /// <summary>The published id (0 while the slot is free, reserved but unsent, or claimed).</summary>
    public long Id => Volatile.Read(ref _id);

    /// <summary>When the request fails with a timeout (<see cref="Environment.TickCount64"/> milliseconds).</summary>
    public long Deadline { get; private set; }

    /// <summary>The request's type, for the timeout message.</summary>
    public Type? RequestType { get; private set; }

    /// <summary>The request's timeout, for the timeout message.</summary>
    public TimeSpan Timeout { get; private set; }

    /// <summary>Who waits for the outcome.</summary>
    public IReplyWaiter? Waiter { get; private set; }

    /// <summary>The id of the slot's next use (a new generation); the request is built with it.</summary>
    public long Reserve()
    {
        // Generations cycle through 1 .. 2^39 - 1, so an id is always positive and never 0
        // (0 means "nothing to claim"), however many times a slot is reused.
        var generation = _generation = _generation % MaxGeneration + 1;
        return ReservedId = (generation << IndexBits) | (uint)Index;
    }

    /// <summary>The generation after which a slot's generations start again at 1 (ids stay positive).</summary>
    internal const long MaxGeneration = (1L << (63 - IndexBits)) - 1;

    /// <summary>Sets the slot's last generation (tests: the wrap-around of a slot reused 2^39 times).</summary>
    internal void SetGenerationForTest(long generation) => _generation = generation;

    /// <summary>The index of the slot a request id names.</summary>
    public static int IndexOf(long id) => (int)(id & IndexMask);

    /// <summary>Prepares the reserved use for sending (not yet visible to replies or the sweep).</summary>
    public void Start(Type requestType, TimeSpan timeout, long deadline, IReplyWaiter waiter)
    {
        RequestType = requestType;
        Timeout = timeout;
        Deadline = deadline;
        Waiter = waiter;
    }

    /// <summary>Fails the request when <paramref name="token"/> is cancelled (call before <see cref="Publish"/>).</summary>
    public void CancelOn(CancellationToken token) =>
        _cancellation = token.UnsafeRegister(static (state, token) => ((PendingRequest)state!).Cancelled(token), this);

    private void Cancelled(CancellationToken token)
    {
        // A callback that runs before Publish finds nothing to claim: the sender checks the token after it.
        if (TryClaim(ReservedId))
        {
            Owner.Finish(this, null, new TaskCanceledException("The request was cancelled.", null, token));
        }
    }

    /// <summary>Makes the request visible to its reply and the sweep (a full fence: see <see cref="RequestCorrelator.Sweep"/>).</summary>
    public void Publish() => Interlocked.Exchange(ref _id, ReservedId);

    /// <summary>True for the one caller that swaps <paramref name="id"/>, the current use's, for 0; it then owns the outcome.</summary>
    public bool TryClaim(long id) => id != 0 && Volatile.Read(ref _id) == id && Interlocked.CompareExchange(ref _id, 0, id) == id;

    /// <summary>Clears a claimed (or never published) use; returns its waiter. The caller then frees the slot.</summary>
    public IReplyWaiter? Clear()
    {
        // Waits for a cancellation callback running on another thread (it finds nothing to
        // claim), so no callback sees the next use; from inside the callback it does not wait.
        _cancellation.Dispose();
        _cancellation = default;
        var waiter = Waiter;
        Waiter = null;
        RequestType = null;
        ReservedId = 0;
        return waiter;
    }
}
