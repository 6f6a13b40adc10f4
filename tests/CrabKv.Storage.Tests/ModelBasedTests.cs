using System.Text;
using CrabKv.Storage.Compaction;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>
/// Seeded random sequences of every store operation, checked after each step against an
/// in-memory model (key → value, absolute expiry). A failure names the seed, the step and
/// the last operations, so it can be replayed exactly.
/// </summary>
public sealed class ModelBasedTests
{
    private const int Steps = 1500;

    private static StoreOptions BaseOptions(ManualClock clock) => new()
    {
        Clock = clock,
        MaxSegmentBytes = 4096,
        WriteBufferBytes = 4096,
        Compression = false,
    };

    [Theory]
    [InlineData(1001)]
    [InlineData(2002)]
    [InlineData(3003)]
    public void RandomOperationsMatchTheModel(int seed)
    {
        var result = ModelRun.Execute(seed, Steps, BaseOptions);
        Assert.True(result.SegmentsRolled > 10, $"seed {seed}: segments should roll with MaxSegmentBytes 4096 (rolled {result.SegmentsRolled})");
        Assert.True(result.Reopens > 5, $"seed {seed}: expected several reopens, got {result.Reopens}");
    }

    [Theory]
    [InlineData(4004)]
    public void RandomOperationsWithCompressionMatchTheModel(int seed)
    {
        var result = ModelRun.Execute(seed, Steps, c => BaseOptions(c) with { Compression = true, CompressionMinValueBytes = 8 });
        Assert.True(result.CompressedRecordsSeen > 0, $"seed {seed}: no record was stored compressed; the variant tests nothing");
    }

    [Theory]
    [InlineData(5005)]
    public void RandomOperationsInWriteBackModeMatchTheModel(int seed)
    {
        var result = ModelRun.Execute(seed, Steps, c => BaseOptions(c) with { WriteBack = true, MaxDirtyBytes = 8192 });
        Assert.True(result.Reopens > 5, $"seed {seed}: expected several reopens, got {result.Reopens}");
    }

    [Theory]
    [InlineData(6006)]
    public void RandomOperationsWithEagerAutoCompactionMatchTheModel(int seed)
    {
        var result = ModelRun.Execute(seed, Steps, c => BaseOptions(c) with
        {
            AutoCompact = true,
            Compaction = new CompactionThresholds(StaleRatio: 0.2, MinTotalBytes: 0, MaxStaleBytes: 8192),
        }, explicitCompaction: false);
        Assert.True(result.Compactions > 5, $"seed {seed}: auto-compaction should have run several times (ran {result.Compactions})");
    }

    /// <summary>One seeded run: the store, the model, the clock and a log of recent steps.</summary>
    private sealed class ModelRun : IDisposable
    {
        private const int Keyspace = 40;
        private const int MaxValueLength = 600;

        private readonly int _seed;
        private readonly Random _rng;
        private readonly ManualClock _clock = new();
        private readonly TempDirectory _dir = new("model");
        private readonly StoreOptions _options;
        private readonly bool _explicitCompaction;
        private readonly string[] _keys;
        private readonly Dictionary<string, (byte[] Value, long Expiry)> _model = new(StringComparer.Ordinal);
        private readonly Queue<string> _recent = new();
        private EmbeddedStore _store;
        private int _step;
        private long _lastActiveSequence;

        public int Reopens { get; private set; }
        public long Compactions { get; private set; }
        public int SegmentsRolled { get; private set; }
        public long CompressedRecordsSeen { get; private set; }

        private ModelRun(int seed, Func<ManualClock, StoreOptions> options, bool explicitCompaction)
        {
            _seed = seed;
            _rng = new Random(seed);
            _options = options(_clock);
            _explicitCompaction = explicitCompaction;
            _keys = Enumerable.Range(0, Keyspace).Select(i => i % 10 == 7 ? $"ключ-{i}" : $"k{i:D2}").ToArray();
            _store = EmbeddedStore.Open(_dir.Path, _options);
        }

