using System.Buffers;
using System.Text;
using CrabKv.Storage.Caches;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Format;
using CrabKv.Storage.Index;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Recovery;

namespace CrabKv.Storage;

/// <summary>
/// The storage engine as one object: open / put / get / delete / batch / flush / sync /
/// compact / dispose over a partition directory. <b>Not thread safe</b>: exactly one thread
/// may use an instance. Writes go to an in-memory buffer; <see cref="Flush"/> hands them to
/// the OS and <see cref="Sync"/> makes them durable — the caller picks the policy.
/// Its rules are the partition's (<c>Partition/</c>: <see cref="WriteRules"/>,
/// <see cref="PartitionIndex"/>, <see cref="ActiveLog"/>, <see cref="RecordReader"/>), the
/// same code the actor layer's partition runs; this type only sequences them synchronously.
/// </summary>
public sealed class EmbeddedStore : IDisposable
{
    private readonly string _directory;
    private readonly StoreOptions _options;
    private readonly WriteLimits _limits;
    private readonly DirectoryLock _lock;
    private readonly PartitionIndex _index;
    private readonly ActiveLog _log;
    private readonly LruCache _cache;
    private readonly WriteBackBuffer? _writeBack;
    private byte[] _keyBuffer = new byte[256];
    private byte[] _readBuffer = new byte[4096];
    private long _compactions;
    private long _puts, _gets, _deletes;
    private readonly List<Segments.Segment> _leftoverInputs = new(); // merged inputs whose deletion failed
    private bool _disposed;
    private Exception? _failure; // a write or fsync failed: the store refuses everything until reopened

    private EmbeddedStore(string directory, StoreOptions options, DirectoryLock dirLock, RecoveredState state)
    {
        _directory = directory;
        _options = options;
        _lock = dirLock;
        _index = state.Index;
        LastRecovery = state.Report;
        _limits = options.ToWriteLimits();
        _cache = new LruCache(options.ReadCacheEntries, options.ReadCacheBytes);
        _writeBack = options.WriteBack ? new WriteBackBuffer(_limits.EffectiveMaxDirtyBytes) : null;
        _log = new ActiveLog(options.Files, directory, state.NextSequence, options.ToLogSettings());
        _index.StartActive(_log.Writer.Segment);
    }

    /// <summary>What open found (torn tail cut, hints used, …).</summary>
    public RecoveryReport LastRecovery { get; }

    /// <summary>The directory this store owns.</summary>
    public string Directory => _directory;

    /// <summary>Number of live keys on disk (buffered write-back entries not counted).</summary>
    public int Count => _index.Count;

    /// <summary>The key directory (read it only; tests compare it across opens).</summary>
    public KeyDirectory KeyDirectory => _index.Keys;

    /// <summary>Opens (creating if needed) the store in <paramref name="directory"/>.</summary>
    /// <exception cref="StoreLockedException">The directory is in use.</exception>
    /// <exception cref="NotASegmentException">A segment file is not one.</exception>
    /// <exception cref="CorruptSegmentException">Damage outside the torn tail.</exception>
    public static EmbeddedStore Open(string directory, StoreOptions? options = null)
    {
        options = (options ?? new StoreOptions()).Validate();
        var full = Path.GetFullPath(directory);
        var dirLock = DirectoryLock.Acquire(options.Files, full);
        try
        {
            var state = StoreRecovery.Load(options.Files, full, options.Clock.GetUtcNow().ToUnixTimeMilliseconds(), options.Log);
            try
            {
                return new EmbeddedStore(full, options, dirLock, state);
            }
            catch
            {
                state.Index.Dispose();
                throw;
            }
        }
        catch
        {
            dirLock.Dispose();
            throw;
        }
    }

    private long Now => _options.Clock.GetUtcNow().ToUnixTimeMilliseconds();

    // ---------------------------------------------------------------- writes

