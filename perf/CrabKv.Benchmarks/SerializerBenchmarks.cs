using Akka.Actor;
using Akka.Configuration;
using Akka.Serialization;
using BenchmarkDotNet.Attributes;
using CrabKv.Actors;
using CrabKv.Actors.Serialization;

namespace CrabKv.Benchmarks;

/// <summary>
/// The wire format: one serialize + deserialize of a Put and of a GetResult (12-byte key,
/// 100-byte value, as in the engine rows) with the CrabKv serializer, beside Akka's default
/// Newtonsoft JSON serializer for the same messages in the same run — what a data-path
/// message would cost if it fell back to the default. The payload sizes are printed in
/// GlobalSetup ("// payload").
/// </summary>
[Config(typeof(SteadyConfig))]
public class SerializerBenchmarks
{
    private ActorSystem? _system;
    private Serializer _crabkv = null!;
    private NewtonSoftJsonSerializer _json = null!;
    private Put _put = null!;
    private GetResult _getResult = null!;

    [GlobalSetup]
    public void Setup()
    {
        var config = ConfigurationFactory.ParseString("akka.loglevel = WARNING").WithFallback(CrabKvSettings.DefaultConfig());
        _system = ActorSystem.Create("serializer-bench", config);
        var value = BenchData.Value();
        _put = new Put(BenchData.Key(42), value, null, 42);
        _getResult = new GetResult(BenchData.Key(42), true, value, 42);
        _crabkv = _system.Serialization.FindSerializerFor(_put);
        if (_crabkv is not CrabKvSerializer)
        {
            throw new InvalidOperationException($"Put is bound to {_crabkv.GetType().Name}, not the CrabKv serializer.");
        }
        _json = new NewtonSoftJsonSerializer((ExtendedActorSystem)_system);
        Console.WriteLine($"// payload Put: crabkv {_crabkv.ToBinary(_put).Length} B, json {_json.ToBinary(_put).Length} B; " +
            $"GetResult: crabkv {_crabkv.ToBinary(_getResult).Length} B, json {_json.ToBinary(_getResult).Length} B");
    }

    [GlobalCleanup]
    public void Cleanup() => _system?.Terminate().Wait();

    [Benchmark(Description = "serializer: Put 100 B round trip, crabkv")]
    public object PutCrabKv() => RoundTrip(_crabkv, _put);

    [Benchmark(Description = "serializer: Put 100 B round trip, json")]
    public object PutJson() => _json.FromBinary(_json.ToBinary(_put), typeof(Put));

    [Benchmark(Description = "serializer: GetResult 100 B round trip, crabkv")]
    public object GetResultCrabKv() => RoundTrip(_crabkv, _getResult);

    [Benchmark(Description = "serializer: GetResult 100 B round trip, json")]
    public object GetResultJson() => _json.FromBinary(_json.ToBinary(_getResult), typeof(GetResult));

    private static object RoundTrip(Serializer serializer, object message)
    {
        var manifest = ((SerializerWithStringManifest)serializer).Manifest(message);
        return ((SerializerWithStringManifest)serializer).FromBinary(serializer.ToBinary(message), manifest);
    }
}
