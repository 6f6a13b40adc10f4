using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using CrabKv.Storage.Index;
using CrabKv.Storage.Segments;

namespace CrabKv.Benchmarks;

/// <summary>
/// `-- keydir`: memory of the key directory at 1,000,000 keys, measured with
/// GC.GetTotalMemory(true) before and after, next to a Dictionary&lt;string, (long, long, long)&gt;
/// holding the same keys (what a naive index would cost).
/// </summary>
internal static class KeyDirMeasurement
{
    public static int Run(string[] args)
    {
        var count = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : BenchData.MillionKeys;
        Console.WriteLine($"Key directory memory, {count:N0} keys like \"{BenchData.Key(123)}\" ({Encoding.UTF8.GetByteCount(BenchData.Key(123))} bytes of UTF-8 each)");
        Console.WriteLine($"Runtime {Environment.Version}, server GC {System.Runtime.GCSettings.IsServerGC}, 64-bit {Environment.Is64BitProcess}");
        Console.WriteLine();

        var (kd, kdBytes, kdKeyBytes, kdAllocated) = MeasureKeyDirectory(count, presize: false);
        Report("KeyDirectory (default capacity, grown)", count, kdBytes, kdKeyBytes, kdAllocated);
        var (kd2, kd2Bytes, kd2KeyBytes, kd2Allocated) = MeasureKeyDirectory(count, presize: true);
        Report($"KeyDirectory (capacity {count:N0})", count, kd2Bytes, kd2KeyBytes, kd2Allocated);

        var (dict, dictBytes) = MeasureDictionary(count);
        // The Dictionary's keys are UTF-16 strings; "excluding key bytes" subtracts the same
        // UTF-8 key bytes as for the key directory, so the two columns compare overheads.
        Report("Dictionary<string, (long, long, long)>", count, dictBytes, kdKeyBytes, null);

        GC.KeepAlive(kd);
        GC.KeepAlive(kd2);
        GC.KeepAlive(dict);
        return 0;
    }

    private static void Report(string what, int count, long bytes, long keyBytes, long? allocated)
    {
        Console.WriteLine(what);
        Console.WriteLine($"  managed heap growth       {bytes,15:N0} bytes  ({bytes / (1024.0 * 1024.0):N1} MiB)");
        Console.WriteLine($"  per key, total            {(double)bytes / count,15:N1} bytes");
        Console.WriteLine($"  per key, excluding key    {(double)(bytes - keyBytes) / count,15:N1} bytes  (key UTF-8 bytes: {keyBytes:N0})");
        if (allocated is not null)
        {
            Console.WriteLine($"  KeyDirectory.AllocatedBytes {allocated,13:N0} bytes  ({(double)allocated / count:N1} per key)");
        }
        Console.WriteLine();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (KeyDirectory, long Bytes, long KeyBytes, long Allocated) MeasureKeyDirectory(int count, bool presize)
    {
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var kd = presize ? new KeyDirectory(count) : new KeyDirectory();
        Span<byte> key = stackalloc byte[32];
        "key:"u8.CopyTo(key);
        for (var i = 0; i < count; i++)
        {
            i.TryFormat(key[4..], out var digits, "D8", CultureInfo.InvariantCulture);
            var location = new KeyLocation(new SegmentId((ulong)(i >> 16) + 1), (uint)i * 131u, 131u, 0);
            kd.Set(key[..(4 + digits)], location, out _);
        }
        var after = GC.GetTotalMemory(forceFullCollection: true);
        if (kd.Count != count)
        {
            throw new InvalidOperationException($"KeyDirectory holds {kd.Count} keys, expected {count}");
        }
        GC.KeepAlive(kd);
        return (kd, after - before, kd.KeyBytes, kd.AllocatedBytes);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (Dictionary<string, (long, long, long)>, long Bytes) MeasureDictionary(int count)
    {
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var d = new Dictionary<string, (long, long, long)>();
        for (var i = 0; i < count; i++)
        {
            d[BenchData.Key(i)] = ((long)(i >> 16) + 1, (long)i * 131, 131);
        }
        var after = GC.GetTotalMemory(forceFullCollection: true);
        GC.KeepAlive(d);
        return (d, after - before);
    }
}