    /// <summary>Writes a value; <paramref name="ttl"/> (or the default TTL) makes it expire.</summary>
    public void Put(string key, ReadOnlySpan<byte> value, TimeSpan? ttl = null)
    {
        ThrowIfDisposed();
        var keyBytes = EncodeKey(key);
        Throw(WriteRules.CheckValue(key, value.Length, _limits.MaxValueBytes));
        Throw(WriteRules.ExpiryFor(key, ttl, _limits.DefaultTtl, Now, out var expiry));
        _puts++;
        if (_writeBack is not null)
        {
            if (WriteBackBuffer.CostOf(key, null) + value.Length <= _writeBack.MaxDirtyBytes)
            {
                BufferWrite(key, value.ToArray(), expiry);
                return;
            }
            // Too large to ever buffer: written through, after what is buffered (order kept).
            FlushWriteBack();
        }
        var flags = _log.Prepare(value, out var compressed);
        ReadOnlySpan<byte> stored = compressed ?? value;
        RollIfNeeded(RecordCodec.SizeOf(keyBytes.Length, stored.Length));
        KeyLocation location;
        try
        {
            location = _log.Append(flags, expiry, keyBytes, stored);
        }
        catch (Exception e) when (Poisons(e))
        {
            throw;
        }
        _index.Apply(keyBytes, location, tombstone: false, Now);
        _cache.Remove(key);
    }

    /// <summary>Writes a UTF-8 string value.</summary>
    public void Put(string key, string value, TimeSpan? ttl = null) => Put(key, Encoding.UTF8.GetBytes(value), ttl);

    /// <summary>Deletes a key; returns true when it existed.</summary>
    public bool Delete(string key)
    {
        ThrowIfDisposed();
        var keyBytes = EncodeKey(key);
        var existed = ContainsLive(key, keyBytes);
        _deletes++;
        if (_writeBack is not null)
        {
            if (existed)
            {
                BufferWrite(key, null, 0);
            }
            return existed;
        }
        if (!_index.HasRecord(keyBytes))
        {
            return existed; // nothing on disk to hide
        }
        RollIfNeeded(RecordCodec.SizeOf(keyBytes.Length, 0));
        KeyLocation location;
        try
        {
            location = _log.Append(RecordFlags.Tombstone, 0, keyBytes, default);
        }
        catch (Exception e) when (Poisons(e))
        {
            throw;
        }
        _index.Apply(keyBytes, location, tombstone: true, Now);
        _cache.Remove(key);
        return existed;
    }

