using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using CrabKv.Storage;
using CrabKv.Storage.Files;

namespace CrabKv.Benchmarks;

/// <summary>
/// Rows 1–3: sequential single-thread puts of 100-byte values under keys key:00000000,
/// key:00000001, … into a fresh <see cref="EmbeddedStore"/> (default options) in a new
/// temporary directory per iteration. Each benchmark's OperationsPerInvoke is sized so
/// one iteration takes roughly half a second here. CRABKV_BENCH_PREALLOCATE_STEP=bytes makes the
/// active segment preallocate in steps of that size (a partition's share of crabkv.segment.preallocate)
/// instead of the whole segment up front. The "two calls" rows run the same loops through
/// <see cref="TwoCallFileLayer"/>: every sync is pwrite + fdatasync, as before the one-call
/// durable write (pwritev2 RWF_DSYNC), for a before/after in the same run.
/// </summary>
[Config(typeof(FreshStoreConfig))]
public class PutBenchmarks
{
    public const int FsyncEachWriteOps = 5_000;
    public const int Sync100MsOps = 1_500_000;
    public const int BatchSize = 100;
    public const int BatchRecords = 250_000;

    private static readonly long SyncIntervalTicks = Stopwatch.Frequency / 10; // 100 ms

    private string[] _keys = [];
    private byte[] _value = [];
    private BatchEntry[] _batchOps = [];
    private string? _root;
    private string? _directory;
    private EmbeddedStore? _store;
    private int _iteration;

    [GlobalSetup]
    public void Setup()
    {
        _keys = BenchData.Keys(Math.Max(Sync100MsOps, BatchRecords));
        _value = BenchData.Value();
        _batchOps = new BatchEntry[BatchRecords];
        for (var i = 0; i < _batchOps.Length; i++)
        {
            _batchOps[i] = BatchEntry.Put(_keys[i], _value);
        }
        _root = BenchData.NewTempDirectory("put");
        BenchData.Quiesce();
    }

    [IterationSetup(Targets = [nameof(PutFsyncEachWrite), nameof(PutFsyncEvery100Ms), nameof(PutBatch100Fsync)])]
    public void OpenFreshStore() => Open(FileLayer.Default);

    /// <summary>The two-call rows: every sync is <c>pwrite</c> + <c>fdatasync</c> (the code before the one-call durable write).</summary>
    [IterationSetup(Targets = [nameof(PutFsyncEachWriteTwoCalls), nameof(PutBatch100FsyncTwoCalls)])]
    public void OpenFreshStoreTwoCalls() => Open(TwoCallFileLayer.Instance);

    private void Open(FileLayer files)
    {
        _directory = Path.Combine(_root!, $"it-{_iteration++:D4}");
        _store = EmbeddedStore.Open(_directory, new StoreOptions { PreallocateStepBytes = BenchData.PreallocateStep, Files = files });
    }

    [IterationCleanup]
    public void DropStore()
    {
        _store?.Dispose();
        _store = null;
        BenchData.DeleteDirectory(_directory);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        DropStore();
        BenchData.DeleteDirectory(_root);
    }

    /// <summary>Row 1: Put then Sync (fdatasync) for every record.</summary>
    [Benchmark(OperationsPerInvoke = FsyncEachWriteOps, Description = "put, fsync per write")]
    public void PutFsyncEachWrite()
    {
        var store = _store!;
        var keys = _keys;
        var value = _value;
        for (var i = 0; i < FsyncEachWriteOps; i++)
        {
            store.Put(keys[i], value);
            store.Sync();
        }
    }

    /// <summary>Row 1 as before the one-call durable write: Put, then pwrite + fdatasync.</summary>
    [Benchmark(OperationsPerInvoke = FsyncEachWriteOps, Description = "put, fsync per write (two calls: pwrite + fdatasync)")]
    public void PutFsyncEachWriteTwoCalls() => PutFsyncEachWrite();

    /// <summary>Row 2: Put; Sync when 100 ms have passed since the last one.</summary>
    [Benchmark(OperationsPerInvoke = Sync100MsOps, Description = "put, fsync every 100 ms")]
    public void PutFsyncEvery100Ms()
    {
        var store = _store!;
        var keys = _keys;
        var value = _value;
        var lastSync = Stopwatch.GetTimestamp();
        for (var i = 0; i < Sync100MsOps; i++)
        {
            store.Put(keys[i], value);
            var now = Stopwatch.GetTimestamp();
            if (now - lastSync >= SyncIntervalTicks)
            {
                store.Sync();
                lastSync = now;
            }
        }
    }

    /// <summary>Row 3: PutBatch of 100 records, then one Sync; reported per record.</summary>
    [Benchmark(OperationsPerInvoke = BatchRecords, Description = "batch of 100 puts + 1 fsync (per record)")]
    public void PutBatch100Fsync()
    {
        var store = _store!;
        var ops = _batchOps;
        for (var start = 0; start < BatchRecords; start += BatchSize)
        {
            store.PutBatch(new ArraySegment<BatchEntry>(ops, start, BatchSize));
            store.Sync();
        }
    }

    /// <summary>Row 3 as before the one-call durable write: each batch's sync is pwrite + fdatasync.</summary>
    [Benchmark(OperationsPerInvoke = BatchRecords, Description = "batch of 100 puts + 1 fsync (two calls: pwrite + fdatasync)")]
    public void PutBatch100FsyncTwoCalls() => PutBatch100Fsync();
}
