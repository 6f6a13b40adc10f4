using CrabKv.Benchmarks.Table;
using ZoneTree;
using ZoneTree.Comparers;
using ZoneTree.Options;
using ZoneTree.Serializers;

namespace CrabKv.Benchmarks.Peers;

/// <summary>
/// "ZoneTree": ZoneTree 2.1.3 in-process over <c>Memory&lt;byte&gt;</c> keys and values, with
/// the maintainer it documents (background merges of full in-memory segments to disk). WAL
/// mode <c>Sync</c> in every row but the write-back ones; durability is
/// <c>SyncWALAsync()</c>: after every put for fsync per write, every 100 ms for the interval
/// row, after every 100 upserts for the batch row (ZoneTree has no write batch outside
/// transactions). Write-back is WAL mode <c>AsyncCompressed</c> (the WAL written by a
/// background thread) with <c>SyncWALAsync()</c> every 1 s. Snappy has no ZoneTree
/// equivalent: the Snappy rows use LZ4 disk-segment compression (off in the other rows). The
/// compaction rows move the mutable segment forward and run a merge of the stale data in the
/// background. Get rows read a store whose preload was merged into a disk segment.
/// </summary>
internal sealed class ZoneTreeColumn : PeerColumn
{
    /// <inheritdoc />
    public override string Name => "ZoneTree";

    /// <inheritdoc />
    protected override PeerStore Open(TableRow row, string directory) => new ZoneTreePeerStore(row, directory);

    /// <inheritdoc />
    protected override string? Note(TableRow row) => row switch
    {
        TableRow.Batch100 => "100 upserts + one SyncWALAsync (no write batch outside transactions)",
        TableRow.Snappy => "LZ4 disk segments (no Snappy in ZoneTree)",
        TableRow.WriteBack => "WAL AsyncCompressed + SyncWALAsync every 1 s",
        TableRow.AllCombined => "WAL AsyncCompressed + SyncWALAsync every 1 s, LZ4 disk segments, merge in the background",
        TableRow.AsyncCompaction => "merge of the stale segments in the background",
        _ => null,
    };

    private sealed class ZoneTreePeerStore : PeerStore
    {
        private static readonly Lazy<Memory<byte>[]> LazyKeys = new(() => PeerWorkload.Keys.Select(k => new Memory<byte>(k)).ToArray());
        private static readonly Lazy<Memory<byte>[]> LazyMissKeys = new(() => PeerWorkload.MissKeys.Select(k => new Memory<byte>(k)).ToArray());

        private readonly IZoneTree<Memory<byte>, Memory<byte>> _tree;
        private readonly IMaintainer _maintainer;

        public ZoneTreePeerStore(TableRow row, string directory)
        {
            _tree = new ZoneTreeFactory<Memory<byte>, Memory<byte>>()
                .SetDataDirectory(directory)
                .SetComparer(new ByteArrayLexicographicComparerAscending())
                .SetKeySerializer(new ByteArraySerializer())
                .SetValueSerializer(new ByteArraySerializer())
                .ConfigureWriteAheadLogOptions(o => o.WriteAheadLogMode = PeerWorkload.WriteBack(row) ? WriteAheadLogMode.AsyncCompressed : WriteAheadLogMode.Sync)
                .ConfigureDiskSegmentOptions(o => o.CompressionMethod = PeerWorkload.Json(row) ? CompressionMethod.LZ4 : CompressionMethod.None)
                .OpenOrCreate();
            _maintainer = _tree.CreateMaintainer();
        }

        public override void Put(int key, byte[] value)
        {
            var v = new Memory<byte>(value);
            _tree.Upsert(in LazyKeys.Value[key], in v);
        }

        public override void PutBatch(int firstKey, int count, byte[] value)
        {
            for (var k = firstKey; k < firstKey + count; k++)
            {
                Put(k, value);
            }
        }

        public override void Sync() => _tree.SyncWALAsync(CancellationToken.None).GetAwaiter().GetResult();

        /// <summary>After a load: WAL synced, the in-memory segments merged into the disk segment.</summary>
        public override void AfterLoad()
        {
            Sync();
            _tree.Maintenance.MoveMutableSegmentForward();
            _tree.Maintenance.StartMergeOperation()?.Join();
            _maintainer.WaitForBackgroundThreads();
        }

        public override bool Get(int key, bool miss) =>
            _tree.TryGet(in (miss ? LazyMissKeys.Value : LazyKeys.Value)[key], out _);

        /// <summary>
        /// Moves the mutable segment forward and merges; the maintainer may have started that
        /// merge itself (then StartMergeOperation returns null), so the task waits for the
        /// maintainer's threads too.
        /// </summary>
        public override Task StartCompaction() => Task.Factory.StartNew(() =>
        {
            _tree.Maintenance.MoveMutableSegmentForward();
            _tree.Maintenance.StartMergeOperation()?.Join();
            _maintainer.WaitForBackgroundThreads();
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        public override void Dispose()
        {
            _maintainer.WaitForBackgroundThreads();
            _maintainer.Dispose();
            _tree.Dispose();
        }
    }
}
