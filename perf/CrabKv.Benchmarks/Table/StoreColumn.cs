using System.Diagnostics;
using System.Globalization;
using Akka.Actor;
using CrabKv.Actors;
using CrabKv.Actors.Client;

namespace CrabKv.Benchmarks.Table;

/// <summary>A store an actor-path column measures: started for one row, stopped after it.</summary>
internal interface IStoreUnderTest
{
    /// <summary>The typed client connected to the store's endpoint.</summary>
    CrabKvClient Client { get; }

    /// <summary>The partition count a batch's keys must agree on (keys of a batch live in one partition).</summary>
    int BatchPartitions { get; }

    /// <summary>Stops the store; returns the bytes its data takes on disk.</summary>
    Task<long> StopAsync();

    /// <summary>The bytes its data takes on disk now, the store running (for stores that serve several rows).</summary>
    Task<long> DiskBytesAsync();
}

/// <summary>
/// The flow every actor-path column shares, per row: a store configured for the row
/// (<see cref="RowHocon"/>); for a compaction row, stale data preloaded; a warm-up on the same
/// store; for a compaction row, the compaction started (the store's <see cref="Compact"/>
/// request, not awaited) just before the timed part, which ends with it or at its limit; the
/// timed part; then the data on disk. A store serves the next row too when it has the same
/// settings and either the column reuses stores (<see cref="ReuseAcrossRows"/>: the cluster,
/// whose start takes seconds) or both rows are get rows (they share one store preloaded with
/// <see cref="TableOptions.PreloadKeys"/> keys); otherwise each row starts a fresh store.
/// Subclasses say how a store starts and how requests are driven.
/// </summary>
internal abstract class StoreColumn : ITableColumn, IAsyncDisposable
{
    private IStoreUnderTest? _store;
    private string? _storeHocon;
    private int _preloadedKeys;
    private int _stores;

    /// <inheritdoc />
    public abstract string Name { get; }

    /// <summary>Whether a store serves every following row with the same settings (bytes on disk then come from <see cref="IStoreUnderTest.DiskBytesAsync"/>).</summary>
    protected virtual bool ReuseAcrossRows => false;

    /// <summary>Starts a store for <paramref name="row"/> with its data under <paramref name="directory"/>.</summary>
    protected abstract Task<IStoreUnderTest> StartAsync(string directory, TableRow row, TableOptions options);

    /// <summary>Runs the ops <paramref name="first"/> .. of <paramref name="row"/> against <paramref name="store"/> until a limit.</summary>
    protected abstract Task<Measured> DriveAsync(IStoreUnderTest store, TableRow row, RowOps ops, long first, long maxOps, TimeSpan maxTime,
        IProgress<double>? progress, CancellationToken cancellationToken, Task? stopWhen);

    /// <summary>The <c>crabkv</c> settings of a row: sync policy, write-back, no automatic compaction.</summary>
    public static string RowHocon(TableRow row) => $"""
        crabkv.compaction.auto = off
        crabkv.compression.enabled = on
        crabkv.sync-interval = {(row is TableRow.FsyncPerWrite or TableRow.Batch100 ? "0" : "100ms")}
        crabkv.write-back.enabled = {(row is TableRow.WriteBack or TableRow.AllCombined ? "on" : "off")}
        """;

    /// <inheritdoc />
    public async Task<Cell?> MeasureAsync(TableRow row, TableOptions options, IProgress<double>? progress, CancellationToken cancellationToken)
    {
        var hocon = RowHocon(row);
        var getRow = !TableWorkload.Writes(row);
        var reuse = _store is not null && _storeHocon == hocon && (ReuseAcrossRows || (getRow && _preloadedKeys > 0));
        if (!reuse)
        {
            await DisposeAsync();
            _store = await StartAsync(Path.Combine(options.Root, $"{Name.Replace(' ', '-')}-{_stores++}"), row, options);
            _storeHocon = hocon;
        }
        var store = _store!;
        var keep = ReuseAcrossRows || getRow;
        try
        {
            if (getRow)
            {
                if (_preloadedKeys == 0)
                {
                    await PreloadAsync(store, options.PreloadKeys, 1, cancellationToken);
                    _preloadedKeys = options.PreloadKeys;
                    BenchData.Quiesce();
                }
                var getOps = new RowOps(row, _preloadedKeys, []);
                await DriveAsync(store, row, getOps, 0, TableWorkload.WarmUpOps(row, options), TableWorkload.WarmUpTime(options), null, cancellationToken, null);
                var gets = await DriveAsync(store, row, getOps, 0, TableWorkload.MaxOps(row, options), TableWorkload.MaxTime(options), progress, cancellationToken, null);
                return Cell.From(gets.Histogram, gets.Values, gets.Elapsed);
            }

            var bytesBefore = keep ? await store.DiskBytesAsync() : 0;
            long records = 0;
            if (TableWorkload.Compacts(row))
            {
                records += await PreloadAsync(store, TableWorkload.StaleKeys(options), TableWorkload.StaleVersions, cancellationToken);
                BenchData.Quiesce();
            }
            var perValue = row == TableRow.Batch100 ? TableWorkload.BatchSize : 1;
            var ops = new RowOps(row, 0, row == TableRow.Batch100 ? TableWorkload.Batches(store.BatchPartitions, TableWorkload.WriteKeys, fullOnly: true) : []);
            var warmUp = await DriveAsync(store, row, ops, 0, TableWorkload.WarmUpOps(row, options), TableWorkload.WarmUpTime(options), null, cancellationToken, null);
            Task<CompactOk>? compaction = null;
            var compactionStart = Stopwatch.GetTimestamp();
            if (TableWorkload.Compacts(row))
            {
                compaction = store.Client.CompactAsync(TimeSpan.FromMinutes(10), cancellationToken);
            }
            var measured = await DriveAsync(store, row, ops, warmUp.Values, TableWorkload.MaxOps(row, options), TableWorkload.MaxTime(options), progress, cancellationToken, compaction);
            records += (warmUp.Values + measured.Values) * perValue;
            string? note = null;
            if (compaction is not null)
            {
                var outlasted = !compaction.IsCompleted;
                var outcome = await compaction;
                note = string.Create(CultureInfo.InvariantCulture,
                    $"compaction of {outcome.Outcome.BytesBefore / 1e6:F0} MB ran {Stopwatch.GetElapsedTime(compactionStart).TotalSeconds:F1} s{(outlasted ? ", longer than the timed part" : "; the timed part stopped with it")}");
            }
            long diskBytes;
            if (keep)
            {
                diskBytes = await store.DiskBytesAsync() - bytesBefore;
            }
            else
            {
                _store = null;
                diskBytes = await store.StopAsync();
            }
            return Cell.From(measured.Histogram, measured.Values * perValue, measured.Elapsed, (double)diskBytes / records, note);
        }
        catch
        {
            await DisposeAsync(); // a failed row does not leave its store running
            throw;
        }
    }

