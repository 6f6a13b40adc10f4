using System.IO.Hashing;
using System.Text;

namespace CrabKv.Storage;

/// <summary>
/// The key → partition contract (FORMAT.md section 9), public and stable: a key lives in
/// partition <c>XxHash64(seed 0, UTF-8 bytes of the key) mod count</c>. Every node, client and
/// version must agree on it, since data written under one answer is looked up under it; a
/// change is a format change (the test vectors in <c>KeyPartitionerTests</c> pin it). Never
/// <c>string.GetHashCode</c>, which differs per process.
/// </summary>
/// <remarks>
/// The bytes are those of the strict <see cref="KeyRules.Utf8"/> encoding. A key that has no
/// partition of its own — null, empty, or not valid text (a lone surrogate) — maps to
/// partition 0, whose refusal then names the problem; such a key is never stored.
/// </remarks>
public static class KeyPartitioner
{
    private const int StackLimit = 512;

    /// <summary>The partition of <paramref name="key"/> among <paramref name="count"/> partitions (0 .. count - 1).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is less than 1.</exception>
    public static int PartitionOf(string? key, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (count == 1 || string.IsNullOrEmpty(key))
        {
            return 0;
        }
        ulong hash;
        try
        {
            var max = KeyRules.Utf8.GetMaxByteCount(key.Length);
            if (max <= StackLimit)
            {
                Span<byte> buffer = stackalloc byte[max];
                hash = XxHash64.HashToUInt64(buffer[..KeyRules.Utf8.GetBytes(key, buffer)]);
            }
            else
            {
                hash = XxHash64.HashToUInt64(KeyRules.Utf8.GetBytes(key));
            }
        }
        catch (EncoderFallbackException)
        {
            return 0; // not text: partition 0 refuses it (KeyRules.NotTextMessage)
        }
        return (int)(hash % (ulong)count);
    }

    /// <summary>
    /// <see cref="PartitionOf(string?, int)"/> of a key already encoded as strict UTF-8 (the
    /// same answer, without encoding the string again); an empty key maps to partition 0.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is less than 1.</exception>
    public static int PartitionOfUtf8(ReadOnlySpan<byte> utf8Key, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (count == 1 || utf8Key.IsEmpty)
        {
            return 0;
        }
        return (int)(XxHash64.HashToUInt64(utf8Key) % (ulong)count);
    }

    /// <summary>
    /// The single-partition batch rule: an atomic batch lives in one partition, so all of its
    /// keys must map to the same one (like Redis Cluster's CROSSSLOT). True, with that
    /// partition, when they do (an empty list gives partition 0); false when they do not, and
    /// the batch is then refused with <see cref="CrossPartitionBatchMessage"/>.
    /// </summary>
    public static bool TryPartitionOfBatch(IEnumerable<string?> keys, int count, out int partition)
    {
        ArgumentNullException.ThrowIfNull(keys);
        partition = 0;
        var first = true;
        foreach (var key in keys)
        {
            var p = PartitionOf(key, count);
            if (first)
            {
                partition = p;
                first = false;
            }
            else if (p != partition)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>The refusal of a batch whose keys live in several of <paramref name="count"/> partitions.</summary>
    public static string CrossPartitionBatchMessage(int count) =>
        $"The keys of an atomic batch must live in one partition (this store has {count}); nothing was written. " +
        "Group keys by their partition (KeyPartitioner.PartitionOf, CrabKvClient.PartitionOf), or run with crabkv.partitions = 1.";
}
