using CrabKv.Benchmarks.Table;
using HdrHistogram;

namespace CrabKv.Benchmarks.Peers;

/// <summary>
/// One open peer store as the peer columns drive it: puts and gets by key index into
/// <see cref="PeerWorkload"/>, the two ways of making writes durable, and a background
/// compaction. Each peer maps these onto its own API (see the class comment of each column).
/// </summary>
internal abstract class PeerStore : IDisposable
{
    /// <summary>Puts write key <paramref name="key"/> with <paramref name="value"/> (not yet durable unless the store makes every write durable).</summary>
    public abstract void Put(int key, byte[] value);

    /// <summary>Puts write keys <paramref name="firstKey"/> .. +<paramref name="count"/>-1 with <paramref name="value"/> as one batch where the store has batches.</summary>
    public abstract void PutBatch(int firstKey, int count, byte[] value);

    /// <summary>Makes every write so far durable and returns when it is.</summary>
    public abstract void Sync();

    /// <summary>The periodic durability step (every 100 ms or 1 s); by default <see cref="Sync"/>.</summary>
    public virtual void SyncPeriodic() => Sync();

    /// <summary>Whether a get of key <paramref name="key"/> (a miss key when <paramref name="miss"/>) finds a value.</summary>
    public abstract bool Get(int key, bool miss);

    /// <summary>
    /// Called after a bulk load (preload of the get rows, stale data) and at the end of a write
    /// row before its bytes on disk are counted: makes everything durable and settles the store
    /// (memtables flushed, in-memory segments merged) as it would be some time after the writes.
    /// </summary>
    public virtual void AfterLoad() => Sync();

    /// <summary>Starts compacting what is stored so far in the background; the task ends when the compaction does.</summary>
    public abstract Task StartCompaction();

    /// <summary>Puts keys 0 .. <paramref name="keys"/>-1 in batches, without waiting for durability per batch.</summary>
    public virtual void Load(int keys, byte[] value)
    {
        for (var first = 0; first < keys; first += PeerWorkload.BatchSize)
        {
            PutBatchUnsynced(first, Math.Min(PeerWorkload.BatchSize, keys - first), value);
        }
    }

    /// <summary>A batch for <see cref="Load"/>; by default single puts.</summary>
    protected virtual void PutBatchUnsynced(int firstKey, int count, byte[] value)
    {
        for (var k = firstKey; k < firstKey + count; k++)
        {
            Put(k, value);
        }
    }

    /// <inheritdoc />
    public abstract void Dispose();
}

/// <summary>
/// The rows as every peer column runs them, one thread per column like the engine column:
/// fsync per write is put + <see cref="PeerStore.Sync"/>; the 100 ms sync interval is a
/// <see cref="PeerStore.SyncPeriodic"/> by the put that finds 100 ms passed; a batch is
/// <see cref="PeerStore.PutBatch"/> + <see cref="PeerStore.Sync"/>; the write-back rows
/// (write-back, all combined) use the peer's buffered mode and a periodic step every 1 s (the
/// actor store's flush interval); the compaction rows preload <see cref="PeerWorkload.StaleVersions"/>
/// versions of <see cref="PeerWorkload.StaleKeys"/> keys, warm up, start the compaction and
/// measure puts while it runs. Get rows read a store preloaded with
/// <see cref="TableOptions.PreloadKeys"/> keys, kept open for both get rows.
/// </summary>
internal abstract class PeerColumn : ITableColumn, IAsyncDisposable
{
    private (PeerStore Store, string Directory, int Keys)? _preloaded;

    /// <inheritdoc />
    public abstract string Name { get; }

    /// <summary>Opens a fresh store for <paramref name="row"/> in <paramref name="directory"/>.</summary>
    protected abstract PeerStore Open(TableRow row, string directory);

    /// <summary>A note for the cell of <paramref name="row"/> (how the peer expresses the row), or null.</summary>
    protected abstract string? Note(TableRow row);

    /// <summary>Whether the peer measures <paramref name="row"/> at all.</summary>
    protected virtual bool Measures(TableRow row) => true;