    /// <summary>
    /// Writes keys 0 .. <paramref name="keys"/>-1 <paramref name="versions"/> times in batches of
    /// up to 100 (8 concurrent batches), then flushes; returns the records written.
    /// </summary>
    private static async Task<long> PreloadAsync(IStoreUnderTest store, int keys, int versions, CancellationToken cancellationToken)
    {
        var batches = TableWorkload.Batches(store.BatchPartitions, keys, fullOnly: false);
        var total = (long)batches.Length * versions;
        var next = -1L;
        var loops = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            long i;
            while ((i = Interlocked.Increment(ref next)) < total)
            {
                await store.Client.PutBatchAsync(batches[(int)(i % batches.Length)], TimeSpan.FromSeconds(60), cancellationToken);
            }
        }, cancellationToken));
        await Task.WhenAll(loops);
        await store.Client.FlushAsync(TimeSpan.FromSeconds(60), cancellationToken);
        return (long)keys * versions;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        var store = _store;
        _store = null;
        _storeHocon = null;
        _preloadedKeys = 0;
        if (store is not null)
        {
            await store.StopAsync();
        }
    }
}

/// <summary>The ops of one row: op i as a typed-client call or as a request message to a partition.</summary>
/// <param name="Row">The row.</param>
/// <param name="PreloadedKeys">Keys preloaded (get rows).</param>
/// <param name="Batches">The batches of the batch row (keys of each in one partition).</param>
internal sealed record RowOps(TableRow Row, int PreloadedKeys, BatchEntry[][] Batches)
{
    /// <summary>Op <paramref name="i"/> through the typed client.</summary>
    public Task Call(CrabKvClient client, long i) => Row switch
    {
        TableRow.Batch100 => client.PutBatchAsync(Batches[(int)(i % Batches.Length)], TimeSpan.FromSeconds(60)),
        TableRow.GetHit or TableRow.GetMiss => CheckedGet(client, i),
        _ => client.PutAsync(TableWorkload.WriteKey(i), TableWorkload.ValueFor(Row, i), timeout: TimeSpan.FromSeconds(60)),
    };

    private async Task CheckedGet(CrabKvClient client, long i)
    {
        var value = await client.GetAsync(TableWorkload.GetKey(Row, i, PreloadedKeys), TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        Check(value is not null, i);
    }

    /// <summary>
    /// Op <paramref name="i"/> as the request a client actor Tells, and the key that picks its
    /// partition. A write carries values of its own, as a client actor's message must: a value
    /// told to the store is the store's from then on (the write-back buffer keeps it), so an
    /// application builds one per message. The typed client pays the same by copying the
    /// caller's array (its callers may reuse theirs). Until this session every message of a
    /// column shared one array, so the write-back rows kept 1M references to a single 100-byte
    /// array where the typed client column kept 1M arrays (perf/README, "Issue 12: the gaps").
    /// </summary>
    public (string RoutingKey, ICrabKvRequest Request) Message(long i)
    {
        switch (Row)
        {
            case TableRow.Batch100:
                var batch = Batches[(int)(i % Batches.Length)];
                return (batch[0].Key, new PutBatch(batch.Select(e => e with { Value = e.Value?.ToArray() }).ToArray()));
            case TableRow.GetHit or TableRow.GetMiss:
                var key = TableWorkload.GetKey(Row, i, PreloadedKeys);
                return (key, new Get(key));
            default:
                var put = TableWorkload.WriteKey(i);
                return (put, new Put(put, TableWorkload.ValueFor(Row, i).ToArray()));
        }
    }

    /// <summary>Throws when a reply is an error or a get found (or missed) what it should not.</summary>
    public void CheckReply(object reply, long i)
    {
        switch (reply)
        {
            case CrabKvError e:
                throw new InvalidOperationException($"{Row} op {i} failed: {e.Code}: {e.Message}");
            case GetResult g:
                Check(g.Found, i);
                break;
        }
    }

    private void Check(bool found, long i)
    {
        if (found != (Row == TableRow.GetHit))
        {
            throw new InvalidOperationException($"{Row} op {i}: the get {(found ? "found a key that was never written" : "missed a preloaded key")}.");
        }
    }
}
