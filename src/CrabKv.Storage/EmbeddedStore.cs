using System.Text;
using CrabKv.Storage.Caches;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Format;
using CrabKv.Storage.Index;
using CrabKv.Storage.Recovery;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage;

/// <summary>One operation of a batch: a put (with optional TTL) or, with a null value, a delete.</summary>
public sealed record BatchOperation(string Key, byte[]? Value, TimeSpan? Ttl = null)
{
    /// <summary>A put.</summary>
    public static BatchOperation Put(string key, byte[] value, TimeSpan? ttl = null) => new(key, value, ttl);

    /// <summary>A delete.</summary>
    public static BatchOperation Delete(string key) => new(key, null);
}

/// <summary>Counters and sizes of a store.</summary>
public sealed record StoreStats(
    int Keys, int Segments, long TotalBytes, long StaleBytes, long Syncs, long Compactions,
    long CacheHits, long CacheMisses, long DirtyBytes, long KeyDirectoryBytes, SegmentId ActiveSegment);

/// <summary>What one compaction did.</summary>
public sealed record CompactionOutcome(int InputSegments, int OutputSegments, long BytesBefore, long BytesAfter, long RecordsDropped, TimeSpan Duration);

/// <summary>
/// The storage engine as one object: open / put / get / delete / batch / flush / sync /
/// compact / dispose over a partition directory. <b>Not thread safe</b>: exactly one thread
/// (or one actor) may use an instance. Writes go to an in-memory buffer; <see cref="Flush"/>
/// hands them to the OS and <see cref="Sync"/> makes them durable — the caller picks the
/// policy. Used directly by tests and benchmarks; the actor layer composes the same parts.
/// </summary>
public sealed class EmbeddedStore : IDisposable
{
    private readonly string _directory;
    private readonly StoreOptions _options;
    private readonly DirectoryLock _lock;
    private readonly KeyDirectory _keys;
    private readonly SegmentUsage _usage;
    private readonly SortedDictionary<SegmentId, Segment> _sealed;
    private readonly LruCache _cache;
    private readonly WriteBackBuffer? _writeBack;
    private SegmentWriter _writer;
    private uint _nextSequence;
    private byte[] _keyBuffer = new byte[256];
    private byte[] _readBuffer = new byte[4096];
    private long _syncsOfSealedWriters;
    private long _compactions;
    private readonly List<Segment> _leftoverInputs = new(); // merged inputs whose deletion failed
    private bool _disposed;
    private Exception? _failure; // a write or fsync failed: the store refuses everything until reopened

    private EmbeddedStore(string directory, StoreOptions options, DirectoryLock dirLock, RecoveredState state)
    {
        _directory = directory;
        _options = options;
        _lock = dirLock;
        _keys = state.KeyDirectory;
        _usage = state.Usage;
        _sealed = state.Segments;
        _nextSequence = state.NextSequence;
        LastRecovery = state.Report;
        _cache = new LruCache(options.ReadCacheEntries, options.ReadCacheBytes);
        _writeBack = options.WriteBack ? new WriteBackBuffer(Math.Min(options.MaxDirtyBytes, options.MaxSegmentBytes - FormatConstants.FileHeaderSize)) : null;
        _writer = NewWriter();
    }

    /// <summary>What open found (torn tail cut, hints used, …).</summary>
    public RecoveryReport LastRecovery { get; }

    /// <summary>The directory this store owns.</summary>
    public string Directory => _directory;

    /// <summary>Number of live keys on disk (buffered write-back entries not counted).</summary>
    public int Count => _keys.Count;

