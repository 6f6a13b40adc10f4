using BenchmarkDotNet.Attributes;

namespace CrabKv.Benchmarks;

/// <summary>
/// A cheap, stable reference row for ratios: the same 1,000,000 keys and 100-byte value put
/// into an in-memory <see cref="Dictionary{TKey, TValue}"/>, starting empty (like the fresh
/// stores of the put rows), four times per iteration so an iteration lasts well over 100 ms. The machine is noisy; comparing each row to this one in the same run
/// helps tell a real change from a slow day. Program prints every row's ratio to it.
/// </summary>
[Config(typeof(FreshStoreConfig))]
public class BaselineBenchmarks
{
    public const int Keys = 1_000_000;
    public const int Rounds = 4;
    public const int Ops = Keys * Rounds;

    private string[] _keys = [];
    private byte[] _value = [];

    [GlobalSetup]
    public void Setup()
    {
        _keys = BenchData.Keys(Keys);
        _value = BenchData.Value();
        BenchData.Quiesce();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Ops, Description = "baseline: Dictionary<string, byte[]> put")]
    public int DictionaryPut()
    {
        var keys = _keys;
        var value = _value;
        var count = 0;
        for (var round = 0; round < Rounds; round++)
        {
            var d = new Dictionary<string, byte[]>();
            for (var i = 0; i < keys.Length; i++)
            {
                d[keys[i]] = value;
            }
            count += d.Count;
        }
        return count;
    }
}
