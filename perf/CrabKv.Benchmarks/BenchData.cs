using System.Runtime.InteropServices;
using System.Text;

namespace CrabKv.Benchmarks;

/// <summary>Keys, values and temporary directories shared by the benchmarks.</summary>
internal static partial class BenchData
{
    /// <summary>Keys preloaded by the 1M-key rows (random get, open).</summary>
    public const int MillionKeys = 1_000_000;

    /// <summary>Value size of every row except the compression pair.</summary>
    public const int ValueBytes = 100;

    /// <summary>Set (to anything) by <c>--quick</c>: fewer iterations, for a smoke run.</summary>
    public const string QuickVariable = "CRABKV_BENCH_QUICK";

    public static bool Quick => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(QuickVariable));

    /// <summary>Environment variable: preallocation step in bytes for the put benchmarks (unset: whole segment up front).</summary>
    public const string PreallocateStepVariable = "CRABKV_BENCH_PREALLOCATE_STEP";

    /// <summary>The step of <see cref="PreallocateStepVariable"/>, or null.</summary>
    public static long? PreallocateStep =>
        long.TryParse(Environment.GetEnvironmentVariable(PreallocateStepVariable), System.Globalization.CultureInfo.InvariantCulture, out var step) ? step : null;

    /// <summary>The key of index <paramref name="i"/>: <c>key:00000123</c> (12 ASCII bytes).</summary>
    public static string Key(int i) => "key:" + i.ToString("D8", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Keys 0 .. <paramref name="count"/>-1, formatted once so the loops time the engine, not string formatting.</summary>
    public static string[] Keys(int count)
    {
        var keys = new string[count];
        for (var i = 0; i < count; i++)
        {
            keys[i] = Key(i);
        }
        return keys;
    }

    /// <summary>A 100-byte value of seeded random bytes (incompressible; below the compression threshold anyway).</summary>
    public static byte[] Value(int seed = 7)
    {
        var value = new byte[ValueBytes];
        new Random(seed).NextBytes(value);
        return value;
    }

    /// <summary>
    /// <paramref name="count"/> distinct JSON documents of about 1 KiB (a user record with
    /// nested fields and some prose), deterministic for a seed.
    /// </summary>
    public static byte[][] JsonValues(int count, int seed = 11)
    {
        string[] words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
            "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango"];
        string[] cities = ["Lyon", "Porto", "Gdansk", "Tartu", "Bergen", "Ghent", "Turin", "Brno"];
        var rng = new Random(seed);
        var values = new byte[count][];
        var sb = new StringBuilder(1200);
        for (var i = 0; i < count; i++)
        {
            sb.Clear();
            var id = rng.Next(1_000_000);
            sb.Append("{\"id\":").Append(id)
              .Append(",\"name\":\"user-").Append(id).Append('"')
              .Append(",\"email\":\"user").Append(id).Append("@example.com\"")
              .Append(",\"active\":").Append(rng.Next(2) == 0 ? "true" : "false")
              .Append(",\"score\":").Append(rng.Next(100_000) / 100.0)
              .Append(",\"created\":\"2024-").Append(1 + rng.Next(12)).Append('-').Append(1 + rng.Next(28)).Append("T12:00:00Z\"")
              .Append(",\"address\":{\"street\":\"").Append(rng.Next(1, 300)).Append(' ').Append(words[rng.Next(words.Length)])
              .Append(" street\",\"city\":\"").Append(cities[rng.Next(cities.Length)]).Append("\",\"zip\":\"")
              .Append(rng.Next(10000, 99999)).Append("\"}")
              .Append(",\"tags\":[");
            for (var t = 0; t < 6; t++)
            {
                sb.Append(t == 0 ? "" : ",").Append('"').Append(words[rng.Next(words.Length)]).Append('"');
            }
            sb.Append("],\"history\":[");
            for (var h = 0; h < 5; h++)
            {
                sb.Append(h == 0 ? "" : ",").Append("{\"event\":\"").Append(words[rng.Next(words.Length)])
                  .Append("\",\"at\":").Append(1_700_000_000 + rng.Next(10_000_000)).Append(",\"ok\":true}");
            }
            sb.Append("],\"bio\":\"");
            while (sb.Length < 1000)
            {
                sb.Append(words[rng.Next(words.Length)]).Append(' ');
            }
            sb.Append("\"}");
            values[i] = Encoding.UTF8.GetBytes(sb.ToString());
        }
        return values;
    }

    /// <summary>A new empty directory under the system temp directory.</summary>
    public static string NewTempDirectory(string label)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"crabkv-bench-{label}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Deletes a directory tree, ignoring one that is already gone.</summary>
    public static void DeleteDirectory(string? dir)
    {
        if (dir is not null && Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Ends a setup: writes every dirty page of the machine to disk (sync(2), Linux only) so
    /// the timed part does not share the disk and the CPUs with writeback of the setup's own
    /// files or of an earlier benchmark's gigabytes.
    /// </summary>
    public static void Quiesce()
    {
        if (OperatingSystem.IsLinux())
        {
            sync();
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    [LibraryImport("libc")]
    private static partial void sync();
}