        public static ModelRun Execute(int seed, int steps, Func<ManualClock, StoreOptions> options, bool explicitCompaction = true)
        {
            var run = new ModelRun(seed, options, explicitCompaction);
            var ok = false;
            try
            {
                for (run._step = 0; run._step < steps; run._step++)
                {
                    run.Step();
                    run.CheckDirectoryBeforeReads();
                    run.CheckReads();
                    run.CheckAfterReads();
                }
                run.Reopen(crash: false);
                run.CheckReads();
                run.Compactions += run._store.GetStats().Compactions;
                ok = true;
                return run;
            }
            finally
            {
                run.Dispose(rethrow: ok);
            }
        }

        public void Dispose() => Dispose(rethrow: true);

        /// <summary>After a failed check the store may be unusable: do not let its Dispose hide the failure.</summary>
        private void Dispose(bool rethrow)
        {
            try
            {
                _store.Dispose();
            }
            catch (Exception) when (!rethrow)
            {
            }
            finally
            {
                _dir.Dispose();
            }
        }

        private long Now => _clock.UnixMilliseconds;

        private bool IsLive(string key) => _model.TryGetValue(key, out var e) && (e.Expiry == 0 || e.Expiry > Now);

        private int LiveCount => _model.Keys.Count(IsLive);

        private bool Dirty => _store.GetStats().DirtyBytes > 0;

        private void Note(string what)
        {
            _recent.Enqueue($"#{_step} {what}");
            if (_recent.Count > 25)
            {
                _recent.Dequeue();
            }
        }

        private void Fail(string message) =>
            Assert.Fail($"seed {_seed}, step {_step}: {message}\nrecent steps (oldest first):\n  {string.Join("\n  ", _recent)}");

        private string RandomKey() => _keys[_rng.Next(_keys.Length)];

        private byte[] RandomValue()
        {
            var length = _rng.Next(10) == 0 ? 0 : _rng.Next(MaxValueLength + 1);
            var value = new byte[length];
            if (_rng.Next(2) == 0)
            {
                // Compressible: a short pattern repeated.
                var pattern = Encoding.ASCII.GetBytes($"pattern-{_rng.Next(5)}-");
                for (var i = 0; i < length; i++)
                {
                    value[i] = pattern[i % pattern.Length];
                }
            }
            else
            {
                _rng.NextBytes(value);
            }
            return value;
        }

        private TimeSpan? MaybeTtl(int percent) => _rng.Next(100) < percent ? TimeSpan.FromMilliseconds(_rng.Next(1, 4001)) : null;

        private long ExpiryOf(TimeSpan? ttl) => ttl is null ? 0 : Now + (long)ttl.Value.TotalMilliseconds;

        private void Step()
        {
            var roll = _rng.Next(100);
            switch (roll)
            {
                case < 30:
                    Put(MaybeTtl(0));
                    break;
                case < 42:
                    Put(MaybeTtl(100));
                    break;
                case < 54:
                    Delete();
                    break;
                case < 65:
                    Batch();
                    break;
                case < 74:
                    var ms = _rng.Next(1, 2501);
                    _clock.AdvanceMilliseconds(ms);
                    Note($"advance clock {ms} ms (now {Now})");
                    break;
                case < 77:
                    if (_explicitCompaction)
                    {
                        Compact();
                    }
                    else
                    {
                        Put(null);
                    }
                    break;
                case < 80:
                    Reopen(crash: false);
                    break;
                case < 82:
                    Reopen(crash: true);
                    break;
                case < 88:
                    Sweep();
                    break;
                case < 95:
                    _store.Flush();
                    Note("flush");
                    break;
                default:
                    _store.Sync();
                    Note("sync");
                    break;
            }
            TrackRolls();
        }

        private void TrackRolls()
        {
            var seq = _store.GetStats().ActiveSegment.Sequence;
            if (seq != _lastActiveSequence)
            {
                SegmentsRolled++;
                _lastActiveSequence = seq;
            }
        }

