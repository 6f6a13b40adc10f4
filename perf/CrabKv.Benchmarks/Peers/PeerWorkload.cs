using System.Diagnostics;
using System.Globalization;
using System.Text;
using CrabKv.Benchmarks.Table;
using HdrHistogram;

namespace CrabKv.Benchmarks.Peers;

/// <summary>
/// What each row does for the peer stores: the same keys, values, op and time limits as the
/// project's own columns (the limits and row rules are <see cref="TableWorkload"/>'s) (12-byte keys <c>key:00000123</c>, 100-byte values, ~1 KiB JSON for the
/// Snappy rows, 100 records per batch, 3 versions of stale data under the compaction rows),
/// as byte arrays the peers take directly.
/// </summary>
internal static class PeerWorkload
{
    /// <summary>Records per batch in <see cref="TableRow.Batch100"/>.</summary>
    public const int BatchSize = TableWorkload.BatchSize;

    /// <summary>Distinct keys a write row cycles through.</summary>
    public const int WriteKeys = TableWorkload.WriteKeys;

    /// <summary>Distinct keys the miss row asks for (<c>nok:00000123</c>, never written).</summary>
    public const int MissKeyCount = 100_000;

    /// <summary>Bytes per key.</summary>
    public const int KeyBytes = 12;

    /// <summary>Versions of each stale key a compaction row preloads: all but the last are garbage.</summary>
    public const int StaleVersions = TableWorkload.StaleVersions;

    private const int JsonValueCount = 1_000;

    private static readonly Lazy<byte[]> LazyKeyBlock = new(() => KeyBlock("key:", WriteKeys));
    private static readonly Lazy<byte[]> LazyMissKeyBlock = new(() => KeyBlock("nok:", MissKeyCount));
    private static readonly Lazy<byte[][]> LazyKeys = new(() => Split(LazyKeyBlock.Value));
    private static readonly Lazy<byte[][]> LazyMissKeys = new(() => Split(LazyMissKeyBlock.Value));
    private static readonly Lazy<byte[][]> LazyJson = new(() => BenchData.JsonValues(JsonValueCount).Select(Pinned).ToArray());

    /// <summary>Every write key back to back in one pinned array (key i at i * <see cref="KeyBytes"/>).</summary>
    public static byte[] KeyBlock() => LazyKeyBlock.Value;

    /// <summary>Every miss key back to back in one pinned array.</summary>
    public static byte[] MissKeyBlock() => LazyMissKeyBlock.Value;

    /// <summary>Write key i as its own array.</summary>
    public static byte[][] Keys => LazyKeys.Value;

    /// <summary>Miss key i as its own array.</summary>
    public static byte[][] MissKeys => LazyMissKeys.Value;

    /// <summary>The 100-byte value (seeded random bytes, incompressible), pinned.</summary>
    public static byte[] SmallValue { get; } = Pinned(BenchData.Value());

    /// <summary>Whether the row writes (bytes on disk per record apply).</summary>
    public static bool Writes(TableRow row) => TableWorkload.Writes(row);

    /// <summary>Whether the row writes ~1 KiB JSON values with compression on.</summary>
    public static bool Json(TableRow row) => TableWorkload.Json(row);

    /// <summary>Whether the row puts beside a background compaction of preloaded stale data.</summary>
    public static bool Compacts(TableRow row) => TableWorkload.Compacts(row);

    /// <summary>Whether the row buffers writes in memory (write-back): durable within 1 s rather than 100 ms.</summary>
    public static bool WriteBack(TableRow row) => row is TableRow.WriteBack or TableRow.AllCombined;

    /// <summary>The value put by op <paramref name="i"/> of <paramref name="row"/> (pinned).</summary>
    public static byte[] ValueFor(TableRow row, long i) => Json(row) ? LazyJson.Value[(int)(i % JsonValueCount)] : SmallValue;

    /// <summary>The key index of write op <paramref name="i"/>.</summary>
    public static int WriteKey(long i) => (int)(i % WriteKeys);

    /// <summary>The key index of get op <paramref name="i"/>: a pseudo-random preloaded key (Fibonacci hashing), or a miss key.</summary>
    public static int GetKey(TableRow row, long i, int preloaded) => row == TableRow.GetMiss
        ? (int)(i % MissKeyCount)
        : (int)((ulong)(i * unchecked((long)0x9E3779B97F4A7C15UL)) % (ulong)preloaded);

    /// <summary>Op limit of the timed part (batches for the batch row; the time limit usually ends it first).</summary>
    public static long MaxOps(TableRow row, TableOptions options) => TableWorkload.MaxOps(row, options);

    /// <summary>Time limit of the timed part.</summary>
    public static TimeSpan MaxTime(TableOptions options) => TableWorkload.MaxTime(options);

    /// <summary>Op limit of the warm-up (same store, before the timed part).</summary>
    public static long WarmUpOps(TableRow row, TableOptions options) => TableWorkload.WarmUpOps(row, options);

    /// <summary>Time limit of the warm-up.</summary>
    public static TimeSpan WarmUpTime(TableOptions options) => TableWorkload.WarmUpTime(options);

    /// <summary>Distinct keys of the stale data a compaction row preloads.</summary>
    public static int StaleKeys(TableOptions options) => TableWorkload.StaleKeys(options);

    /// <summary>Sum of the file lengths under <paramref name="directory"/> (0 when it does not exist).</summary>
    public static long DirectoryBytes(string directory) => TableWorkload.DirectoryBytes(directory);

    /// <summary>Deletes a cell's directory; one a closing store still holds is left for the OS temp cleaner.</summary>
    public static void DeleteDirectory(string directory) => TableWorkload.DeleteDirectory(directory);

    /// <summary>One part of a cell on a thread of its own, one latency per op (the table's own loop).</summary>
    public static Task<Measured> Run(long firstIndex, long maxOps, TimeSpan maxTime, Action<long> op,
        IProgress<double>? progress, CancellationToken cancellationToken) =>
        CallerLoops.RunSync(firstIndex, maxOps, maxTime, op, progress, cancellationToken);

    private static byte[] KeyBlock(string prefix, int count)
    {
        var block = GC.AllocateUninitializedArray<byte>(count * KeyBytes, pinned: true);
        for (var i = 0; i < count; i++)
        {
            var written = Encoding.ASCII.GetBytes(prefix + i.ToString("D8", CultureInfo.InvariantCulture), block.AsSpan(i * KeyBytes, KeyBytes));
            if (written != KeyBytes)
            {
                throw new InvalidOperationException($"peer key {i} is {written} bytes, expected {KeyBytes}.");
            }
        }
        return block;
    }

    private static byte[][] Split(byte[] block)
    {
        var keys = new byte[block.Length / KeyBytes][];
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i] = block.AsSpan(i * KeyBytes, KeyBytes).ToArray();
        }
        return keys;
    }

    private static byte[] Pinned(byte[] source)
    {
        var pinned = GC.AllocateUninitializedArray<byte>(source.Length, pinned: true);
        source.CopyTo(pinned, 0);
        return pinned;
    }
}