    /// <summary>
    /// Applies puts and deletes atomically: after any crash either all of them are visible or
    /// none. Every entry is validated before anything is written (an empty batch is refused).
    /// Entries may repeat a key: the last one wins.
    /// </summary>
    public void PutBatch(IReadOnlyList<BatchEntry> entries)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(entries);
        Throw(WriteRules.CheckBatch(_limits, entries, Now, out var write));
        _puts += write.Count;
        if (_writeBack is not null)
        {
            var cost = write.WriteBackCost;
            if (cost <= _writeBack.MaxDirtyBytes)
            {
                // The batch must reach the log inside one flush (one atomic batch): make room
                // for all of it first, then buffer it whole. Values are copied: the caller may reuse its arrays.
                if (_writeBack.DirtyBytes + cost > _writeBack.MaxDirtyBytes)
                {
                    FlushWriteBack();
                }
                for (var i = 0; i < write.Count; i++)
                {
                    _writeBack.Offer(write.Keys[i], write.Values[i]?.ToArray(), write.Expiries[i]);
                    _cache.Remove(write.Keys[i]);
                }
                return;
            }
            FlushWriteBack(); // too large to buffer: written through, after what is buffered
        }
        AppendWrite(write.ToRecords(), asBatch: true);
        foreach (var key in write.Keys)
        {
            _cache.Remove(key);
        }
    }

    private void AppendWrite(LogRecord[] records, bool asBatch)
    {
        var stored = new (RecordFlags Flags, byte[] Stored)[records.Length];
        for (var i = 0; i < records.Length; i++)
        {
            stored[i] = _log.Prepare(records[i].Value);
        }
        RollIfNeeded(ActiveLog.SizeOf(records, stored));
        KeyLocation[] locations;
        try
        {
            locations = _log.Append(records, stored, asBatch);
        }
        catch (Exception e) when (Poisons(e))
        {
            throw;
        }
        var now = Now;
        for (var i = 0; i < records.Length; i++)
        {
            _index.Apply(records[i].Key, locations[i], locations[i].Tombstone, now);
        }
    }

    /// <summary>
    /// Write-back: writes every dirty entry to the log as one atomic batch (TTLs kept, key
    /// directory updated). Then hands all buffered bytes to the OS (no fsync).
    /// </summary>
    public void Flush()
    {
        ThrowIfDisposed();
        FlushWriteBack();
        try
        {
            _log.Flush();
        }
        catch (Exception e) when (Poisons(e))
        {
            throw;
        }
    }

    /// <summary>
    /// <see cref="Flush"/>, then fsync: everything written so far is durable. The log's buffered
    /// bytes are not flushed first: its sync writes them durably (one call where it can).
    /// </summary>
    public void Sync()
    {
        ThrowIfDisposed();
        FlushWriteBack();
        try
        {
            _log.Sync();
        }
        catch (Exception e) when (Poisons(e))
        {
            throw;
        }
    }

    private void FlushWriteBack()
    {
        if (_writeBack is null || _writeBack.Count == 0)
        {
            return;
        }
        var (_, records) = WriteBackBuffer.FlushRecords(_writeBack.Drain(), (_, keyBytes) => _index.HasRecord(keyBytes));
        if (records.Length > 0)
        {
            AppendWrite(records, asBatch: true);
        }
    }

    private void BufferWrite(string key, byte[]? value, long expiry)
    {
        if (_writeBack!.Offer(key, value, expiry) == WriteBackResult.Full)
        {
            FlushWriteBack();
            if (_writeBack.Offer(key, value, expiry) == WriteBackResult.Full)
            {
                throw new WriteBackBufferFullException(WriteBackBuffer.CostOf(key, value), _writeBack.MaxDirtyBytes);
            }
        }
        _cache.Remove(key);
    }

    // ---------------------------------------------------------------- reads

    /// <summary>Reads a key's value; false when absent, deleted or expired. The array is the caller's own.</summary>
    public bool TryGet(string key, out byte[] value)
    {
        ThrowIfDisposed();
        _gets++;
        if (_writeBack is not null && _writeBack.TryGet(key, out var dirty))
        {
            var live = dirty.IsLiveAt(Now);
            value = live ? dirty.Value!.ToArray() : [];
            return live;
        }
        // The LRU holds only values read positionally (a file layer that does not map): a
        // mapped read costs no system call, so caching it would only copy and evict. With
        // mapping, the cache stays empty and is not even looked at.
        if (_cache.Count > 0 && _cache.TryGet(key, Now, out var cached))
        {
            value = cached.ToArray(); // the cache keeps its own array; callers may change theirs
            return true;
        }
        var keyBytes = EncodeKey(key);
        // Found by hash alone (the stored key is not read: one cache miss fewer); the record's
        // own key, checked on every read anyway, confirms it. A record of another key with the
        // same hash sends the get to the compared lookup. The clock is read only for a key with a TTL.
        if (!_index.TryGetLiveByHash(keyBytes, _options.Clock, out var location, out var keyChecked))
        {
            value = [];
            return false;
        }
        var found = ReadRecord(location, keyBytes, keyChecked, out var mapped);
        if (found is null)
        {
            if (!_index.TryGetLive(keyBytes, Now, out location))
            {
                value = [];
                return false;
            }
            found = ReadRecord(location, keyBytes, keyChecked: true, out mapped)!; // a compared location: never another key
        }
        value = found;
        if (!mapped && _cache.MaxEntries > 0)
        {
            _cache.Put(key, value.ToArray(), location.Expiry);
        }
        return true;
    }

    /// <summary>
    /// Reads the value of a key given as UTF-8 bytes into <paramref name="destination"/>
    /// (decompressed; appended with <see cref="IBufferWriter{T}.Advance"/>); false, and nothing
    /// written, when the key is absent, deleted or expired. The allocation-free get: no key
    /// string, no value array; a record read in place through its segment's mapping is copied
    /// once, into the caller's buffer. Keys follow the string keys' rules (1 to max-key-bytes
    /// of valid UTF-8); a key that breaks them is refused as by <see cref="TryGet(string, out byte[])"/>.
    /// </summary>
    public bool TryGet(ReadOnlySpan<byte> utf8Key, IBufferWriter<byte> destination)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(destination);
        if (_writeBack is { Count: > 0 } || _cache.Count > 0)
        {
            Throw(WriteRules.CheckKey(utf8Key, _limits.MaxKeyBytes));
            // Buffered writes and cached values are keyed by string: take the string path.
            if (!TryGet(KeyRules.Utf8.GetString(utf8Key), out var value))
            {
                return false;
            }
            destination.Write(value);
            return true;
        }
        // The UTF-8 check waits for a miss: a key found equals a stored key, which passed it.
        Throw(WriteRules.CheckKeyLength(utf8Key, _limits.MaxKeyBytes));
        _gets++;
        if (_index.TryGetLiveByHash(utf8Key, _options.Clock, out var location, out var keyChecked))
        {
            if (ReadInto(location, utf8Key, otherKeyIsMiss: !keyChecked, destination))
            {
                return true;
            }
            // A record of another key with the same hash: the compared lookup decides.
            if (_index.TryGetLive(utf8Key, Now, out location) && ReadInto(location, utf8Key, otherKeyIsMiss: false, destination))
            {
                return true;
            }
        }
        Throw(WriteRules.CheckKey(utf8Key, _limits.MaxKeyBytes));
        return false;
    }

    private bool ReadInto(in KeyLocation location, ReadOnlySpan<byte> keyBytes, bool otherKeyIsMiss, IBufferWriter<byte> destination)
    {
        var writer = _log.Writer;
        if (location.Segment == writer.Id)
        {
            return RecordReader.ReadValueInto(writer, writer.Segment.Path, location, keyBytes, ref _readBuffer, otherKeyIsMiss, destination);
        }
        var segment = SegmentOf(location.Segment);
        return RecordReader.ReadValueInto(segment, segment.Path, location, keyBytes, ref _readBuffer, otherKeyIsMiss, destination);
    }

    /// <summary>
    /// The value of the record at <paramref name="location"/>, from the writer or its segment;
    /// null when the location was found by hash alone (<paramref name="keyChecked"/> false) and
    /// the record holds another key.
    /// </summary>
    private byte[]? ReadRecord(in KeyLocation location, ReadOnlySpan<byte> keyBytes, bool keyChecked, out bool mapped)
    {
        var writer = _log.Writer;
        if (location.Segment == writer.Id)
        {
            return keyChecked
                ? RecordReader.ReadValue(writer, writer.Segment.Path, location, keyBytes, ref _readBuffer, out mapped)
                : RecordReader.ReadCandidate(writer, writer.Segment.Path, location, keyBytes, ref _readBuffer, out mapped);
        }
        var segment = SegmentOf(location.Segment);
        return keyChecked
            ? RecordReader.ReadValue(segment, segment.Path, location, keyBytes, ref _readBuffer, out mapped)
            : RecordReader.ReadCandidate(segment, segment.Path, location, keyBytes, ref _readBuffer, out mapped);
    }

    /// <summary>The open segment a key directory location names (the directory names only segments in the table).</summary>
    private Segments.Segment SegmentOf(Segments.SegmentId id) =>
        _index.TryGetSegment(id, out var segment) ? segment : throw new InvalidOperationException($"The key directory names segment {id}, which is not open.");

    /// <summary>Reads a key's value, or null.</summary>
    public byte[]? Get(string key) => TryGet(key, out var v) ? v : null;

    /// <summary>Reads a key's value as a UTF-8 string, or null.</summary>
    public string? GetString(string key) => TryGet(key, out var v) ? Encoding.UTF8.GetString(v) : null;

    private bool ContainsLive(string key, ReadOnlySpan<byte> keyBytes)
    {
        var now = Now;
        if (_writeBack is not null && _writeBack.TryGet(key, out var dirty))
        {
            return dirty.IsLiveAt(now);
        }
        return _index.ContainsLive(keyBytes, now);
    }

    // ---------------------------------------------------------------- maintenance

    /// <summary>
    /// Merges every sealed segment (the active one is sealed first), dropping overwritten,
    /// deleted and expired records; returns what it did.
    /// </summary>
    public CompactionOutcome Compact(IProgress<MergeProgress>? progress = null)
    {
        ThrowIfDisposed();
        FlushWriteBack();
        if (_log.Writer.Length > FormatConstants.FileHeaderSize)
        {
            Roll(autoCompact: false);
        }
        return CompactSealed(progress);
    }

    private CompactionOutcome CompactSealed(IProgress<MergeProgress>? progress)
    {
        var inputs = _index.PlanMerge(olderSegmentsExist: _leftoverInputs.Count > 0);
        if (inputs is null)
        {
            return CompactionOutcome.None;
        }
        RetryLeftoverDeletes();
        var keys = _index.Keys;
        var result = Merger.Run(_options.Files, new MergeRequest(_directory, inputs, OlderSegmentsExist: _leftoverInputs.Count > 0, Now, _options.MaxSegmentBytes,
            (ReadOnlySpan<byte> k, in KeyLocation l) => keys.TryGet(k, out var cur) && cur.SameRecord(l),
            _leftoverInputs.Count > 0 ? null : LiveRecords.Of(keys, inputs)), progress);
        _index.ApplyMerge(inputs, result);
        var (left, error) = Merger.DeleteInputs(_options.Files, _directory, inputs);
        if (error is not null)
        {
            _leftoverInputs.AddRange(left);
            _options.Log?.Invoke($"Deleting merged segments failed ({error.Message}); {left.Count} kept on disk, retried at the next compaction.");
        }
        _compactions++;
        return CompactionOutcome.Of(inputs.Count, result);
    }

    private void RetryLeftoverDeletes()
    {
        if (_leftoverInputs.Count == 0)
        {
            return;
        }
        var (left, _) = Merger.DeleteInputs(_options.Files, _directory, _leftoverInputs);
        _leftoverInputs.Clear();
        _leftoverInputs.AddRange(left);
    }

    /// <summary>Removes expired keys from memory (the active sweep); returns how many.</summary>
    public int SweepExpired()
    {
        ThrowIfDisposed();
        var expired = _index.SweepExpired(Now);
        foreach (var key in expired)
        {
            _cache.Remove(Encoding.UTF8.GetString(key));
        }
        return expired.Count;
    }

    /// <summary>Current counters.</summary>
    public PartitionStats GetStats() => _index.Describe(0).WithRecovery(LastRecovery) with
    {
        Puts = _puts,
        Gets = _gets,
        Deletes = _deletes,
        Fsyncs = _log.SyncCount,
        Compactions = _compactions,
        CacheHits = _cache.Hits,
        CacheMisses = _cache.Misses,
        CacheEntries = _cache.Count,
        CacheBytes = _cache.Bytes,
        DirtyBytes = _writeBack?.DirtyBytes ?? 0,
        DirtyKeys = _writeBack?.Count ?? 0,
        ReadOnly = _failure is not null,
        FailureReason = _failure?.Message,
    };

    /// <summary>Flushes write-back entries and buffers, seals the active segment, releases the lock.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        try
        {
            FlushWriteBack();
            _log.Dispose();
        }
        finally
        {
            _disposed = true;
            _index.Dispose();
            _lock.Dispose();
        }
    }

    /// <summary>
    /// Test hook: drops the store as a crash would. Buffered (unflushed) bytes and
    /// write-back entries are lost; bytes already handed to the OS stay; the active segment
    /// keeps its preallocated zero tail. Then releases the lock.
    /// </summary>
    internal void SimulateCrash()
    {
        _disposed = true;
        _log.Abandon();
        _index.Dispose();
        _lock.Dispose();
    }

    // ---------------------------------------------------------------- helpers

    private void RollIfNeeded(long recordBytes)
    {
        if (_log.NeedsRoll(recordBytes))
        {
            Roll(_options.AutoCompact);
        }
    }

    private void Roll(bool autoCompact)
    {
        SealedSegment sealedSegment;
        try
        {
            sealedSegment = _log.Roll();
        }
        catch (Exception e) when (Poisons(e))
        {
            throw;
        }
        _index.Sealed(sealedSegment.Id, sealedSegment.Length);
        _index.StartActive(_log.Writer.Segment);
        if (autoCompact)
        {
            SweepExpired(); // expired records count as stale only once they leave the key directory
            if (_index.ShouldCompact(_options.Compaction))
            {
                CompactSealed(null);
            }
        }
    }

    /// <summary>Checks the key (<see cref="WriteRules.CheckKey(string?, int, out int)"/>) and encodes it into a reused buffer.</summary>
    private ReadOnlySpan<byte> EncodeKey(string key)
    {
        Throw(WriteRules.CheckKey(key, _limits.MaxKeyBytes, out int count));
        if (count > _keyBuffer.Length)
        {
            _keyBuffer = new byte[Math.Max(count, _keyBuffer.Length * 2)];
        }
        return _keyBuffer.AsSpan(0, KeyRules.Utf8.GetBytes(key, _keyBuffer));
    }

    private static void Throw(Refusal? refusal)
    {
        if (refusal is { } r)
        {
            throw r.ToException();
        }
    }

    private void ThrowIfDisposed()
    {
        if (_disposed)
        {
            throw new StoreClosedException("The store is closed.");
        }
        if (_failure is not null)
        {
            throw new StoreClosedException($"The store failed earlier and refuses further operations until it is reopened: {_failure.Message}", _failure);
        }
    }

    /// <summary>
    /// Exception filter of every file operation: an I/O error poisons the store. After a failed
    /// write or fsync the OS may have dropped the pages, and a later fsync would report them
    /// durable ("fsyncgate"); reopening recovers from what is really on disk. Returns true for
    /// the errors it records, so <c>catch (Exception e) when (Poisons(e)) { throw; }</c>
    /// rethrows them unchanged (and allocates nothing on the hot path).
    /// </summary>
    private bool Poisons(Exception e)
    {
        if (e is IOException or UnauthorizedAccessException)
        {
            _failure = e;
            return true;
        }
        return false;
    }
}
