using CrabKv.Benchmarks.Table;
using FASTER.core;

namespace CrabKv.Benchmarks.Peers;

/// <summary>
/// "FASTER": FasterKV (Microsoft.FASTER.Core 2.6.5) over <c>SpanByte</c> keys and values,
/// in-process, its hybrid log on the default local device (<c>Devices.CreateLogDevice</c>)
/// in the cell's directory: 64 MiB hash index, 256 MiB of log in memory, 32 MiB pages.
/// FasterKV has no write-ahead log: a write becomes durable with a hybrid-log checkpoint
/// (fold-over: the log is flushed up to the tail and a checkpoint record written). Fsync per
/// write is a checkpoint taken and awaited after every upsert; the 100 ms interval starts a
/// checkpoint every 100 ms without waiting for it (FASTER's way: the session goes on while
/// the checkpoint completes); a batch is 100 upserts and one awaited checkpoint (no batch
/// API); write-back is FASTER's plain mode (the log in memory, pages written as they leave
/// it) with a checkpoint started every 1 s. FASTER has no compression: the Snappy rows write
/// the JSON values as they are. The compaction rows run a log compaction (scan, live records
/// copied to the tail) on a second session in the background. Get rows read from the log in
/// memory (the preload fits).
/// </summary>
internal sealed class FasterColumn : PeerColumn
{
    /// <inheritdoc />
    public override string Name => "FASTER";

    /// <inheritdoc />
    protected override PeerStore Open(TableRow row, string directory) => new FasterPeerStore(directory);

    /// <inheritdoc />
    protected override string? Note(TableRow row) => row switch
    {
        TableRow.FsyncPerWrite => "awaited fold-over checkpoint after every upsert",
        TableRow.SyncInterval100Ms => "fold-over checkpoint started every 100 ms",
        TableRow.Batch100 => "100 upserts + one awaited checkpoint (no batch API)",
        TableRow.Snappy => "no compression in FASTER: JSON stored as is; checkpoint every 100 ms",
        TableRow.WriteBack => "log in memory, checkpoint started every 1 s",
        TableRow.AllCombined => "no compression; checkpoint every 1 s; log compaction in the background",
        TableRow.AsyncCompaction => "log compaction (scan) on a second session in the background",
        _ => null,
    };

    private sealed class FasterPeerStore : PeerStore
    {
        private readonly FasterKVSettings<SpanByte, SpanByte> _settings;
        private readonly FasterKV<SpanByte, SpanByte> _store;
        private readonly ClientSession<SpanByte, SpanByte, SpanByte, SpanByteAndMemory, Empty, SpanByteFunctions<Empty>> _session;
        private readonly byte[] _readBuffer = GC.AllocateUninitializedArray<byte>(4096, pinned: true);

        public FasterPeerStore(string directory)
        {
            Directory.CreateDirectory(directory);
            _settings = new FasterKVSettings<SpanByte, SpanByte>(directory, deleteDirOnDispose: false)
            {
                IndexSize = 1L << 26,
                MemorySize = 1L << 28,
                PageSize = 1L << 25,
                RemoveOutdatedCheckpoints = true,
            };
            _store = new FasterKV<SpanByte, SpanByte>(_settings);
            _session = NewSession();
        }

        private ClientSession<SpanByte, SpanByte, SpanByte, SpanByteAndMemory, Empty, SpanByteFunctions<Empty>> NewSession() =>
            _store.For(new SpanByteFunctions<Empty>()).NewSession<SpanByteFunctions<Empty>>();

        private static SpanByte Key(int key, bool miss = false) =>
            SpanByte.FromFixedSpan((miss ? PeerWorkload.MissKeyBlock() : PeerWorkload.KeyBlock()).AsSpan(key * PeerWorkload.KeyBytes, PeerWorkload.KeyBytes));

        public override void Put(int key, byte[] value)
        {
            var k = Key(key);
            var v = SpanByte.FromFixedSpan(value.AsSpan()); // value arrays are pinned (PeerWorkload)
            var status = _session.Upsert(ref k, ref v);
            if (status.IsPending)
            {
                _session.CompletePending(wait: true);
            }
        }

        public override void PutBatch(int firstKey, int count, byte[] value)
        {
            for (var k = firstKey; k < firstKey + count; k++)
            {
                Put(k, value);
            }
        }

        /// <summary>An awaited fold-over checkpoint of the hybrid log (after any checkpoint already running).</summary>
        public override void Sync()
        {
            _store.CompleteCheckpointAsync().AsTask().GetAwaiter().GetResult();
            var (success, _) = _store.TakeHybridLogCheckpointAsync(CheckpointType.FoldOver).AsTask().GetAwaiter().GetResult();
            if (!success)
            {
                throw new InvalidOperationException("FASTER: the hybrid-log checkpoint failed.");
            }
        }

        /// <summary>Starts a fold-over checkpoint unless one is running; does not wait for it.</summary>
        public override void SyncPeriodic() => _store.TryInitiateHybridLogCheckpoint(out _, CheckpointType.FoldOver);

        public override bool Get(int key, bool miss)
        {
            var k = Key(key, miss);
            var output = new SpanByteAndMemory(SpanByte.FromFixedSpan(_readBuffer.AsSpan()));
            var status = _session.Read(ref k, ref output);
            if (status.IsPending)
            {
                _session.CompletePendingWithOutputs(out var completed, wait: true);
                using (completed)
                {
                    while (completed.Next())
                    {
                        status = completed.Current.Status;
                        completed.Current.Output.Memory?.Dispose();
                    }
                }
            }
            output.Memory?.Dispose();
            return status.Found;
        }

        public override Task StartCompaction()
        {
            var until = _store.Log.SafeReadOnlyAddress;
            return Task.Factory.StartNew(() =>
            {
                using var compactor = NewSession();
                compactor.Compact(until, CompactionType.Scan);
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        public override void Dispose()
        {
            _store.CompleteCheckpointAsync().AsTask().GetAwaiter().GetResult();
            _session.Dispose();
            _store.Dispose();
            _settings.Dispose();
        }
    }
}
