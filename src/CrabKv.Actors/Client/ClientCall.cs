using Akka.Actor;

namespace CrabKv.Actors.Client;

/// <summary>
/// Internal. One call of a <see cref="CrabKvClient"/> method: the task the caller awaits (this
/// is its <see cref="TaskCompletionSource{TResult}"/>, created with
/// <see cref="TaskCreationOptions.RunContinuationsAsynchronously"/>) and what a retry needs.
/// The reply completes it on the replying actor's thread (<see cref="OnReply"/>): a
/// <typeparamref name="TReply"/> becomes the result through the projection, an error reply a
/// <see cref="CrabKvRequestException"/>; the caller's continuation then runs on the thread
/// pool, never on that actor's thread. One object and its task per call: no async state
/// machine, no dictionary entry, no timer.
/// <para>
/// Retries (<see cref="CrabKvClientOptions"/>) send the request again after a pause, each
/// attempt with a new id, so a late reply to an earlier attempt cannot answer a later one.
/// </para>
/// </summary>
internal sealed class ClientCall<TReply, TResult> : TaskCompletionSource<TResult>, IReplyWaiter
{
    private readonly CrabKvClient _client;
    private readonly IActorRef _target;
    private readonly Func<TReply, TResult> _project;
    private readonly TimeSpan _timeout;
    private readonly CancellationToken _cancellationToken;
    private PendingRequest? _slot;
    private ICrabKvRequest? _request;
    private int _retry;

    /// <summary>A call to <paramref name="target"/>; build its request with <see cref="Id"/>, then <see cref="Start"/> it.</summary>
    public ClientCall(CrabKvClient client, IActorRef target, Func<TReply, TResult> project, TimeSpan? timeout, CancellationToken cancellationToken)
        : base(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        _client = client;
        _target = target;
        _project = project;
        if (timeout is { } t && t <= TimeSpan.Zero)
        {
            // Before a slot is taken: nothing is sent. (It used to send, and fail with "did not answer within -00:00:01".)
            throw new ArgumentOutOfRangeException(nameof(timeout), t, "A request timeout must be positive (leave it out for the client's default).");
        }
        _timeout = timeout ?? client.DefaultTimeout;
        _cancellationToken = cancellationToken;
        Id = Reserve();
    }

    /// <summary>The request id of the first attempt (0 with the Ask fallback).</summary>
    public long Id { get; }

    private long Reserve()
    {
        if (_client.Correlator is not { } correlator || _cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
        _slot = correlator.Reserve();
        return _slot.ReservedId;
    }

    /// <summary>Sends <paramref name="request"/> (built with <see cref="Id"/>); its outcome completes <see cref="TaskCompletionSource{TResult}.Task"/>.</summary>
    public Task<TResult> Start(ICrabKvRequest request)
    {
        _request = request;
        if (_cancellationToken.IsCancellationRequested)
        {
            if (_slot is { } slot)
            {
                _slot = null;
                slot.Owner.Release(slot);
            }
            TrySetCanceled(_cancellationToken);
            return Task;
        }
        SendCurrent();
        return Task;
    }

    private void SendCurrent()
    {
        if (_slot is { } slot)
        {
            _slot = null;
            slot.Owner.Send(slot, _target, _request!, _timeout, _cancellationToken, this);
        }
        else
        {
            _ = AskAsync();
        }
    }

    /// <inheritdoc />
    public void OnReply(object reply)
    {
        try
        {
            switch (reply)
            {
                case TReply ok:
                    TrySetResult(_project(ok));
                    break;
                case CrabKvError error when _client.Options.RetryTransient && _retry < _client.Options.MaxRetries && _client.Options.RetryCodes.Contains(error.Code):
                    // Refused before anything was applied (see CrabKvClientOptions): send it again after a pause.
                    _ = RetryAsync();
                    break;
                case CrabKvError error:
                    TrySetException(new CrabKvRequestException(error.Code, _retry == 0 ? error.Message : $"{error.Message} (after {_retry} retries)"));
                    break;
                default:
                    TrySetException(new InvalidOperationException($"Unexpected reply {reply.GetType().Name} to {_request!.GetType().Name}."));
                    break;
            }
        }
        catch (Exception e)
        {
            TrySetException(e);
        }
    }

    /// <inheritdoc />
    public void OnFailure(Exception error)
    {
        switch (error)
        {
            case TimeoutException when _client.Options.RetryReadTimeouts && _request is Get or GetStats && _retry < _client.Options.MaxRetries:
                // A read changes nothing: ask again (see CrabKvClientOptions.RetryReadTimeouts).
                _ = RetryAsync();
                break;
            case OperationCanceledException:
                TrySetCanceled(_cancellationToken);
                break;
            default:
                TrySetException(error);
                break;
        }
    }

    /// <summary>Sends the request again, with a new id, after the backoff of the next retry.</summary>
    private async Task RetryAsync()
    {
        try
        {
            _retry++;
            await System.Threading.Tasks.Task.Delay(_client.Options.BackoffBefore(_retry), _cancellationToken).ConfigureAwait(false);
            // A new id: a late reply to the previous attempt must not answer this one.
            var id = Reserve();
            _request = (ICrabKvRequest)RequestIds.With(_request!, id)!;
            _ = Start(_request);
        }
        catch (OperationCanceledException)
        {
            TrySetCanceled(_cancellationToken);
        }
        catch (Exception e)
        {
            TrySetException(e);
        }
    }

    /// <summary>The fallback for an endpoint reference without an actor system to correlate in: Akka's Ask.</summary>
    private async Task AskAsync()
    {
        object reply;
        try
        {
            reply = await _target.Ask<object>(_request!, _timeout, _cancellationToken).ConfigureAwait(false);
        }
        catch (AskTimeoutException e)
        {
            OnFailure(new TimeoutException($"CrabKv did not answer {_request!.GetType().Name} within {_timeout}.", e));
            return;
        }
        catch (Exception e)
        {
            OnFailure(e);
            return;
        }
        OnReply(reply);
    }
}
