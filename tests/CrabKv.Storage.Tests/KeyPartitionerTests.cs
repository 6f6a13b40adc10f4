using System.IO.Hashing;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>
/// The key → partition contract (FORMAT.md section 9) pinned by test vectors. The values were
/// computed once (with an independent XXH64 implementation, cross-checked against the
/// reference vectors of the xxHash project) and must never change: a different answer means
/// keys already stored would be looked up in the wrong partition.
/// </summary>
public sealed class KeyPartitionerTests
{
    private static readonly string X100 = new('x', 100);                                          // ASCII, 100 bytes: hashed from the stack
    private static readonly string Long505 = "long-" + string.Concat(Enumerable.Repeat("0123456789", 50)); // 505 bytes: hashed from the heap
    private static readonly string EAcute300 = new('é', 300);                                      // 600 bytes of 2-byte UTF-8

    /// <summary>(key, XxHash64 with seed 0 of its UTF-8 bytes).</summary>
    public static TheoryData<string, ulong> Hashes => new()
    {
        { "a", 0xD24EC4F1A98C6E5BUL },
        { "user:42", 0xDC1FEA7DA8D2D1C2UL },
        { "key:00000001", 0xF8DDC4A10F8D1674UL },
        { "hello world", 0x45AB6734B21E6968UL },
        { "Grüße", 0x29964875BFE3CB55UL },
        { "日本語のキー", 0x095E47A5DEED5375UL },
        { "🦀 crab", 0x4ED85AE3877F482EUL },
        { X100, 0x92F0DE5A88A3C094UL },
        { Long505, 0x78123DAD837CBFCDUL },
        { EAcute300, 0x04B363D795444338UL },
    };

    /// <summary>(key, partition count, partition).</summary>
    public static TheoryData<string, int, int> Vectors => new()
    {
        { "a", 1, 0 }, { "a", 2, 1 }, { "a", 7, 6 }, { "a", 64, 27 }, { "a", 1024, 603 },
        { "user:42", 1, 0 }, { "user:42", 2, 0 }, { "user:42", 7, 4 }, { "user:42", 64, 2 }, { "user:42", 1024, 450 },
        { "key:00000001", 1, 0 }, { "key:00000001", 2, 0 }, { "key:00000001", 7, 6 }, { "key:00000001", 64, 52 }, { "key:00000001", 1024, 628 },
        { "hello world", 1, 0 }, { "hello world", 2, 0 }, { "hello world", 7, 6 }, { "hello world", 64, 40 }, { "hello world", 1024, 360 },
        { "Grüße", 1, 0 }, { "Grüße", 2, 1 }, { "Grüße", 7, 4 }, { "Grüße", 64, 21 }, { "Grüße", 1024, 853 },
        { "日本語のキー", 1, 0 }, { "日本語のキー", 2, 1 }, { "日本語のキー", 7, 5 }, { "日本語のキー", 64, 53 }, { "日本語のキー", 1024, 885 },
        { "🦀 crab", 1, 0 }, { "🦀 crab", 2, 0 }, { "🦀 crab", 7, 1 }, { "🦀 crab", 64, 46 }, { "🦀 crab", 1024, 46 },
        { X100, 1, 0 }, { X100, 2, 0 }, { X100, 7, 3 }, { X100, 64, 20 }, { X100, 1024, 148 },
        { Long505, 1, 0 }, { Long505, 2, 1 }, { Long505, 7, 0 }, { Long505, 64, 13 }, { Long505, 1024, 973 },
        { EAcute300, 1, 0 }, { EAcute300, 2, 0 }, { EAcute300, 7, 0 }, { EAcute300, 64, 56 }, { EAcute300, 1024, 824 },
    };

    [Theory]
    [MemberData(nameof(Hashes))]
    public void The_hash_is_XxHash64_seed_0_of_the_UTF8_bytes(string key, ulong hash)
    {
        Assert.Equal(hash, XxHash64.HashToUInt64(System.Text.Encoding.UTF8.GetBytes(key)));
        Assert.Equal((int)(hash % 1024), KeyPartitioner.PartitionOf(key, 1024));
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Test_vectors_never_change(string key, int count, int partition) =>
        Assert.Equal(partition, KeyPartitioner.PartitionOf(key, count));

    [Fact]
    public void Reference_vectors_of_XXH64_hold() // from the xxHash project: the hash itself is the one everyone else computes
    {
        Assert.Equal(0xEF46DB3751D8E999UL, XxHash64.HashToUInt64([]));
        Assert.Equal(0xD24EC4F1A98C6E5BUL, XxHash64.HashToUInt64("a"u8));
        Assert.Equal(0x44BC2CF5AD770999UL, XxHash64.HashToUInt64("abc"u8));
    }

    [Fact]
    public void Keys_without_a_partition_of_their_own_map_to_partition_0()
    {
        // Built here, not in InlineData: the test runner would replace a lone surrogate.
        string?[] keys = [null, "", "\ud800", "ok\udfffok", "\ud800" + new string('x', 600)];
        foreach (var key in keys)
        {
            Assert.Equal(0, KeyPartitioner.PartitionOf(key, 7));
            Assert.Equal(0, KeyPartitioner.PartitionOf(key, 1024));
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void A_count_below_1_is_refused(int count) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyPartitioner.PartitionOf("a", count));

    [Fact]
    public void Every_partition_is_in_range_and_used()
    {
        var seen = new bool[7];
        for (var i = 0; i < 1000; i++)
        {
            var p = KeyPartitioner.PartitionOf($"key:{i:D8}", 7);
            Assert.InRange(p, 0, 6);
            seen[p] = true;
        }
        Assert.All(seen, Assert.True);
    }

    [Fact]
    public void A_batch_of_one_partition_has_that_partition()
    {
        // "a" and "Grüße" both map to 1 of 2; "user:42" to 0.
        Assert.True(KeyPartitioner.TryPartitionOfBatch(["a", "Grüße", "日本語のキー"], 2, out var partition));
        Assert.Equal(1, partition);
        Assert.True(KeyPartitioner.TryPartitionOfBatch(["user:42"], 2, out partition));
        Assert.Equal(0, partition);
        Assert.True(KeyPartitioner.TryPartitionOfBatch([], 2, out partition));
        Assert.Equal(0, partition);
    }

    [Fact]
    public void A_batch_across_partitions_is_refused()
    {
        Assert.False(KeyPartitioner.TryPartitionOfBatch(["a", "user:42"], 2, out _));
        Assert.True(KeyPartitioner.TryPartitionOfBatch(["a", "user:42"], 1, out var partition)); // one partition lifts the rule
        Assert.Equal(0, partition);
        var message = KeyPartitioner.CrossPartitionBatchMessage(2);
        Assert.Contains("one partition", message);
        Assert.Contains("has 2", message);
        Assert.Contains("nothing was written", message);
    }
}
