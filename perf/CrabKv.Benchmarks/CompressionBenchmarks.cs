using BenchmarkDotNet.Attributes;
using CrabKv.Storage;

namespace CrabKv.Benchmarks;

/// <summary>
/// Row 5, a pair: put + get of JSON-like ~1 KiB values with compression on (Snappy,
/// CompressionMinValueBytes at its default of 256) and off. One operation = one put of the
/// next key followed by one get of a random key written earlier in the iteration (seeded),
/// read cache off so the get decodes (and decompresses) from the segment. Fresh store per
/// iteration.
/// </summary>
[Config(typeof(FreshStoreConfig))]
public class CompressionBenchmarks
{
    public const int Ops = 200_000;

    private string[] _keys = [];
    private byte[][] _values = [];
    private string? _root;
    private string? _directory;
    private EmbeddedStore? _store;
    private int _iteration;

    [Params(true, false)]
    public bool Compression { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _keys = BenchData.Keys(Ops);
        _values = BenchData.JsonValues(256);
        _root = BenchData.NewTempDirectory("compression");
        BenchData.Quiesce();
    }

    [IterationSetup]
    public void OpenFreshStore()
    {
        _directory = Path.Combine(_root!, $"it-{_iteration++:D4}");
        _store = EmbeddedStore.Open(_directory, new StoreOptions { Compression = Compression, ReadCacheEntries = 0 });
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

    [Benchmark(OperationsPerInvoke = Ops, Description = "put + get, ~1 KiB JSON values")]
    public long PutGetJson()
    {
        var store = _store!;
        var keys = _keys;
        var values = _values;
        var random = new Random(42);
        long bytes = 0;
        for (var i = 0; i < Ops; i++)
        {
            store.Put(keys[i], values[i & 255]);
            var j = random.Next(i + 1);
            if (!store.TryGet(keys[j], out var value) || value.Length != values[j & 255].Length)
            {
                throw new InvalidOperationException("put+get read back the wrong value");
            }
            bytes += value.Length;
        }
        return bytes;
    }
}