    /// <summary>The key directory (read it only; tests compare it across opens).</summary>
    public KeyDirectory KeyDirectory => _keys;

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
                foreach (var segment in state.Segments.Values)
                {
                    segment.Dispose();
                }
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
        CheckValue(value.Length);
        var expiry = ExpiryFor(ttl);
        if (_writeBack is not null && WriteBackBuffer.CostOf(key, null) + value.Length <= _writeBack.MaxDirtyBytes)
        {
            BufferWrite(key, value.ToArray(), expiry);
            return;
        }
        // Write-through, or a write-back entry too large to ever buffer: earlier buffered
        // writes go first, so the order of writes is kept.
        if (_writeBack is not null)
        {
            FlushWriteBack();
        }
        var (flags, stored) = Prepare(value);
        RollIfNeeded(RecordCodec.SizeOf(keyBytes.Length, stored.Length));
        long offset;
        try
        {
            offset = _writer.Append(flags, expiry, keyBytes, stored);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _failure = e;
            throw;
        }
        Index(keyBytes, new KeyLocation(_writer.Id, (uint)offset, (uint)RecordCodec.SizeOf(keyBytes.Length, stored.Length), expiry));
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
        if (_writeBack is not null)
        {
            if (existed)
            {
                BufferWrite(key, null, 0);
            }
            return existed;
        }
        if (!_keys.TryGet(keyBytes, out _))
        {
            return existed;
        }
        RollIfNeeded(RecordCodec.SizeOf(keyBytes.Length, 0));
        try
        {
            _writer.Append(RecordFlags.Tombstone, 0, keyBytes, default);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _failure = e;
            throw;
        }
        _usage.AddRecord(_writer.Id, RecordCodec.SizeOf(keyBytes.Length, 0), live: false);
        if (_keys.Remove(keyBytes, out var prev))
        {
            _usage.Kill(prev.Segment, prev.Size);
        }
        _cache.Remove(key);
        return existed;
    }

    /// <summary>
    /// Applies puts and deletes atomically: after any crash either all of them are visible or
    /// none. Every operation is validated before anything is written.
    /// </summary>
    public void PutBatch(IReadOnlyList<BatchOperation> operations)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(operations);
        if (operations.Count == 0)
        {
            return;
        }
        var keys = new byte[operations.Count][];
        var expiries = new long[operations.Count];
        for (var i = 0; i < operations.Count; i++)
        {
            var op = operations[i] ?? throw new ArgumentException($"Batch operation {i} is null.", nameof(operations));
            keys[i] = EncodeKey(op.Key).ToArray();
            if (op.Value is not null)
            {
                CheckValue(op.Value.Length);
                expiries[i] = ExpiryFor(op.Ttl);
            }
        }
        if (_writeBack is not null)
        {
            long cost = 0;
            foreach (var op in operations)
            {
                cost += WriteBackBuffer.CostOf(op.Key, op.Value);
            }
            if (cost <= _writeBack.MaxDirtyBytes)
            {
                // The batch must reach the log inside one flush (one atomic batch): make room
                // for all of it first, then buffer it whole. Values are copied: the caller may reuse its arrays.
                if (_writeBack.DirtyBytes + cost > _writeBack.MaxDirtyBytes)
                {
                    FlushWriteBack();
                }
                for (var i = 0; i < operations.Count; i++)
                {
                    var op = operations[i];
                    _writeBack.Offer(op.Key, op.Value?.ToArray(), expiries[i]);
                    _cache.Remove(op.Key);
                }
                return;
            }
            FlushWriteBack(); // too large to buffer: written through, after what is buffered
        }
        var stored = new (RecordFlags Flags, byte[] Value)[operations.Count];
        long total = 0;
        for (var i = 0; i < operations.Count; i++)
        {
            var op = operations[i];
            stored[i] = op.Value is null ? (RecordFlags.Tombstone, []) : PrepareArray(op.Value);
            total += RecordCodec.SizeOf(keys[i].Length, stored[i].Value.Length);
        }
        AppendBatch(keys, stored, expiries, total);
        foreach (var op in operations)
        {
            _cache.Remove(op.Key);
        }
    }

    private void AppendBatch(byte[][] keys, (RecordFlags Flags, byte[] Value)[] stored, long[] expiries, long totalBytes)
    {
        if (totalBytes > _options.MaxSegmentBytes - FormatConstants.FileHeaderSize)
        {
            // A batch is never split across segments: it must fit one (FORMAT.md section 4).
            throw new ValueTooLargeException($"The batch is {totalBytes} bytes of records; one batch must fit one segment (MaxSegmentBytes = {_options.MaxSegmentBytes}). Nothing was written.");
        }
        RollIfNeeded(totalBytes);
        var locations = new KeyLocation[keys.Length];
        Io(() =>
        {
            for (var i = 0; i < keys.Length; i++)
            {
                var flags = stored[i].Flags | RecordFlags.InBatch | (i == keys.Length - 1 ? RecordFlags.BatchEnd : 0);
                var offset = _writer.Append(flags, expiries[i], keys[i], stored[i].Value);
                locations[i] = new KeyLocation(_writer.Id, (uint)offset, (uint)RecordCodec.SizeOf(keys[i].Length, stored[i].Value.Length), expiries[i],
                    (stored[i].Flags & RecordFlags.Tombstone) != 0);
            }
        });
        for (var i = 0; i < keys.Length; i++)
        {
            if (locations[i].Tombstone)
            {
                _usage.AddRecord(_writer.Id, locations[i].Size, live: false);
                if (_keys.Remove(keys[i], out var prev))
                {
                    _usage.Kill(prev.Segment, prev.Size);
                }
            }
            else
            {
                Index(keys[i], locations[i]);
            }
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
        Io(_writer.Flush);
    }

    /// <summary><see cref="Flush"/>, then fsync: everything written so far is durable.</summary>
    public void Sync()
    {
        Flush();
        Io(_writer.Sync);
    }

    private void FlushWriteBack()
    {
        if (_writeBack is null || _writeBack.Count == 0)
        {
            return;
        }
        var dirty = _writeBack.Drain();
        var keys = new List<byte[]>(dirty.Count);
        var stored = new List<(RecordFlags, byte[])>(dirty.Count);
        var expiries = new List<long>(dirty.Count);
        long total = 0;
        foreach (var (key, entry) in dirty)
        {
            var kb = Encoding.UTF8.GetBytes(key);
            if (entry.IsDelete && !_keys.TryGet(kb, out _))
            {
                continue; // nothing on disk to hide
            }
            var s = entry.IsDelete ? (RecordFlags.Tombstone, Array.Empty<byte>()) : PrepareArray(entry.Value!);
            keys.Add(kb);
            stored.Add(s);
            expiries.Add(entry.Expiry);
            total += RecordCodec.SizeOf(kb.Length, s.Item2.Length);
        }
        if (keys.Count > 0)
        {
            AppendBatch(keys.ToArray(), stored.ToArray(), expiries.ToArray(), total);
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
        var now = Now;
        if (_writeBack is not null && _writeBack.TryGet(key, out var dirty))
        {
            if (dirty.IsDelete || (dirty.Expiry != 0 && dirty.Expiry <= now))
            {
                value = [];
                return false;
            }
            value = dirty.Value!.ToArray();
            return true;
        }
        if (_cache.TryGet(key, now, out var cached))
        {
            value = cached.ToArray(); // the cache keeps its own array; callers may change theirs
            return true;
        }
        var keyBytes = EncodeKey(key);
        if (!_keys.TryGet(keyBytes, out var loc))
        {
            value = [];
            return false;
        }
        if (loc.IsExpiredAt(now))
        {
            if (_keys.Remove(keyBytes, out var prev))
            {
                _usage.Kill(prev.Segment, prev.Size);
            }
            value = [];
            return false;
        }
        value = ReadValue(keyBytes, loc);
        if (_cache.MaxEntries > 0)
        {
            _cache.Put(key, value.ToArray(), loc.Expiry);
        }
        return true;
    }

    /// <summary>Reads a key's value, or null.</summary>
    public byte[]? Get(string key) => TryGet(key, out var v) ? v : null;

    /// <summary>Reads a key's value as a UTF-8 string, or null.</summary>
    public string? GetString(string key) => TryGet(key, out var v) ? Encoding.UTF8.GetString(v) : null;

    private bool ContainsLive(string key, ReadOnlySpan<byte> keyBytes)
    {
        var now = Now;
        if (_writeBack is not null && _writeBack.TryGet(key, out var dirty))
        {
            return !dirty.IsDelete && (dirty.Expiry == 0 || dirty.Expiry > now);
        }
        return _keys.TryGet(keyBytes, out var loc) && !loc.IsExpiredAt(now);
    }

    private byte[] ReadValue(ReadOnlySpan<byte> key, in KeyLocation loc)
    {
        if (_readBuffer.Length < loc.Size)
        {
            _readBuffer = new byte[Math.Max(loc.Size, _readBuffer.Length * 2)];
        }
        var span = _readBuffer.AsSpan(0, (int)loc.Size);
        Segment segment;
        int read;
        if (loc.Segment == _writer.Id)
        {
            segment = _writer.Segment;
            read = _writer.ReadAt(span, loc.Offset);
        }
        else
        {
            segment = _sealed[loc.Segment];
            read = segment.ReadAt(span, loc.Offset);
        }
        if (read != span.Length || !RecordCodec.TryReadHeader(span, out var h) || !RecordCodec.Verify(span, h)
            || !RecordCodec.KeyOf(span, h).SequenceEqual(key))
        {
            throw new CorruptSegmentException(segment.Path, loc.Offset, "record read for a get does not verify");
        }
        try
        {
            return RecordCodec.DecodeValue(span, h);
        }
        catch (InvalidDataException e)
        {
            throw new CorruptSegmentException(segment.Path, loc.Offset, e.Message);
        }
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
        if (_writer.Length > FormatConstants.FileHeaderSize)
        {
            Roll(autoCompact: false);
        }
        return CompactSealed(progress);
    }

    private CompactionOutcome CompactSealed(IProgress<MergeProgress>? progress)
    {
        var inputs = _sealed.Values.ToList();
        if (inputs.Count == 0 || (inputs.Count == 1 && inputs[0].Id.Sub > 0 && _usage.Of(inputs[0].Id) is var u && u.Total == u.Live && _leftoverInputs.Count == 0))
        {
            // Nothing to gain (and a merge would only burn a segment id).

            return new CompactionOutcome(0, 0, 0, 0, 0, TimeSpan.Zero);
        }
        var keys = _keys;
        RetryLeftoverDeletes();
        var result = Merger.Run(_options.Files, new MergeRequest(_directory, inputs, OlderSegmentsExist: _leftoverInputs.Count > 0, Now, _options.MaxSegmentBytes,
            (ReadOnlySpan<byte> k, in KeyLocation l) => keys.TryGet(k, out var cur) && cur.SameRecord(l)), progress);
        ApplyMerge(inputs, result);
        _compactions++;
        return new CompactionOutcome(inputs.Count, result.Outputs.Count, result.BytesBefore, result.BytesAfter, result.RecordsDropped, result.Duration);
    }

    private void ApplyMerge(List<Segment> inputs, MergeResult result)
    {
        Merger.ApplyRelocations(_keys, _usage, inputs.Select(s => s.Id), result);
        foreach (var s in inputs)
        {
            _sealed.Remove(s.Id);
        }
        foreach (var o in result.Outputs)
        {
            _sealed.Add(o.Id, o);
        }
        var (left, error) = Merger.DeleteInputs(_options.Files, _directory, inputs);
        if (error is not null)
        {
            _leftoverInputs.AddRange(left);
            _options.Log?.Invoke($"Deleting merged segments failed ({error.Message}); {left.Count} kept on disk, retried at the next compaction.");
        }
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
        var expired = _keys.RemoveExpired(Now);
        foreach (var (key, loc) in expired)
        {
            _usage.Kill(loc.Segment, loc.Size);
            _cache.Remove(Encoding.UTF8.GetString(key));
        }
        return expired.Count;
    }

    /// <summary>Current counters.</summary>
    public StoreStats GetStats()
    {
        var active = _writer.Id;
        var (total, stale) = _usage.Sum(_ => true);
        return new StoreStats(_keys.Count, _sealed.Count + 1, total, stale, _syncsOfSealedWriters + _writer.SyncCount, _compactions,
            _cache.Hits, _cache.Misses, _writeBack?.DirtyBytes ?? 0, _keys.AllocatedBytes, active);
    }

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
            var empty = _writer.Length == FormatConstants.FileHeaderSize;
            var path = _writer.Segment.Path;
            _writer.Dispose();
            if (empty)
            {
                _options.Files.Delete(path); // an active segment that never got a record is not kept
            }
        }
        finally
        {
            _disposed = true;
            foreach (var s in _sealed.Values)
            {
                s.Dispose();
            }
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
        _writer.Segment.Dispose();
        foreach (var s in _sealed.Values)
        {
            s.Dispose();
        }
        _lock.Dispose();
    }

    // ---------------------------------------------------------------- helpers

    private SegmentWriter NewWriter()
    {
        var id = SegmentId.From(_nextSequence, 0);
        _nextSequence++;
        var prealloc = _options.PreallocateSegments ? Math.Min(_options.MaxSegmentBytes, 256L << 20) : 0;
        var w = SegmentWriter.Create(_options.Files, _directory, id, _options.WriteBufferBytes, prealloc);
        return w;
    }

    private void RollIfNeeded(long recordBytes)
    {
        if (_writer.Length + recordBytes > _options.MaxSegmentBytes && _writer.Length > FormatConstants.FileHeaderSize)
        {
            Roll(_options.AutoCompact);
        }
    }

    private void Roll(bool autoCompact)
    {
        // The next segment is created first: if that fails, the active one is untouched.
        var next = NewWriter();
        Io(() =>
        {
            var sealedSegment = _writer.Seal();
            _syncsOfSealedWriters += _writer.SyncCount;
            _sealed.Add(sealedSegment.Id, sealedSegment);
        });
        _writer = next;
        if (autoCompact)
        {
            SweepExpired(); // expired records count as stale only once they leave the key directory

            var active = _writer.Id;
            var (total, stale) = _usage.Sum(id => id != active);
            if (CompactionPolicy.ShouldCompact(_options.Compaction, total, stale))
            {
                CompactSealed(null);
            }
        }
    }

    private void Index(ReadOnlySpan<byte> key, in KeyLocation location)
    {
        _usage.AddRecord(location.Segment, location.Size, live: true);
        if (_keys.Set(key, location, out var prev))
        {
            _usage.Kill(prev.Segment, prev.Size);
        }
    }

    private ReadOnlySpan<byte> EncodeKey(string key)
    {
        if (string.IsNullOrEmpty(key))
        {
            throw new InvalidKeyException(KeyRules.EmptyMessage);
        }
        var max = Encoding.UTF8.GetMaxByteCount(key.Length);
        if (max > _keyBuffer.Length)
        {
            CheckKeyLength(KeyRules.ByteCount(key)); // too long keys are refused before the buffer grows
            _keyBuffer = new byte[Math.Max(max, _keyBuffer.Length * 2)];
        }
        int n;
        try
        {
            n = KeyRules.Utf8.GetBytes(key, _keyBuffer);
        }
        catch (EncoderFallbackException)
        {
            throw new InvalidKeyException(KeyRules.NotTextMessage);
        }
        CheckKeyLength(n);
        return _keyBuffer.AsSpan(0, n);
    }

    private void CheckKeyLength(int bytes)
    {
        if (bytes < 0)
        {
            throw new InvalidKeyException(KeyRules.NotTextMessage);
        }
        if (bytes > _options.MaxKeyBytes)
        {
            throw new InvalidKeyException(KeyRules.TooLargeMessage(bytes, "max-key-bytes", _options.MaxKeyBytes));
        }
    }

    private void CheckValue(int length)
    {
        if (length > _options.MaxValueBytes)
        {
            throw new ValueTooLargeException($"Value is {length} bytes; the limit (max-value-bytes) is {_options.MaxValueBytes}.");
        }
    }

    private long ExpiryFor(TimeSpan? ttl)
    {
        var t = ttl ?? _options.DefaultTtl;
        if (t is null)
        {
            return 0;
        }
        if (t.Value <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ttl), t, "TTL must be positive.");
        }
        return Now + (long)Math.Ceiling(t.Value.TotalMilliseconds);
    }

    private (RecordFlags, byte[]) PrepareArray(byte[] value)
    {
        if (_options.Compression)
        {
            var c = ValueCompression.TryCompress(value, _options.CompressionMinValueBytes);
            if (c is not null)
            {
                return (RecordFlags.Compressed, c);
            }
        }
        return (RecordFlags.None, value);
    }

    private PreparedValue Prepare(ReadOnlySpan<byte> value)
    {
        var compressed = _options.Compression ? ValueCompression.TryCompress(value, _options.CompressionMinValueBytes) : null;
        return compressed is null ? new PreparedValue(RecordFlags.None, value) : new PreparedValue(RecordFlags.Compressed, compressed);
    }

    private readonly ref struct PreparedValue(RecordFlags flags, ReadOnlySpan<byte> stored)
    {
        private readonly RecordFlags _flags = flags;
        private readonly ReadOnlySpan<byte> _stored = stored;

        public void Deconstruct(out RecordFlags f, out ReadOnlySpan<byte> s)
        {
            f = _flags;
            s = _stored;
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
    /// Runs file work; an I/O error poisons the store: after a failed write or fsync the OS
    /// may have dropped the pages, and a later fsync would report them durable ("fsyncgate").
    /// Reopening recovers from what is really on disk.
    /// </summary>
    private void Io(Action action)
    {
        try
        {
            action();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _failure = e;
            throw;
        }
    }
}