    /// <inheritdoc />
    public async Task<Cell?> MeasureAsync(TableRow row, TableOptions options, IProgress<double>? progress, CancellationToken cancellationToken)
    {
        if (!Measures(row))
        {
            return null;
        }
        if (!PeerWorkload.Writes(row))
        {
            return await MeasureGets(row, options, progress, cancellationToken).ConfigureAwait(false);
        }
        await DisposeAsync().ConfigureAwait(false);
        var directory = Path.Combine(options.Root, $"{Name}-{row}");
        try
        {
            return await MeasureWrites(row, options, directory, progress, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            PeerWorkload.DeleteDirectory(directory);
        }
    }

    private async Task<Cell> MeasureGets(TableRow row, TableOptions options, IProgress<double>? progress, CancellationToken cancellationToken)
    {
        if (_preloaded is null)
        {
            var directory = Path.Combine(options.Root, $"{Name}-preloaded");
            var loaded = Open(TableRow.GetHit, directory);
            loaded.Load(options.PreloadKeys, PeerWorkload.SmallValue);
            loaded.AfterLoad();
            BenchData.Quiesce();
            _preloaded = (loaded, directory, options.PreloadKeys);
        }
        var (store, _, keys) = _preloaded.Value;
        var miss = row == TableRow.GetMiss;
        void Op(long i)
        {
            if (store.Get(PeerWorkload.GetKey(row, i, keys), miss) == miss)
            {
                throw new InvalidOperationException($"{Name}: get {i} of row {row} {(miss ? "found a key it should miss" : "missed a preloaded key")}.");
            }
        }
        await PeerWorkload.Run(0, PeerWorkload.WarmUpOps(row, options), PeerWorkload.WarmUpTime(options), Op, null, cancellationToken).ConfigureAwait(false);
        var gets = await PeerWorkload.Run(0, PeerWorkload.MaxOps(row, options), PeerWorkload.MaxTime(options), Op, progress, cancellationToken).ConfigureAwait(false);
        if (miss)
        {
            // The last row of the table: the preloaded store is not needed any more.
            await DisposeAsync().ConfigureAwait(false);
        }
        return Cell.From(gets.Histogram, gets.Values, gets.Elapsed, note: Note(row));
    }

    private async Task<Cell> MeasureWrites(TableRow row, TableOptions options, string directory, IProgress<double>? progress, CancellationToken cancellationToken)
    {
        long staleRecords = 0;
        Measured warmUp, measured;
        string? compactionNote = null;
        using (var store = Open(row, directory))
        {
            if (PeerWorkload.Compacts(row))
            {
                var stale = PeerWorkload.StaleKeys(options);
                for (var v = 0; v < PeerWorkload.StaleVersions; v++)
                {
                    store.Load(stale, PeerWorkload.ValueFor(row, v));
                    if (v < PeerWorkload.StaleVersions - 1)
                    {
                        store.AfterLoad(); // settled (flushed, merged) like a store that ran a while ...
                    }
                    else
                    {
                        store.Sync(); // ... and the last version still in memory, for the compaction to take along
                    }
                }
                staleRecords = (long)stale * PeerWorkload.StaleVersions;
                BenchData.Quiesce();
            }
            var policy = new SyncPolicy(store, row);
            Action<long> op = row == TableRow.Batch100
                ? i =>
                {
                    store.PutBatch(PeerWorkload.WriteKey(i * PeerWorkload.BatchSize), PeerWorkload.BatchSize, PeerWorkload.SmallValue);
                    store.Sync();
                }
                : i =>
                {
                    store.Put(PeerWorkload.WriteKey(i), PeerWorkload.ValueFor(row, i));
                    policy.AfterWrite();
                };
            warmUp = await PeerWorkload.Run(0, PeerWorkload.WarmUpOps(row, options), PeerWorkload.WarmUpTime(options), op, null, cancellationToken).ConfigureAwait(false);
            Task? compaction = null;
            long compactionEnd = 0;
            var compactionStart = System.Diagnostics.Stopwatch.GetTimestamp();
            if (PeerWorkload.Compacts(row))
            {
                compaction = Timed(store.StartCompaction());
            }
            measured = await PeerWorkload.Run(warmUp.Values, PeerWorkload.MaxOps(row, options), PeerWorkload.MaxTime(options), op, progress, cancellationToken).ConfigureAwait(false);
            if (compaction is not null)
            {
                var finishedInside = compaction.IsCompleted;
                await compaction.ConfigureAwait(false);
                var took = TimeSpan.FromSeconds((double)(compactionEnd - compactionStart) / System.Diagnostics.Stopwatch.Frequency);
                compactionNote = finishedInside
                    ? $"compaction of {staleRecords:N0} stale records finished after {took.TotalSeconds:F1} s of the {measured.Elapsed.TotalSeconds:F1} s measured"
                    : $"compaction of {staleRecords:N0} stale records ran through the {measured.Elapsed.TotalSeconds:F1} s measured (took {took.TotalSeconds:F1} s)";
            }

            async Task Timed(Task task)
            {
                await task.ConfigureAwait(false);
                compactionEnd = System.Diagnostics.Stopwatch.GetTimestamp();
            }

            // Bytes on disk are counted once the store has settled (as after a load): durable,
            // RocksDB's memtable flushed to SST files, ZoneTree's in-memory segments merged.
            store.AfterLoad();
        }
        var perOp = row == TableRow.Batch100 ? PeerWorkload.BatchSize : 1;
        var records = (warmUp.Values + measured.Values) * perOp + staleRecords;
        var note = string.Join("; ", new[] { Note(row), compactionNote, StallNote(measured) }.Where(n => n is not null));
        return Cell.From(measured.Histogram, measured.Values * perOp, measured.Elapsed,
            (double)PeerWorkload.DirectoryBytes(directory) / records, note.Length == 0 ? null : note);
    }

    /// <summary>"longest op N ms" when one op took over 10 ms and 10× the p99.9 (a stall the percentiles hide).</summary>
    private static string? StallNote(Measured measured)
    {
        var h = measured.Histogram;
        if (h.TotalCount == 0)
        {
            return null;
        }
        var maxMs = h.GetMaxValue() * 1e3 / System.Diagnostics.Stopwatch.Frequency;
        var p999Ms = h.GetValueAtPercentile(99.9) * 1e3 / System.Diagnostics.Stopwatch.Frequency;
        return maxMs > 10 && maxMs > 10 * p999Ms ? $"longest op {maxMs:N0} ms" : null;
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        if (_preloaded is { } p)
        {
            _preloaded = null;
            p.Store.Dispose();
            PeerWorkload.DeleteDirectory(p.Directory);
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>When the one thread makes writes durable, per row (the batch row syncs per batch itself).</summary>
    private sealed class SyncPolicy(PeerStore store, TableRow row)
    {
        private static readonly long Interval100Ms = System.Diagnostics.Stopwatch.Frequency / 10;
        private static readonly long Interval1S = System.Diagnostics.Stopwatch.Frequency;
        private long _last = System.Diagnostics.Stopwatch.GetTimestamp();

        public void AfterWrite()
        {
            if (row == TableRow.FsyncPerWrite)
            {
                store.Sync();
                return;
            }
            var now = System.Diagnostics.Stopwatch.GetTimestamp();
            if (now - _last >= (PeerWorkload.WriteBack(row) ? Interval1S : Interval100Ms))
            {
                store.SyncPeriodic();
                _last = now;
            }
        }
    }
}