        private void Put(TimeSpan? ttl)
        {
            var key = RandomKey();
            var value = RandomValue();
            Note($"put {key} ({value.Length} bytes){(ttl is null ? "" : $" ttl {ttl.Value.TotalMilliseconds} ms")}");
            _store.Put(key, value, ttl);
            _model[key] = (value, ExpiryOf(ttl));
        }

        private void Delete()
        {
            var key = RandomKey();
            var expected = IsLive(key);
            Note($"delete {key} (live in model: {expected})");
            var existed = _store.Delete(key);
            if (existed != expected)
            {
                Fail($"Delete({key}) returned {existed}, model says the key was {(expected ? "live" : "absent")}");
            }
            _model.Remove(key);
        }

        private void Batch()
        {
            var count = _rng.Next(1, 6);
            var ops = new List<BatchEntry>(count);
            for (var i = 0; i < count; i++)
            {
                var key = RandomKey();
                ops.Add(_rng.Next(3) == 0 ? BatchEntry.Delete(key) : BatchEntry.Put(key, RandomValue(), MaybeTtl(25)));
            }
            Note("batch [" + string.Join(", ", ops.Select(o => o.Value is null ? $"del {o.Key}" : $"put {o.Key} ({o.Value.Length} bytes{(o.Ttl is null ? "" : $", ttl {o.Ttl.Value.TotalMilliseconds} ms")})")) + "]");
            _store.PutBatch(ops);
            foreach (var op in ops)
            {
                if (op.Value is null)
                {
                    _model.Remove(op.Key);
                }
                else
                {
                    _model[op.Key] = (op.Value, ExpiryOf(op.Ttl));
                }
            }
        }

        private void Compact()
        {
            Note("compact");
            var outcome = _store.Compact();
            if (outcome.BytesAfter > outcome.BytesBefore)
            {
                Fail($"compaction grew the data: {outcome}");
            }
            var stats = _store.GetStats();
            if (stats.StaleBytes != 0)
            {
                Fail($"right after a full compaction no sealed byte can be stale, but StaleBytes = {stats.StaleBytes} ({stats})");
            }
            CheckSealedBytesMatchFiles("after compact");
            foreach (var data in Directory.EnumerateFiles(_dir.Path, "seg-*.data"))
            {
                if (Path.GetFileName(data) != stats.ActiveSegment.DataFileName
                    && !File.Exists(Path.ChangeExtension(data, ".hint")))
                {
                    Fail($"after compact, sealed segment '{Path.GetFileName(data)}' has no hint file");
                }
            }
        }

        private void Reopen(bool crash)
        {
            Note(crash ? "flush + simulated crash + open" : "dispose + open");
            Compactions += _store.GetStats().Compactions;
            if (crash)
            {
                _store.Flush();
                _store.SimulateCrash();
            }
            else
            {
                _store.Dispose();
            }
            _store = EmbeddedStore.Open(_dir.Path, _options);
            Reopens++;
            var report = _store.LastRecovery;
            if (report.TornTail is not null)
            {
                Fail($"a {(crash ? "crash after flush" : "clean close")} must not leave a torn tail, but open cut {report.TornTail}");
            }
            if (_store.Count != LiveCount)
            {
                Fail($"after open, Count = {_store.Count} but the model has {LiveCount} live keys");
            }
            CheckSealedBytesMatchFiles("after open");
            _lastActiveSequence = _store.GetStats().ActiveSegment.Sequence;
        }

        private void Sweep()
        {
            if (Dirty)
            {
                // Buffered (write-back) entries are not in the key directory yet; a plain sweep.
                var n = _store.SweepExpired();
                Note($"sweep (write-back dirty) removed {n}");
                return;
            }
            var before = _store.KeyDirectory.ToDictionary();
            var expectedRemoved = before.Count(kv => kv.Value.Expiry != 0 && kv.Value.Expiry <= Now);
            var removed = _store.SweepExpired();
            Note($"sweep removed {removed}");
            if (removed != expectedRemoved)
            {
                Fail($"SweepExpired returned {removed}; the key directory held {expectedRemoved} expired keys");
            }
            if (_store.Count != LiveCount)
            {
                Fail($"right after SweepExpired, Count = {_store.Count} but the model has {LiveCount} live keys");
            }
        }

