using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using CrabKv.Storage;

namespace CrabKv.Benchmarks;

/// <summary>
/// Row 4: random get (always a hit) over 1,000,000 keys of 100-byte values. The read cache
/// is off (ReadCacheEntries = 0), so every get takes the disk path: key directory lookup,
/// the record read in place through the segment's mapping (the OS page cache: the data set is
/// 131 MB), CRC check, copy. <see cref="FasterGetBenchmarks"/> is the same row for FASTER KV.
/// </summary>
[Config(typeof(SteadyConfig))]
public class GetBenchmarks
{
    public const int Ops = 1_000;

    private string[] _keys = [];
    private byte[][] _keyBytes = [];
    private readonly ArrayBufferWriter<byte> _value = new(4096);
    private string? _directory;
    private EmbeddedStore? _store;
    private Random _random = new(42);
    private long _bytesRead;

    [GlobalSetup]
    public void Setup()
    {
        _keys = BenchData.Keys(BenchData.MillionKeys);
        _keyBytes = _keys.Select(Encoding.UTF8.GetBytes).ToArray(); // as FasterGetBenchmarks keys FASTER
        var value = BenchData.Value();
        _directory = BenchData.NewTempDirectory("get");
        _store = EmbeddedStore.Open(_directory, new StoreOptions { ReadCacheEntries = 0 });
        foreach (var key in _keys)
        {
            _store.Put(key, value);
        }
        _store.Sync();
        _random = new Random(42);
        if (_store.Count != BenchData.MillionKeys || _store.Get(_keys[123_456]) is not { Length: BenchData.ValueBytes })
        {
            throw new InvalidOperationException("random-get setup: preload did not land");
        }
        BenchData.Quiesce();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _store?.Dispose();
        _store = null;
        BenchData.DeleteDirectory(_directory);
        GC.KeepAlive(_bytesRead);
    }

    [Benchmark(OperationsPerInvoke = Ops, Description = "random get (hit), 1M keys, no read cache")]
    public long RandomGet()
    {
        var store = _store!;
        var keys = _keys;
        var random = _random;
        long bytes = 0;
        for (var i = 0; i < Ops; i++)
        {
            if (!store.TryGet(keys[random.Next(keys.Length)], out var value))
            {
                throw new InvalidOperationException("random get missed");
            }
            bytes += value.Length;
        }
        _bytesRead += bytes;
        return bytes;
    }

    /// <summary>
    /// The same gets through the allocation-free get (<see cref="EmbeddedStore.TryGet(ReadOnlySpan{byte}, IBufferWriter{byte})"/>:
    /// the key as UTF-8 bytes, the value copied into one reused buffer), as
    /// <see cref="FasterGetBenchmarks"/> reads FASTER and the table's engine column reads the engine.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Ops, Description = "random get (hit), 1M keys, byte key into a reused buffer")]
    public long RandomGetBytes()
    {
        var store = _store!;
        var keys = _keyBytes;
        var random = _random;
        var value = _value;
        long bytes = 0;
        for (var i = 0; i < Ops; i++)
        {
            value.ResetWrittenCount();
            if (!store.TryGet(keys[random.Next(keys.Length)], value))
            {
                throw new InvalidOperationException("random get missed");
            }
            bytes += value.WrittenCount;
        }
        _bytesRead += bytes;
        return bytes;
    }
}
