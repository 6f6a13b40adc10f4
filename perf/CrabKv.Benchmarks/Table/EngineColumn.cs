using System.Buffers;
using CrabKv.Benchmarks.Peers;
using System.Diagnostics;

namespace CrabKv.Benchmarks.Table;

/// <summary>
/// "engine 1t": <see cref="EmbeddedStore"/> driven by one thread, the policy of each row applied
/// by that thread as the seed's engine did it: fsync per write is <c>Put</c> + <c>Sync</c>;
/// the 100 ms sync interval is a <c>Sync</c> by the put that finds 100 ms passed since the last
/// one (its latency includes the fsync); a batch is <c>PutBatch</c> + <c>Sync</c>; write-back
/// buffers in the store and the put that finds 1 s passed flushes and fsyncs (as the actor
/// store's flush interval of 1 s). The engine has no background thread: the async-compaction
/// row does not apply and the all-combined row runs without a compaction. The get rows use the
/// engine's allocation-free get (<see cref="EmbeddedStore.TryGet(ReadOnlySpan{byte}, IBufferWriter{byte})"/>:
/// the key as UTF-8 bytes from the same key block the peers read, the value copied into one
/// reused buffer), as the peer columns read into a caller's buffer.
/// </summary>
internal sealed class EngineColumn : ITableColumn, IAsyncDisposable
{
    private readonly ArrayBufferWriter<byte> _value = new(4096);
    private (EmbeddedStore Store, string Directory, int Keys)? _preloaded;

    /// <inheritdoc />
    public string Name => "engine 1t";

    /// <inheritdoc />
    public async Task<Cell?> MeasureAsync(TableRow row, TableOptions options, IProgress<double>? progress, CancellationToken cancellationToken)
    {
        if (row == TableRow.AsyncCompaction)
        {
            return null;
        }
        if (!TableWorkload.Writes(row))
        {
            var (store, _, keys) = _preloaded ??= Preload(options);
            await CallerLoops.RunSync(0, TableWorkload.WarmUpOps(row, options), TableWorkload.WarmUpTime(options), i => Get(store, row, i, keys), null, cancellationToken);
            var gets = await CallerLoops.RunSync(0, TableWorkload.MaxOps(row, options), TableWorkload.MaxTime(options), i => Get(store, row, i, keys), progress, cancellationToken);
            return Cell.From(gets.Histogram, gets.Values, gets.Elapsed, note: "byte key, value into a reused buffer");
        }

        await DisposeAsync();
        var directory = Path.Combine(options.Root, $"engine-{row}");
        try
        {
            long records;
            Measured measured;
            using (var store = EmbeddedStore.Open(directory, Options(row)))
            {
                var policy = new SyncPolicy(store, row);
                var perOp = row == TableRow.Batch100 ? TableWorkload.BatchSize : 1;
                var batches = row == TableRow.Batch100 ? TableWorkload.Batches(1, TableWorkload.WriteKeys, fullOnly: true) : [];
                Action<long> op = row == TableRow.Batch100
                    ? i => policy.AfterWrite(() => store.PutBatch(batches[(int)(i % batches.Length)]))
                    : i => policy.AfterWrite(() => store.Put(TableWorkload.WriteKey(i), TableWorkload.ValueFor(row, i)));
                var warmUp = await CallerLoops.RunSync(0, TableWorkload.WarmUpOps(row, options), TableWorkload.WarmUpTime(options), op, null, cancellationToken);
                measured = await CallerLoops.RunSync(warmUp.Values, TableWorkload.MaxOps(row, options), TableWorkload.MaxTime(options), op, progress, cancellationToken);
                records = (warmUp.Values + measured.Values) * perOp;
                store.Sync();
            }
            var note = row == TableRow.AllCombined ? "no compaction: the engine has no background thread" : null;
            return Cell.From(measured.Histogram, measured.Values * (row == TableRow.Batch100 ? TableWorkload.BatchSize : 1), measured.Elapsed,
                (double)TableWorkload.DirectoryBytes(directory) / records, note);
        }
        finally
        {
            TableWorkload.DeleteDirectory(directory);
        }
    }

    private void Get(EmbeddedStore store, TableRow row, long i, int keys)
    {
        var block = row == TableRow.GetMiss ? PeerWorkload.MissKeyBlock() : PeerWorkload.KeyBlock();
        var key = block.AsSpan(PeerWorkload.GetKey(row, i, keys) * PeerWorkload.KeyBytes, PeerWorkload.KeyBytes);
        _value.ResetWrittenCount();
        var found = store.TryGet(key, _value);
        if (found != (row == TableRow.GetHit))
        {
            throw new InvalidOperationException($"engine: get {i} of row {row} {(found ? "found a key it should miss" : "missed a preloaded key")}.");
        }
    }

    private static StoreOptions Options(TableRow row) => new()
    {
        AutoCompact = false,
        Compression = true, // only the ~1 KiB JSON values pass the 256-byte threshold
        WriteBack = row is TableRow.WriteBack or TableRow.AllCombined,
    };

    private (EmbeddedStore, string, int) Preload(TableOptions options)
    {
        var directory = Path.Combine(options.Root, "engine-preloaded");
        var store = EmbeddedStore.Open(directory, Options(TableRow.GetHit));
        foreach (var batch in TableWorkload.Batches(1, options.PreloadKeys, fullOnly: false))
        {
            store.PutBatch(batch);
        }
        store.Sync();
        BenchData.Quiesce();
        return (store, directory, options.PreloadKeys);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        if (_preloaded is { } p)
        {
            p.Store.Dispose();
            TableWorkload.DeleteDirectory(p.Directory);
            _preloaded = null;
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>When the one thread fsyncs, per row.</summary>
    private sealed class SyncPolicy(EmbeddedStore store, TableRow row)
    {
        private static readonly long Interval100Ms = Stopwatch.Frequency / 10;
        private static readonly long Interval1S = Stopwatch.Frequency;
        private long _last = Stopwatch.GetTimestamp();

        public void AfterWrite(Action write)
        {
            write();
            switch (row)
            {
                case TableRow.FsyncPerWrite or TableRow.Batch100:
                    store.Sync();
                    break;
                case TableRow.WriteBack or TableRow.AllCombined:
                    Every(Interval1S);
                    break;
                default:
                    Every(Interval100Ms);
                    break;
            }
        }

        private void Every(long interval)
        {
            var now = Stopwatch.GetTimestamp();
            if (now - _last >= interval)
            {
                store.Sync();
                _last = now;
            }
        }
    }
}
