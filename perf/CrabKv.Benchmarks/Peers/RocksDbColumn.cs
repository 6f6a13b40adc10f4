using CrabKv.Benchmarks.Table;
using RocksDbSharp;

namespace CrabKv.Benchmarks.Peers;

/// <summary>
/// "RocksDB": RocksDB (the <c>RocksDB</c> package, RocksDbSharp over the native library it
/// ships) in-process, default options plus: fsync per write is <c>Put</c> with
/// <c>WriteOptions.Sync = true</c> (WAL fdatasync per write); the 100 ms interval is
/// <c>Sync = false</c> puts and <c>FlushWAL(sync: true)</c> every 100 ms; a batch is a
/// <c>WriteBatch</c> of 100 written with <c>Sync = true</c>; write-back is
/// <c>manual_wal_flush</c> (the WAL is buffered in the process) with <c>FlushWAL(sync: true)</c>
/// every 1 s; Snappy is <c>compression = Snappy</c> (off, <c>No</c>, in the other rows);
/// the compaction rows run <c>CompactRange</c> over all keys (three flushed versions of the
/// stale data) in the background. Get rows read a store flushed to SST files after the
/// preload, the value copied into a reused buffer.
/// </summary>
internal sealed class RocksDbColumn : PeerColumn
{
    /// <inheritdoc />
    public override string Name => "RocksDB";

    /// <inheritdoc />
    protected override PeerStore Open(TableRow row, string directory) => new RocksDbPeerStore(row, directory);

    /// <inheritdoc />
    protected override string? Note(TableRow row) => row switch
    {
        TableRow.WriteBack => "manual_wal_flush + FlushWAL(sync) every 1 s",
        TableRow.AllCombined => "manual_wal_flush + FlushWAL(sync) every 1 s, Snappy, CompactRange in the background",
        TableRow.AsyncCompaction => "CompactRange in the background",
        _ => null,
    };

    private sealed class RocksDbPeerStore : PeerStore
    {
        private readonly RocksDb _db;
        private readonly DbOptions _options;
        private readonly WriteOptions _write;
        private readonly WriteOptions _load = new WriteOptions().SetSync(false);
        private readonly WriteBatch _batch = new();
        private readonly byte[] _readBuffer = new byte[4096];
        private readonly bool _syncWrites;

        public RocksDbPeerStore(TableRow row, string directory)
        {
            Directory.CreateDirectory(directory);
            _options = new DbOptions()
                .SetCreateIfMissing(true)
                .SetCompression(PeerWorkload.Json(row) ? Compression.Snappy : Compression.No);
            if (PeerWorkload.WriteBack(row))
            {
                Native.Instance.rocksdb_options_set_manual_wal_flush(_options.Handle, 1);
            }
            _syncWrites = row is TableRow.FsyncPerWrite or TableRow.Batch100;
            _write = new WriteOptions().SetSync(_syncWrites);
            _db = RocksDb.Open(_options, directory);
        }

        public override void Put(int key, byte[] value) => _db.Put(PeerWorkload.Keys[key], value, null, _write);

        public override void PutBatch(int firstKey, int count, byte[] value) => WriteBatch(firstKey, count, value, _write);

        protected override void PutBatchUnsynced(int firstKey, int count, byte[] value) => WriteBatch(firstKey, count, value, _load);

        private void WriteBatch(int firstKey, int count, byte[] value, WriteOptions options)
        {
            _batch.Clear();
            var keys = PeerWorkload.Keys;
            for (var k = firstKey; k < firstKey + count; k++)
            {
                _batch.Put(keys[k], value);
            }
            _db.Write(_batch, options);
        }

        /// <summary>
        /// FlushWAL(sync = true): writes the buffered WAL (manual_wal_flush) and fdatasyncs it;
        /// nothing when every write was already written with Sync = true (no second fdatasync).
        /// </summary>
        public override void Sync()
        {
            if (!_syncWrites)
            {
                Native.Instance.rocksdb_flush_wal(_db.Handle, 1);
            }
        }

        /// <summary>After a load: the memtable flushed to an SST file (each stale version its own file).</summary>
        public override void AfterLoad()
        {
            Native.Instance.rocksdb_flush_wal(_db.Handle, 1);
            _db.Flush(new FlushOptions().SetWaitForFlush(true));
        }

        public override bool Get(int key, bool miss) =>
            _db.Get(miss ? PeerWorkload.MissKeys[key] : PeerWorkload.Keys[key], _readBuffer, 0, _readBuffer.Length) >= 0;

        public override Task StartCompaction() => Task.Factory.StartNew(() => _db.CompactRange((byte[]?)null, null),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        public override void Dispose()
        {
            _batch.Dispose();
            _db.Dispose();
        }
    }
}
