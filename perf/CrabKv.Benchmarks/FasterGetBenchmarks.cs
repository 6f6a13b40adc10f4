using System.Text;
using BenchmarkDotNet.Attributes;
using FASTER.core;

namespace CrabKv.Benchmarks;

/// <summary>
/// The peer of row 4 in the same run: FASTER KV (<c>FasterKV&lt;SpanByte, SpanByte&gt;</c>),
/// the same 1,000,000 keys and 100-byte values, random get (always a hit) from one thread.
/// The log's in-memory part holds every record (as the OS page cache holds CrabKv's 131 MB),
/// so no get goes to its device. Each get returns a new <c>byte[]</c>
/// (<see cref="SpanByteFunctions_ByteArrayOutput{Context}"/>), as CrabKv's does.
/// </summary>
[Config(typeof(SteadyConfig))]
public class FasterGetBenchmarks
{
    public const int Ops = GetBenchmarks.Ops;

    private byte[][] _keys = [];
    private string? _directory;
    private IDevice? _device;
    private FasterKV<SpanByte, SpanByte>? _store;
    private ClientSession<SpanByte, SpanByte, SpanByte, byte[], Empty, IFunctions<SpanByte, SpanByte, SpanByte, byte[], Empty>>? _session;
    private Random _random = new(42);
    private long _bytesRead;

    [GlobalSetup]
    public unsafe void Setup()
    {
        _keys = BenchData.Keys(BenchData.MillionKeys).Select(Encoding.UTF8.GetBytes).ToArray();
        var value = BenchData.Value();
        _directory = BenchData.NewTempDirectory("faster-get");
        _device = Devices.CreateLogDevice(Path.Combine(_directory, "hlog.log"), deleteOnClose: true);
        _store = new FasterKV<SpanByte, SpanByte>(1L << 21, new LogSettings
        {
            LogDevice = _device,
            MemorySizeBits = 28, // 256 MiB in memory: the whole data set (about 150 MB with record headers)
            PageSizeBits = 22,
        });
        _session = _store.NewSession<SpanByte, byte[], Empty>(new SpanByteFunctions_ByteArrayOutput<Empty>());
        fixed (byte* v = value)
        {
            var valueSpan = SpanByte.FromFixedSpan(new ReadOnlySpan<byte>(v, value.Length));
            foreach (var key in _keys)
            {
                fixed (byte* k = key)
                {
                    var keySpan = SpanByte.FromFixedSpan(new ReadOnlySpan<byte>(k, key.Length));
                    _session.Upsert(ref keySpan, ref valueSpan);
                }
            }
        }
        _random = new Random(42);
        if (Get(_keys[123_456]) is not { Length: BenchData.ValueBytes })
        {
            throw new InvalidOperationException("FASTER random-get setup: preload did not land");
        }
        BenchData.Quiesce();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _session?.Dispose();
        _store?.Dispose();
        _device?.Dispose();
        BenchData.DeleteDirectory(_directory);
        GC.KeepAlive(_bytesRead);
    }

    private unsafe byte[]? Get(byte[] key)
    {
        fixed (byte* k = key)
        {
            var keySpan = SpanByte.FromFixedSpan(new ReadOnlySpan<byte>(k, key.Length));
            byte[] output = null!;
            var session = _session!;
            var status = session.Read(ref keySpan, ref output);
            if (status.IsPending)
            {
                session.CompletePendingWithOutputs(out var outputs, wait: true);
                using (outputs)
                {
                    while (outputs.Next())
                    {
                        output = outputs.Current.Output;
                        status = outputs.Current.Status;
                    }
                }
            }
            return status.Found ? output : null;
        }
    }

    [Benchmark(OperationsPerInvoke = Ops, Description = "FASTER KV: random get (hit), 1M keys")]
    public long RandomGet()
    {
        var keys = _keys;
        var random = _random;
        long bytes = 0;
        for (var i = 0; i < Ops; i++)
        {
            if (Get(keys[random.Next(keys.Length)]) is not { } value)
            {
                throw new InvalidOperationException("FASTER random get missed");
            }
            bytes += value.Length;
        }
        _bytesRead += bytes;
        return bytes;
    }
}
