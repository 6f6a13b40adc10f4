using System.Threading.Tasks.Sources;

namespace CrabKv.Actors.Client;

/// <summary>
/// Internal. One request of a <see cref="RequestCorrelator"/> waiting for its reply: the
/// awaitable the client awaits (a pooled <see cref="IValueTaskSource{TResult}"/>, so a request
/// allocates no Task or TaskCompletionSource of its own), its correlation id and its deadline.
/// Whoever removes it from the correlator's table (the reply, the timeout sweep, the caller's
/// cancellation) completes it, exactly once; the awaiter's <see cref="GetResult"/> returns it to
/// the pool. The result is stored first (<see cref="Complete"/>) and delivered later by the
/// correlator's drain on a thread-pool thread (<see cref="Deliver"/>), which runs the caller's
/// continuation inline: a reply arrives on the thread of the actor that sent it, a timeout on a
/// timer thread, a cancellation on the cancelling thread, and none of them may run the caller's code.
/// </summary>
internal sealed class PendingRequest : IValueTaskSource<object>
{
    private readonly RequestCorrelator _owner;
    private ManualResetValueTaskSourceCore<object> _core = new() { RunContinuationsAsynchronously = false };
    private CancellationTokenRegistration _cancellation;
    private object? _reply;
    private Exception? _error;

    public PendingRequest(RequestCorrelator owner) => _owner = owner;

    /// <summary>The correlation id of the request (its <c>RequestId</c>).</summary>
    public long Id { get; private set; }

    /// <summary>When the request fails with a timeout (<see cref="Environment.TickCount64"/> milliseconds).</summary>
    public long Deadline { get; private set; }

    /// <summary>The request's type, for the timeout message.</summary>
    public Type? RequestType { get; private set; }

    /// <summary>The request's timeout, for the timeout message.</summary>
    public TimeSpan Timeout { get; private set; }

    /// <summary>The awaitable of the current use.</summary>
    public ValueTask<object> Task => new(this, _core.Version);

    /// <summary>Prepares a rented instance for a request.</summary>
    public void Start(long id, Type requestType, TimeSpan timeout, long deadline)
    {
        Id = id;
        RequestType = requestType;
        Timeout = timeout;
        Deadline = deadline;
    }

    /// <summary>Fails the request when <paramref name="token"/> is cancelled (call after it is in the correlator's table).</summary>
    public void CancelOn(CancellationToken token) =>
        _cancellation = token.UnsafeRegister(static (state, token) => ((PendingRequest)state!).Cancelled(token), this);

    private void Cancelled(CancellationToken token) => _owner.Fail(this, Id, new TaskCanceledException("The request was cancelled.", null, token));

    /// <summary>Stores the outcome, a reply or an error (only by the one that removed it from the table); <see cref="Deliver"/> passes it on.</summary>
    public void Complete(object? reply, Exception? error)
    {
        _reply = reply;
        _error = error;
    }

    /// <summary>Completes the awaitable with the stored outcome; the caller's continuation runs on this thread.</summary>
    public void Deliver()
    {
        var (reply, error) = (_reply, _error);
        _reply = null;
        _error = null;
        if (error is not null)
        {
            _core.SetException(error);
        }
        else
        {
            _core.SetResult(reply!);
        }
    }

    /// <inheritdoc />
    public object GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            // Waits for a cancellation callback that is running, so no callback sees the next use.
            _cancellation.Dispose();
            _cancellation = default;
            Id = 0;
            RequestType = null;
            _core.Reset();
            _owner.Return(this);
        }
    }

    /// <inheritdoc />
    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    /// <inheritdoc />
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
