using System.IO.Hashing;
using System.Text;

namespace CrabKv.Actors.Internal;

/// <summary>
/// Maps a key to its partition: XxHash64 of the key's UTF-8 bytes modulo the partition
/// count. Stable across processes and machines (never <c>string.GetHashCode</c>).
/// </summary>
public static class KeyPartitioner
{
    /// <summary>The partition of <paramref name="key"/> among <paramref name="partitions"/>.</summary>
    public static int PartitionOf(string key, int partitions)
    {
        if (partitions <= 1)
        {
            return 0;
        }
        var max = Encoding.UTF8.GetMaxByteCount(key.Length);
        ulong hash;
        if (max <= 512)
        {
            Span<byte> buffer = stackalloc byte[max];
            hash = XxHash64.HashToUInt64(buffer[..Encoding.UTF8.GetBytes(key, buffer)]);
        }
        else
        {
            hash = XxHash64.HashToUInt64(Encoding.UTF8.GetBytes(key));
        }
        return (int)(hash % (ulong)partitions);
    }
}
