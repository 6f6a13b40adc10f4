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
}

/// <summary>
/// The flow every actor-path column shares, per row: start a store configured for the row
/// (<see cref="RowHocon"/>); for a compaction row preload stale data; warm up on the same
/// store; start the compaction (the store's <see cref="Compact"/> request, not awaited) for a
/// compaction row; time the row; stop the store and measure its data on disk. The get rows
/// share one store preloaded with <see cref="TableOptions.PreloadKeys"/> keys (kept between the
/// hit and the miss row). Subclasses say how the store starts and how requests are driven.
/// </summary>
internal abstract class StoreColumn : ITableColumn, IAsyncDisposable
{
    private IStoreUnderTest? _preloaded;
    private int _preloadedKeys;

    /// <inheritdoc />
    public abstract string Name { get; }

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
        if (!TableWorkload.Writes(row))
        {
            if (_preloaded is null)
            {
                var dir = Path.Combine(options.Root, $"{Slug}-preloaded");
                _preloaded = await StartAsync(dir, TableRow.GetHit, options);
                await PreloadAsync(_preloaded, options.PreloadKeys, 1, cancellationToken);
                _preloadedKeys = options.PreloadKeys;
                BenchData.Quiesce();
            }
            var getOps = new RowOps(row, _preloadedKeys, []);
            await DriveAsync(_preloaded, row, getOps, 0, TableWorkload.WarmUpOps(row, options), TableWorkload.WarmUpTime(options), null, cancellationToken, null);
            var gets = await DriveAsync(_preloaded, row, getOps, 0, TableWorkload.MaxOps(row, options), TableWorkload.MaxTime(options), progress, cancellationToken, null);
            return Cell.From(gets.Histogram, gets.Values, gets.Elapsed);
        }

        await DisposeAsync();
        var directory = Path.Combine(options.Root, $"{Slug}-{row}");
        try
        {
            var store = await StartAsync(directory, row, options);
            long records = 0, diskBytes = 0;
            Measured measured;
            string? note = null;
            try
            {
                if (TableWorkload.Compacts(row))
                {
                    records += await PreloadAsync(store, TableWorkload.StaleKeys(options), TableWorkload.StaleVersions, cancellationToken);
                    BenchData.Quiesce();
                }
                var perValue = row == TableRow.Batch100 ? TableWorkload.BatchSize : 1;
                var ops = new RowOps(row, 0, row == TableRow.Batch100 ? TableWorkload.Batches(store.BatchPartitions, TableWorkload.WriteKeys) : []);
                var warmUp = await DriveAsync(store, row, ops, 0, TableWorkload.WarmUpOps(row, options), TableWorkload.WarmUpTime(options), null, cancellationToken, null);
                Task<CompactOk>? compaction = null;
                var compactionStart = Stopwatch.GetTimestamp();
                if (TableWorkload.Compacts(row))
                {
                    compaction = store.Client.CompactAsync(TimeSpan.FromMinutes(10), cancellationToken);
                }
                measured = await DriveAsync(store, row, ops, warmUp.Values, TableWorkload.MaxOps(row, options), TableWorkload.MaxTime(options), progress, cancellationToken, compaction);
                records += (warmUp.Values + measured.Values) * perValue;
                measured = measured with { Values = measured.Values * perValue };
                if (compaction is not null)
                {
                    var outlasted = !compaction.IsCompleted;
                    var outcome = await compaction;
                    note = string.Create(CultureInfo.InvariantCulture,
                        $"compaction of {outcome.Outcome.BytesBefore / 1e6:F0} MB ran {Stopwatch.GetElapsedTime(compactionStart).TotalSeconds:F1} s{(outlasted ? ", longer than the timed part" : "; the timed part stopped with it")}");
                }
            }
            finally
            {
                // Stopped in the finally so a failed row does not leave its store running.
                diskBytes = await store.StopAsync();
            }
            return Cell.From(measured.Histogram, measured.Values, measured.Elapsed, (double)diskBytes / records, note);
        }
        finally
        {
            TableWorkload.DeleteDirectory(directory);
        }
    }

    private string Slug => Name.Replace(' ', '-');

    /// <summary>
    /// Writes keys 0 .. <paramref name="keys"/>-1 <paramref name="versions"/> times in batches of
    /// 100 (8 concurrent batches), then flushes; returns the records written.
    /// </summary>
    private static async Task<long> PreloadAsync(IStoreUnderTest store, int keys, int versions, CancellationToken cancellationToken)
    {
        var batches = TableWorkload.Batches(store.BatchPartitions, keys);
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
        return total * TableWorkload.BatchSize;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_preloaded is { } p)
        {
            _preloaded = null;
            await p.StopAsync();
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

    /// <summary>Op <paramref name="i"/> as the request a client actor Tells, and the key that picks its partition.</summary>
    public (string RoutingKey, ICrabKvRequest Request) Message(long i)
    {
        switch (Row)
        {
            case TableRow.Batch100:
                var batch = Batches[(int)(i % Batches.Length)];
                return (batch[0].Key, new PutBatch(batch));
            case TableRow.GetHit or TableRow.GetMiss:
                var key = TableWorkload.GetKey(Row, i, PreloadedKeys);
                return (key, new Get(key));
            default:
                var put = TableWorkload.WriteKey(i);
                return (put, new Put(put, TableWorkload.ValueFor(Row, i)));
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
