using System.Text;
using Akka.Actor;
using CrabKv.Actors.Internal;
using CrabKv.Storage;

namespace CrabKv.Actors.Client;

/// <summary>An error reply turned into an exception by <see cref="CrabKvClient"/>.</summary>
public sealed class CrabKvRequestException(CrabKvErrorCode code, string message) : Exception(message)
{
    /// <summary>What went wrong.</summary>
    public CrabKvErrorCode Code { get; } = code;
}

/// <summary>
/// Typed async access to a CrabKv store for Akka applications: each method sends one
/// protocol message and awaits its one reply, with a timeout and cancellation; error replies
/// become <see cref="CrabKvRequestException"/>, a missing reply a <see cref="TimeoutException"/>.
/// It works the same against any store endpoint that speaks the public protocol: the store
/// actor, a shard region or proxy, any actor that forwards to them. Created by
/// <see cref="ConnectAsync(IActorRef, TimeSpan?, CancellationToken)"/> for a store actor of the same actor system, it sends keyed
/// requests straight to the key's partition actor (one hop fewer; a local shortcut, not part
/// of the protocol). Thread safe.
/// <para>
/// Replies are matched to requests by the <see cref="ICrabKvRequest.RequestId"/> the protocol
/// echoes: every client of an actor system sends with one long-lived reply address (no
/// temporary actor, extra task or timer per request, as Akka's Ask would create), which completes
/// the waiting call when the reply with its id arrives; a request without an answer fails
/// with a <see cref="TimeoutException"/> within a few tens of milliseconds after its timeout,
/// and at once with <see cref="CrabKvErrorCode.ShuttingDown"/> when the client's actor system
/// terminates (waiting requests included).
/// An endpoint must therefore echo the request's id in its reply, as every CrabKv endpoint does.
/// The returned tasks run their continuations asynchronously (on the thread pool), never on
/// the thread of the actor whose reply completed them.
/// </para>
/// <para>
/// With <see cref="CrabKvClientOptions.RetryTransient"/>, replies that say "not now"
/// (<see cref="CrabKvErrorCode.Overloaded"/>, <see cref="CrabKvErrorCode.PartitionMoving"/>,
/// <see cref="CrabKvErrorCode.PartitionUnavailable"/>) are retried with a bounded exponential
/// backoff before they become exceptions; off by default.
/// </para>
/// </summary>
public sealed class CrabKvClient
{
    private readonly IActorRef _store;
    private readonly IActorRef[] _partitions;
    private readonly TimeSpan _timeout;
    private readonly CrabKvClientOptions _options;
    private readonly RequestCorrelator? _correlator;

    /// <summary>
    /// A client that sends everything through the store actor. Without <paramref name="defaultTimeout"/>
    /// it uses the <c>crabkv.client-timeout</c> of the store's actor system.
    /// </summary>
    public CrabKvClient(IActorRef store, TimeSpan? defaultTimeout = null) : this(store, [], new CrabKvClientOptions { DefaultTimeout = defaultTimeout }) { }

    /// <summary>A client that sends everything through the store actor, with <paramref name="options"/> (timeout, retries).</summary>
    public CrabKvClient(IActorRef store, CrabKvClientOptions options) : this(store, [], options) { }

