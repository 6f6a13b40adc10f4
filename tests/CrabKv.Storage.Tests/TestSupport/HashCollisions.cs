using System.IO.Hashing;
using System.Text;

namespace CrabKv.Storage.Tests.TestSupport;

/// <summary>
/// Two keys of the same length whose key-directory hash (XxHash3 of the UTF-8 bytes, folded
/// to 32 bits, as in <c>KeyDirectory</c>) is equal: the case in which a lookup by hash alone
/// (<c>KeyDirectory.TryGetByHash</c>) finds another key's slot. Found by a bounded search
/// (a birthday collision among at most 1,000,000 keys; the first is expected near 80,000).
/// Tests confirm the collision through the directory itself, so a change of the hash fails
/// them loudly instead of testing nothing.
/// </summary>
public static class HashCollisions
{
    private static readonly Lazy<(string First, string Second)> Found = new(Search);

    /// <summary>The pair: same length, different keys, equal 32-bit hash.</summary>
    public static (string First, string Second) Pair => Found.Value;

    /// <summary>The first collision among keys c0000000, c0000001, … (all of one length).</summary>
    private static (string, string) Search()
    {
        var seen = new Dictionary<uint, int>();
        Span<byte> buffer = stackalloc byte[16];
        for (var i = 0; i < 1_000_000; i++)
        {
            var length = Encoding.UTF8.GetBytes(Key(i), buffer);
            var h = XxHash3.HashToUInt64(buffer[..length]);
            var folded = (uint)(h ^ (h >> 32));
            if (seen.TryGetValue(folded, out var earlier))
            {
                return (Key(earlier), Key(i));
            }
            seen.Add(folded, i);
        }
        throw new InvalidOperationException("No 32-bit hash collision among 1,000,000 keys: has KeyDirectory's hash changed?");
    }

    private static string Key(int i) => $"c{i:D7}";

    private static readonly Lazy<(string Valid, byte[] Invalid)> FoundInvalid = new(SearchInvalid);

    /// <summary>
    /// A valid key and a key of the same length that is not valid UTF-8 (0xFF and seven digits)
    /// with an equal 32-bit hash: the invalid key's lookup by hash finds the valid key's entry.
    /// </summary>
    public static (string Valid, byte[] Invalid) InvalidTwin => FoundInvalid.Value;

    private static (string, byte[]) SearchInvalid()
    {
        const int valid = 200_000;
        var seen = new Dictionary<uint, int>(valid);
        Span<byte> buffer = stackalloc byte[16];
        for (var i = 0; i < valid; i++)
        {
            seen.TryAdd(Fold(buffer[..Encoding.UTF8.GetBytes(Key(i), buffer)]), i);
        }
        var invalid = new byte[8];
        invalid[0] = 0xFF;
        for (var j = 0; j < 10_000_000; j++)
        {
            Encoding.ASCII.GetBytes(j.ToString("D7", System.Globalization.CultureInfo.InvariantCulture), invalid.AsSpan(1));
            if (seen.TryGetValue(Fold(invalid), out var twin))
            {
                return (Key(twin), invalid);
            }
        }
        throw new InvalidOperationException("No 32-bit hash collision between 200,000 valid and 10,000,000 invalid keys: has KeyDirectory's hash changed?");
    }

    private static uint Fold(ReadOnlySpan<byte> key)
    {
        var h = XxHash3.HashToUInt64(key);
        return (uint)(h ^ (h >> 32));
    }
}
