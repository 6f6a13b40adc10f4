using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using CrabKv.Storage;

namespace CrabKv.Benchmarks;

/// <summary>
/// Rows 1–3: sequential single-thread puts of 100-byte values under keys key:00000000,
/// key:00000001, … into a fresh <see cref="EmbeddedStore"/> (default options) in a new
/// temporary directory per iteration. Each benchmark's OperationsPerInvoke is sized so
/// one iteration takes roughly half a second here. CRABKV_BENCH_PREALLOCATE_STEP=bytes makes the
/// active segment preallocate in steps of that size (a partition's share of crabkv.segment.preallocate)
/// instead of the whole segment up front.
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

    [IterationSetup]
    public void OpenFreshStore()
    {
        _directory = Path.Combine(_root!, $"it-{_iteration++:D4}");
        _store = EmbeddedStore.Open(_directory, new StoreOptions { PreallocateStepBytes = BenchData.PreallocateStep });
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
}