    private CrabKvClient(IActorRef store, IActorRef[] partitions, CrabKvClientOptions options)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        RefuseNobody(store);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _partitions = partitions;
        _options = options;
        _timeout = options.DefaultTimeout ?? ConfiguredTimeout(store);
        _correlator = RequestCorrelator.For(store);
    }

    /// <summary><see cref="ActorRefs.Nobody"/> (an actor registry's "not registered", a failed lookup) is no store.</summary>
    private static void RefuseNobody(IActorRef store)
    {
        if (store.IsNobody())
        {
            throw new ArgumentException("The store is ActorRefs.Nobody: pass the store's actor (CrabKvStore.Start, or the registry's CrabKvStoreKey once the store has started).", nameof(store));
        }
    }

    /// <summary>
    /// The <c>crabkv.client-timeout</c> of the actor system <paramref name="store"/> belongs to
    /// (falling back to the reference configuration's 10 s).
    /// </summary>
    internal static TimeSpan ConfiguredTimeout(IActorRef store)
    {
        var config = store is IInternalActorRef { Provider: { } provider } ? provider.Settings.Config : null;
        var c = (config ?? Akka.Configuration.Config.Empty).WithFallback(CrabKvSettings.DefaultConfig());
        try
        {
            var t = c.GetTimeSpan("crabkv.client-timeout", null, allowInfinite: false);
            return t > TimeSpan.Zero ? t : throw new CrabKvConfigurationException("client-timeout", "must be positive");
        }
        catch (Exception e) when (e is not CrabKvConfigurationException)
        {
            throw new CrabKvConfigurationException("client-timeout", $"has a value that cannot be read ({e.Message})");
        }
    }

    /// <summary>
    /// A client for <paramref name="store"/>. When it is a store actor started in this process
    /// (<c>CrabKvStore.Start</c>), keyed requests go straight to its partition actors; any
    /// other endpoint (a shard region or proxy, a forwarding actor, a remote store) gets every
    /// request, exactly as with the constructor. Never sends anything outside the public protocol.
    /// Without <paramref name="defaultTimeout"/>, the <c>crabkv.client-timeout</c> of the store's
    /// actor system is the default timeout, and bounds the wait for a local store's partitions.
    /// </summary>
    public static Task<CrabKvClient> ConnectAsync(IActorRef store, TimeSpan? defaultTimeout = null, CancellationToken cancellationToken = default) =>
        ConnectAsync(store, new CrabKvClientOptions { DefaultTimeout = defaultTimeout }, cancellationToken);

    /// <summary>Like <see cref="ConnectAsync(IActorRef, TimeSpan?, CancellationToken)"/>, with <paramref name="options"/> (timeout, retries).</summary>
    public static async Task<CrabKvClient> ConnectAsync(IActorRef store, CrabKvClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        RefuseNobody(store);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var entry = LocalStores.Of(store)?.Find(store);
        if (entry is null)
        {
            return new CrabKvClient(store, [], options);
        }
        var timeout = options.DefaultTimeout ?? ConfiguredTimeout(store);
        IActorRef[] partitions;
        try
        {
            // Completed by the store actor's PreStart, which creates the partitions synchronously.
            partitions = await entry.Partitions.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new CrabKvClient(store, [], options); // the store stopped: its own replies say so
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"The CrabKv store {store.Path} did not start its partitions within {timeout}.", e);
        }
        return new CrabKvClient(store, partitions, options);
    }

    /// <summary>The timeout of a request that gives none.</summary>
    public TimeSpan DefaultTimeout => _timeout;

    /// <summary>The options this client was created with (retries).</summary>
    public CrabKvClientOptions Options => _options;

    /// <summary>Number of partitions the client routes to directly (0 when every request goes through the endpoint).</summary>
    public int Partitions => _partitions.Length;

    /// <summary>The partition of a key (batches must keep their keys in one partition).</summary>
    public int PartitionOf(string key) => KeyPartitioner.PartitionOf(key, Math.Max(1, _partitions.Length));

    /// <summary>Writes a value.</summary>
    /// <remarks>The value is copied: the caller may reuse its array once the call returns.</remarks>
    public Task PutAsync(string key, byte[] value, TimeSpan? ttl = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var copy = value?.ToArray()!; // the caller may reuse its array
        var call = new ClientCall<PutOk, PutOk>(this, Route(key), static r => r, timeout, cancellationToken);
        return call.Start(new Put(key, copy, ttl, call.Id));
    }

    /// <summary>Writes a UTF-8 string value.</summary>
    public Task PutAsync(string key, string value, TimeSpan? ttl = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        PutAsync(key, Encoding.UTF8.GetBytes(value), ttl, timeout, cancellationToken);

    /// <summary>Reads a value; null when absent, deleted or expired.</summary>
    public Task<byte[]?> GetAsync(string key, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var call = new ClientCall<GetResult, byte[]?>(this, Route(key), static r => r.Found ? r.Value : null, timeout, cancellationToken);
        return call.Start(new Get(key, call.Id));
    }

    /// <summary>Reads a UTF-8 string value; null when absent.</summary>
    public async Task<string?> GetStringAsync(string key, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var v = await GetAsync(key, timeout, cancellationToken).ConfigureAwait(false);
        return v is null ? null : Encoding.UTF8.GetString(v);
    }

    /// <summary>Deletes a key; true when it existed.</summary>
    public Task<bool> DeleteAsync(string key, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var call = new ClientCall<DeleteOk, bool>(this, Route(key), static r => r.Existed, timeout, cancellationToken);
        return call.Start(new Delete(key, call.Id));
    }

    /// <summary>Applies puts and deletes atomically (keys of one partition).</summary>
    public Task<int> PutBatchAsync(IReadOnlyList<BatchEntry> entries, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entries);
        entries = entries.Select(e => e is null ? e! : e with { Value = e.Value?.ToArray() }).ToList(); // the caller may reuse its arrays
        var target = _store;
        // A batch the partition may take goes straight to it; anything else goes to the
        // endpoint, which refuses it with the precise error (KeyPartitioner's batch rule).
        if (_partitions.Length > 0 && entries.Count > 0 && entries.All(e => e is not null && !string.IsNullOrEmpty(e.Key))
            && KeyPartitioner.TryPartitionOfBatch(entries.Select(e => e.Key), _partitions.Length, out var partition))
        {
            target = _partitions[partition];
        }
        var call = new ClientCall<PutBatchOk, int>(this, target, static r => r.Count, timeout, cancellationToken);
        return call.Start(new PutBatch(entries, call.Id));
    }

    /// <summary>Writes buffered entries and fsyncs everything acknowledged so far.</summary>
    public Task FlushAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        Call(static (FlushOk r) => r, static id => new Flush(id), timeout, cancellationToken);

    /// <summary>Compacts every partition now.</summary>
    public Task<CompactOk> CompactAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        Call(static (CompactOk r) => r, static id => new Compact(id), timeout, cancellationToken);

    /// <summary>Compacts, then stops the store gracefully.</summary>
    public Task<CompactOk> CompactAndShutdownAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        Call(static (CompactOk r) => r, static id => new CompactAndShutdown(id), timeout, cancellationToken);

    /// <summary>Counters of every partition.</summary>
    public Task<StoreStats> GetStatsAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        Call(static (StoreStats r) => r, static id => new GetStats(id), timeout, cancellationToken);

    private IActorRef Route(string key) =>
        _partitions.Length == 0 || string.IsNullOrEmpty(key) ? _store : _partitions[KeyPartitioner.PartitionOf(key, _partitions.Length)];

    /// <summary>The correlator replies come through, or null for the Ask fallback.</summary>
    internal RequestCorrelator? Correlator => _correlator;

    /// <summary>A call of an endpoint-wide request to the store actor.</summary>
    private Task<TResult> Call<TReply, TResult>(Func<TReply, TResult> project, Func<long, ICrabKvRequest> request, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var call = new ClientCall<TReply, TResult>(this, _store, project, timeout, cancellationToken);
        return call.Start(request(call.Id));
    }
}
