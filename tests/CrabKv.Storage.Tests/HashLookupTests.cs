using System.Text;
using CrabKv.Storage.Files;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>
/// Gets find a key by its hash alone (the key directory's stored key is not read) and confirm
/// it against the record's own key: two keys with the same 32-bit hash
/// (<see cref="HashCollisions"/>) must still answer their own values — from the mapping, the
/// write buffer, a positional read, after a reopen — and TTLs and deletes must act on the key
/// asked for, never on its hash twin.
/// </summary>
public sealed class HashLookupTests : IDisposable
{
    private readonly TempDirectory _dir = new("hash-lookup");
    private readonly ManualClock _clock = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A file layer that does not map: every get is a positional read.</summary>
    private sealed class UnmappedLayer() : WrappingFileLayer(FileLayer.Default);

    private EmbeddedStore Open(FileLayer? files = null, int readCache = 0) =>
        EmbeddedStore.Open(_dir.Path, new StoreOptions { Files = files ?? FileLayer.Default, Clock = _clock, ReadCacheEntries = readCache, AutoCompact = false });

    private static (string A, string B) Twins()
    {
        var (a, b) = HashCollisions.Pair;
        Assert.NotEqual(a, b);
        Assert.Equal(Encoding.UTF8.GetByteCount(a), Encoding.UTF8.GetByteCount(b));
        return (a, b);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Keys_with_the_same_hash_each_read_their_own_value(bool unmapped, bool flushed)
    {
        var (a, b) = Twins();
        var layer = new UnmappedLayer();
        using (var store = Open(unmapped ? layer : null))
        {
            store.Put(a, "value of a"u8.ToArray());
            Assert.Null(store.Get(b)); // b's lookup by hash finds a's slot; a's record says it is a's
            Assert.Equal("value of a", store.GetString(a));
            store.Put(b, "value of b"u8.ToArray()); // b's slot now comes first in the chain
            if (flushed)
            {
                store.Sync();
            }
            Assert.Equal("value of a", store.GetString(a));
            Assert.Equal("value of b", store.GetString(b));
            Assert.Equal(2, store.Count);

            store.Delete(b);
            Assert.Null(store.Get(b));
            Assert.Equal("value of a", store.GetString(a));
            store.Put(b, "b again"u8.ToArray());
            store.Delete(a);
            Assert.Null(store.Get(a));
            Assert.Equal("b again", store.GetString(b));
            store.Put(a, "a again"u8.ToArray());
        }
        using (var reopened = Open(unmapped ? layer : null)) // the directory rebuilt by recovery
        {
            Assert.Equal("a again", reopened.GetString(a));
            Assert.Equal("b again", reopened.GetString(b));
            Assert.Equal(2, reopened.Count);
        }
    }

    [Fact]
    public void An_expired_key_is_removed_on_read_and_its_hash_twin_stays()
    {
        var (a, b) = Twins();
        using var store = Open();
        store.Put(a, "short-lived a"u8.ToArray(), TimeSpan.FromSeconds(10));
        store.Put(b, "lasting b"u8.ToArray()); // first in the chain: a's lookup by hash finds b's live slot
        store.Sync();
        _clock.Advance(TimeSpan.FromSeconds(11));

        Assert.Null(store.Get(a));
        Assert.Equal(1, store.Count); // a was removed on read, not b
        Assert.Equal("lasting b", store.GetString(b));
    }

    [Fact]
    public void A_live_key_behind_its_expired_hash_twin_is_still_found()
    {
        var (a, b) = Twins();
        using var store = Open();
        store.Put(a, "lasting a"u8.ToArray());
        store.Put(b, "short-lived b"u8.ToArray(), TimeSpan.FromSeconds(10)); // first in the chain, expires
        store.Sync();
        _clock.Advance(TimeSpan.FromSeconds(11));

        Assert.Equal("lasting a", store.GetString(a));
        Assert.Equal(2, store.Count); // a's read removed nothing: b is swept or removed on its own read
        Assert.Null(store.Get(b));
        Assert.Equal(1, store.Count);
        Assert.Equal("lasting a", store.GetString(a));
    }

    [Fact]
    public void With_the_read_cache_on_twins_answer_their_own_values_from_it()
    {
        var (a, b) = Twins();
        using var store = Open(readCache: 100);
        store.Put(a, "value of a"u8.ToArray());
        store.Put(b, "value of b"u8.ToArray());
        store.Sync();
        for (var round = 0; round < 2; round++)
        {
            Assert.Equal("value of a", store.GetString(a));
            Assert.Equal("value of b", store.GetString(b));
        }
    }

    [Theory]
    [InlineData("user:42", 1)]
    [InlineData("user:42", 7)]
    [InlineData("ключ-é", 1024)]
    [InlineData("c0000001", 64)]
    public void The_partition_of_encoded_bytes_is_the_partition_of_the_string(string key, int count) =>
        Assert.Equal(KeyPartitioner.PartitionOf(key, count), KeyPartitioner.PartitionOfUtf8(Encoding.UTF8.GetBytes(key), count));
}