        /// <summary>The key directory holds every live key with its expiry; anything else in it has expired.</summary>
        private void CheckDirectoryBeforeReads()
        {
            if (Dirty)
            {
                return;
            }
            var dir = _store.KeyDirectory.ToDictionary();
            foreach (var key in _keys)
            {
                var inDir = dir.TryGetValue(key, out var loc);
                if (IsLive(key))
                {
                    if (!inDir)
                    {
                        Fail($"live key '{key}' is missing from the key directory");
                    }
                    else if (loc.Expiry != _model[key].Expiry)
                    {
                        Fail($"key '{key}' has expiry {loc.Expiry} in the key directory, model says {_model[key].Expiry}");
                    }
                }
                else if (inDir && !loc.IsExpiredAt(Now))
                {
                    Fail($"key '{key}' is absent or expired in the model but the key directory holds an unexpired location {loc}");
                }
            }
            if (dir.Keys.Any(k => !_keys.Contains(k)))
            {
                Fail($"the key directory holds keys never written: {string.Join(", ", dir.Keys.Where(k => !_keys.Contains(k)))}");
            }
        }

        private void CheckReads()
        {
            foreach (var key in _keys)
            {
                var found = _store.TryGet(key, out var value);
                if (IsLive(key))
                {
                    if (!found)
                    {
                        Fail($"key '{key}' should read {_model[key].Value.Length} bytes (expiry {_model[key].Expiry}, now {Now}) but is absent");
                    }
                    else if (!value.AsSpan().SequenceEqual(_model[key].Value))
                    {
                        Fail($"key '{key}' reads {value.Length} bytes that differ from the model's {_model[key].Value.Length} bytes");
                    }
                }
                else if (found)
                {
                    Fail($"key '{key}' should be absent (model: {(_model.TryGetValue(key, out var e) ? $"expired at {e.Expiry}, now {Now}" : "deleted or never written")}) but reads {value.Length} bytes");
                }
            }
        }

        /// <summary>Reads drop expired keys lazily, so after reading every key the directory is exact.</summary>
        private void CheckAfterReads()
        {
            if (Dirty)
            {
                return;
            }
            if (_store.Count != LiveCount)
            {
                Fail($"after reading every key, Count = {_store.Count} but the model has {LiveCount} live keys");
            }
            var stats = _store.GetStats();
            long pointedAt = 0;
            foreach (var (_, loc) in _store.KeyDirectory.ToDictionary())
            {
                pointedAt += loc.Size;
            }
            if (stats.TotalBytes - stats.StaleBytes != pointedAt)
            {
                Fail($"live bytes (TotalBytes {stats.TotalBytes} - StaleBytes {stats.StaleBytes} = {stats.TotalBytes - stats.StaleBytes}) "
                    + $"differ from the sizes of the records the key directory points at ({pointedAt})");
            }
            if (_options.Compression)
            {
                // A stored record shorter than header + key + value means the value was compressed.
                foreach (var (key, loc) in _store.KeyDirectory.ToDictionary())
                {
                    if (loc.Size < 19 + Encoding.UTF8.GetByteCount(key) + _model[key].Value.Length)
                    {
                        CompressedRecordsSeen++;
                    }
                }
            }
        }

        /// <summary>TotalBytes counts exactly the record bytes of the sealed segment files (the active one is empty here).</summary>
        private void CheckSealedBytesMatchFiles(string when)
        {
            var stats = _store.GetStats();
            long onDisk = 0;
            foreach (var data in Directory.EnumerateFiles(_dir.Path, "seg-*.data"))
            {
                if (Path.GetFileName(data) != stats.ActiveSegment.DataFileName)
                {
                    onDisk += new FileInfo(data).Length - 16;
                }
            }
            if (stats.TotalBytes != onDisk)
            {
                Fail($"{when}: TotalBytes = {stats.TotalBytes} but the sealed segment files hold {onDisk} record bytes");
            }
        }
    }
}
