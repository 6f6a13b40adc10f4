using CrabKv.Storage.Caches;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>The LRU read cache and the write-back buffer (Caches/*.cs).</summary>
public sealed class CacheTests
{
    private static long Cost(string key, int valueLength) => LruCache.EntryOverhead + key.Length * 2L + valueLength;

    private static byte[] V(int length, byte fill = 1) => Enumerable.Repeat(fill, length).ToArray();

    // ------------------------------------------------------------------ LruCache

    [Fact]
    public void LruEvictsLeastRecentlyUsedByEntryCount()
    {
        var cache = new LruCache(maxEntries: 3, maxBytes: 1 << 20);
        cache.Put("a", V(1), 0);
        cache.Put("b", V(1), 0);
        cache.Put("c", V(1), 0);
        Assert.True(cache.TryGet("a", 0, out _)); // a is now the most recent; b the least

        cache.Put("d", V(1), 0);

        Assert.Equal(3, cache.Count);
        Assert.False(cache.TryGet("b", 0, out _));
        Assert.True(cache.TryGet("a", 0, out _));
        Assert.True(cache.TryGet("c", 0, out _));
        Assert.True(cache.TryGet("d", 0, out _));
    }

    [Fact]
    public void LruEvictsLeastRecentlyUsedByBytes()
    {
        var one = Cost("k1", 100);
        var cache = new LruCache(maxEntries: 100, maxBytes: 3 * one);
        cache.Put("k1", V(100), 0);
        cache.Put("k2", V(100), 0);
        cache.Put("k3", V(100), 0);
        Assert.Equal(3 * one, cache.Bytes);
        Assert.True(cache.TryGet("k1", 0, out _));

        cache.Put("k4", V(100), 0);

        Assert.Equal(3, cache.Count);
        Assert.Equal(3 * one, cache.Bytes);
        Assert.False(cache.TryGet("k2", 0, out _));

        // A big entry pushes out as many of the least recent ones as needed.
        cache.Put("k5", V(100 + (int)one), 0);
        Assert.Equal(2, cache.Count);
        Assert.True(cache.TryGet("k5", 0, out _));
        Assert.True(cache.TryGet("k4", 0, out _));
        Assert.False(cache.TryGet("k1", 0, out _));
        Assert.False(cache.TryGet("k3", 0, out _));
        Assert.Equal(Cost("k4", 100) + Cost("k5", 100 + (int)one), cache.Bytes);
    }

    [Fact]
    public void LruEntryLargerThanByteBoundIsNotCachedAndDropsTheOldValue()
    {
        var cache = new LruCache(10, Cost("k", 50));
        cache.Put("k", V(50), 0);
        Assert.True(cache.TryGet("k", 0, out _));

        cache.Put("k", V(51), 0);

        Assert.Equal(0, cache.Count);
        Assert.Equal(0, cache.Bytes);
        Assert.False(cache.TryGet("k", 0, out _)); // the stale 50-byte value must not be served
    }

    [Fact]
    public void LruOverwriteReplacesValueAndAccounting()
    {
        var cache = new LruCache(10, 1 << 20);
        cache.Put("k", V(10, 1), 0);
        cache.Put("k", V(30, 2), 0);

        Assert.Equal(1, cache.Count);
        Assert.Equal(Cost("k", 30), cache.Bytes);
        Assert.True(cache.TryGet("k", 0, out var v));
        Assert.Equal(V(30, 2), v);
    }

    [Fact]
    public void LruDropsExpiredEntries()
    {
        var cache = new LruCache(10, 1 << 20);
        cache.Put("ttl", V(5), expiry: 1000);
        cache.Put("forever", V(5), expiry: 0);

        Assert.True(cache.TryGet("ttl", 999, out _));
        Assert.False(cache.TryGet("ttl", 1000, out _)); // expiry <= now: expired
        Assert.Equal(1, cache.Count);
        Assert.Equal(Cost("forever", 5), cache.Bytes);
        Assert.True(cache.TryGet("forever", long.MaxValue, out _));
        Assert.Equal(2, cache.Hits);
        Assert.Equal(1, cache.Misses);
    }

    [Theory]
    [InlineData(0, 1 << 20)]
    [InlineData(100, 0)]
    [InlineData(0, 0)]
    public void LruZeroBoundDisablesIt(int entries, long bytes)
    {
        var cache = new LruCache(entries, bytes);
        cache.Put("k", V(1), 0);

        Assert.Equal(0, cache.Count);
        Assert.Equal(0, cache.Bytes);
        Assert.False(cache.TryGet("k", 0, out _));
        Assert.Equal(1, cache.Misses);
    }

    [Fact]
    public void LruRejectsNegativeBounds()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LruCache(-1, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LruCache(10, -1));
    }

    [Fact]
    public void LruRemoveAndClear()
    {
        var cache = new LruCache(10, 1 << 20);
        cache.Put("a", V(3), 0);
        cache.Put("b", V(4), 0);
        cache.Remove("a");
        cache.Remove("missing");
        Assert.Equal(1, cache.Count);
        Assert.Equal(Cost("b", 4), cache.Bytes);
        cache.Clear();
        Assert.Equal(0, cache.Count);
        Assert.Equal(0, cache.Bytes);
        Assert.False(cache.TryGet("b", 0, out _));
        cache.Put("c", V(1), 0); // usable after Clear
        Assert.True(cache.TryGet("c", 0, out _));
    }

    /// <summary>Reference LRU: a list, most recent first, with the same documented rules.</summary>
    private sealed class ModelLru(int maxEntries, long maxBytes)
    {
        private readonly List<(string Key, byte[] Value, long Expiry)> _list = new();

        public int Count => _list.Count;
        public long Bytes => _list.Sum(e => Cost(e.Key, e.Value.Length));

        public void Put(string key, byte[] value, long expiry)
        {
            if (maxEntries == 0 || maxBytes == 0)
            {
                return;
            }
            Remove(key);
            if (Cost(key, value.Length) > maxBytes)
            {
                return;
            }
            _list.Insert(0, (key, value, expiry));
            while (_list.Count > maxEntries || Bytes > maxBytes)
            {
                _list.RemoveAt(_list.Count - 1);
            }
        }

        public bool TryGet(string key, long now, out byte[] value)
        {
            var i = _list.FindIndex(e => e.Key == key);
            value = [];
            if (i < 0)
            {
                return false;
            }
            var e = _list[i];
            _list.RemoveAt(i);
            if (e.Expiry != 0 && e.Expiry <= now)
            {
                return false;
            }
            _list.Insert(0, e);
            value = e.Value;
            return true;
        }

        public void Remove(string key) => _list.RemoveAll(e => e.Key == key);
    }

    [Theory]
    [InlineData(1, 8, 2_000)]
    [InlineData(2, 50, 1_500)]
    [InlineData(3, 1000, 600)]
    public void LruNeverHoldsMoreThanItsBoundsAndMatchesAReferenceModel(int seed, int maxEntries, long maxBytes)
    {
        var rng = new Random(seed);
        var cache = new LruCache(maxEntries, maxBytes);
        var model = new ModelLru(maxEntries, maxBytes);
        long now = 0;
        for (var step = 0; step < 5_000; step++)
        {
            var key = $"k{rng.Next(40)}";
            switch (rng.Next(10))
            {
                case < 5:
                    var value = V(rng.Next(0, 300), (byte)step);
                    var expiry = rng.Next(4) == 0 ? now + rng.Next(1, 50) : 0;
                    cache.Put(key, value, expiry);
                    model.Put(key, value, expiry);
                    break;
                case < 9:
                    Assert.Equal(model.TryGet(key, now, out var expected), cache.TryGet(key, now, out var actual));
                    Assert.Equal(expected, actual);
                    break;
                default:
                    cache.Remove(key);
                    model.Remove(key);
                    break;
            }
            now += rng.Next(3);
            Assert.True(cache.Count <= maxEntries, $"step {step}: {cache.Count} entries");
            Assert.True(cache.Bytes <= maxBytes, $"step {step}: {cache.Bytes} bytes");
            Assert.Equal(model.Count, cache.Count);
            Assert.Equal(model.Bytes, cache.Bytes);
        }
    }

    // ------------------------------------------------------------------ WriteBackBuffer

    private static long WCost(string key, int? valueLength) => WriteBackBuffer.EntryOverhead + key.Length * 2L + (valueLength ?? 0);

    [Fact]
    public void WriteBackCoalescesRepeatedWritesWithExactAccounting()
    {
        var buffer = new WriteBackBuffer(1 << 20);
        Assert.Equal(WriteBackResult.Accepted, buffer.Offer("k", V(10), 0));
        Assert.Equal(WriteBackResult.Accepted, buffer.Offer("k", V(25, 2), 0));
        Assert.Equal(WriteBackResult.Accepted, buffer.Offer("k", V(5, 3), 0));
        Assert.Equal(WriteBackResult.Accepted, buffer.Offer("other", V(7), 0));

        Assert.Equal(2, buffer.Count);
        Assert.Equal(2, buffer.Coalesced);
        Assert.Equal(WCost("k", 5) + WCost("other", 7), buffer.DirtyBytes);
        Assert.True(buffer.TryGet("k", out var e));
        Assert.Equal(V(5, 3), e.Value);
    }

    [Fact]
    public void WriteBackDeleteIsANullValueEntry()
    {
        var buffer = new WriteBackBuffer(1 << 20);
        buffer.Offer("k", V(100), 0);
        buffer.Offer("k", null, 0);

        Assert.True(buffer.TryGet("k", out var e));
        Assert.True(e.IsDelete);
        Assert.Null(e.Value);
        Assert.Equal(WCost("k", null), buffer.DirtyBytes);
        Assert.Equal(WCost("k", null), WriteBackBuffer.CostOf("k", null));
        Assert.Equal(1, buffer.Coalesced);
    }

    [Fact]
    public void WriteBackKeepsExpiryInDirtyEntry()
    {
        var buffer = new WriteBackBuffer(1 << 20);
        buffer.Offer("ttl", V(3), 123_456);
        buffer.Offer("plain", V(3), 0);

        var drained = buffer.Drain();
        Assert.Equal(123_456, drained["ttl"].Expiry);
        Assert.False(drained["ttl"].IsDelete);
        Assert.Equal(0, drained["plain"].Expiry);
    }

    [Fact]
    public void WriteBackRefusesOverMaxDirtyBytesAndLeavesStateUnchanged()
    {
        var limit = WCost("a", 100) + WCost("b", 100);
        var buffer = new WriteBackBuffer(limit);
        Assert.Equal(WriteBackResult.Accepted, buffer.Offer("a", V(100), 0));
        Assert.Equal(WriteBackResult.Accepted, buffer.Offer("b", V(100), 0));
        Assert.Equal(limit, buffer.DirtyBytes); // exactly at the limit is allowed

        Assert.Equal(WriteBackResult.Full, buffer.Offer("c", [], 0));
        Assert.Equal(WriteBackResult.Full, buffer.Offer("a", V(101, 9), 0)); // growing an entry past the limit

        Assert.Equal(2, buffer.Count);
        Assert.Equal(limit, buffer.DirtyBytes);
        Assert.Equal(0, buffer.Coalesced);
        Assert.False(buffer.TryGet("c", out _));
        Assert.True(buffer.TryGet("a", out var a));
        Assert.Equal(V(100), a.Value);

        // Shrinking an entry still fits at the limit.
        Assert.Equal(WriteBackResult.Accepted, buffer.Offer("a", V(40), 0));
        Assert.Equal(WCost("a", 40) + WCost("b", 100), buffer.DirtyBytes);
        Assert.Equal(1, buffer.Coalesced);
    }

    [Fact]
    public void WriteBackRefusesSingleEntryLargerThanTheLimit()
    {
        var buffer = new WriteBackBuffer(100);
        Assert.Equal(WriteBackResult.Full, buffer.Offer("k", V(100), 0));
        Assert.Equal(0, buffer.Count);
        Assert.Equal(0, buffer.DirtyBytes);
    }

    [Fact]
    public void WriteBackDrainEmptiesIt()
    {
        var buffer = new WriteBackBuffer(1 << 20);
        buffer.Offer("a", V(1), 0);
        buffer.Offer("b", null, 0);
        buffer.Offer("a", V(2), 0);

        var drained = buffer.Drain();

        Assert.Equal(["a", "b"], drained.Keys.Order());
        Assert.Equal(V(2), drained["a"].Value);
        Assert.True(drained["b"].IsDelete);
        Assert.Equal(0, buffer.Count);
        Assert.Equal(0, buffer.DirtyBytes);
        Assert.False(buffer.TryGet("a", out _));
        Assert.Empty(buffer.Drain());
        // The drained dictionary is the caller's: new offers do not show up in it.
        buffer.Offer("c", V(1), 0);
        Assert.False(drained.ContainsKey("c"));
    }

    [Fact]
    public void WriteBackRejectsNonPositiveLimit()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new WriteBackBuffer(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WriteBackBuffer(-5));
    }

    [Fact]
    public void WriteBackAccountingMatchesAModelUnderRandomOffers()
    {
        var rng = new Random(2024);
        const long limit = 4_000;
        var buffer = new WriteBackBuffer(limit);
        var model = new Dictionary<string, byte[]?>();
        long coalesced = 0;
        for (var step = 0; step < 5_000; step++)
        {
            var key = $"key{rng.Next(30)}";
            byte[]? value = rng.Next(5) == 0 ? null : V(rng.Next(0, 400));
            var cost = WriteBackBuffer.CostOf(key, value);
            var current = model.Sum(kv => WriteBackBuffer.CostOf(kv.Key, kv.Value));
            var existing = model.TryGetValue(key, out var old) ? WriteBackBuffer.CostOf(key, old) : 0;
            var fits = current - existing + cost <= limit;

            Assert.Equal(fits ? WriteBackResult.Accepted : WriteBackResult.Full, buffer.Offer(key, value, step));
            if (fits)
            {
                coalesced += model.ContainsKey(key) ? 1 : 0;
                model[key] = value;
            }
            Assert.Equal(model.Count, buffer.Count);
            Assert.Equal(model.Sum(kv => WriteBackBuffer.CostOf(kv.Key, kv.Value)), buffer.DirtyBytes);
            Assert.Equal(coalesced, buffer.Coalesced);
            Assert.True(buffer.DirtyBytes <= limit);
            if (rng.Next(200) == 0)
            {
                Assert.Equal(model.Keys.Order(), buffer.Drain().Keys.Order());
                model.Clear();
            }
        }
    }
    // ------------------------------------------------------------------ through the store

    [Fact]
    public void StoreReadCacheServesRepeatedGetsAndIsInvalidatedByWrites()
    {
        using var dir = new TempDirectory();
        using var store = EmbeddedStore.Open(dir.Path, CorruptionHelpers.Small() with { ReadCacheEntries = 2, Files = new PositionalReadLayer() });
        store.Put("a", "1");
        store.Put("b", "2");
        store.Put("c", "3");
        store.Sync(); // out of the write buffer: gets read the file

        Assert.Equal("1", store.GetString("a"));
        Assert.Equal("1", store.GetString("a"));
        Assert.Equal(1, store.GetStats().CacheHits);
        store.Put("a", "1b");
        Assert.Equal("1b", store.GetString("a"));
        store.Delete("a");
        Assert.Null(store.GetString("a"));
        store.PutBatch([BatchEntry.Put("b", "2b"u8.ToArray())]);
        Assert.Equal("2b", store.GetString("b"));
        Assert.Equal("3", store.GetString("c"));
    }

    [Fact]
    public void Mapped_reads_leave_the_read_cache_empty_and_still_see_every_write()
    {
        using var dir = new TempDirectory();
        using var store = EmbeddedStore.Open(dir.Path, CorruptionHelpers.Small() with { ReadCacheEntries = 100 });
        store.Put("a", "1");
        store.Put("b", "2");
        store.Sync();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("1", store.GetString("a"));
            Assert.Equal("2", store.GetString("b"));
        }
        var stats = store.GetStats();
        Assert.Equal(0, stats.CacheEntries); // the segment's mapping served them: nothing to cache
        Assert.Equal(0, stats.CacheHits);
        store.Put("a", "1b");
        Assert.Equal("1b", store.GetString("a"));
        store.Delete("b");
        Assert.Null(store.GetString("b"));
    }

    [Fact]
    public void StoreWithCacheDisabledStillReads()
    {
        using var dir = new TempDirectory();
        using var store = EmbeddedStore.Open(dir.Path, CorruptionHelpers.Small() with { ReadCacheEntries = 0 });
        store.Put("a", "1");
        Assert.Equal("1", store.GetString("a"));
        Assert.Equal("1", store.GetString("a"));
        Assert.Equal(0, store.GetStats().CacheHits);
    }

    [Fact]
    public void MutatingAValueReturnedByGetDoesNotChangeTheStore()
    {
        using var dir = new TempDirectory();
        using var store = EmbeddedStore.Open(dir.Path, CorruptionHelpers.Small());
        store.Put("k", [1, 2, 3]);

        var first = store.Get("k")!;
        first[0] = 99;

        Assert.Equal([1, 2, 3], store.Get("k"));
    }

    [Fact]
    public void WriteBackBatchValueIsCopiedAtTheCall()
    {
        using var dir = new TempDirectory();
        using (var store = EmbeddedStore.Open(dir.Path, CorruptionHelpers.Small() with { WriteBack = true }))
        {
            var value = new byte[] { 1, 2, 3 };
            store.PutBatch([BatchEntry.Put("k", value)]);
            value[0] = 99;

            Assert.Equal([1, 2, 3], store.Get("k"));
        }
        using var reopened = EmbeddedStore.Open(dir.Path, CorruptionHelpers.Small());
        Assert.Equal([1, 2, 3], reopened.Get("k"));
    }
}
