using System.Buffers;
using System.Text;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>
/// The allocation-free get, <see cref="EmbeddedStore.TryGet(ReadOnlySpan{byte}, IBufferWriter{byte})"/>:
/// a key as UTF-8 bytes, the value appended to the caller's buffer. It must answer exactly what
/// the string get answers, wherever the record is (write buffer, mapped segment, positional
/// read, compressed, behind a hash twin, buffered by write-back, expired), and refuse the keys
/// the string get refuses.
/// </summary>
public sealed class SpanGetTests : IDisposable
{
    private readonly TempDirectory _dir = new("span-get");
    private readonly ManualClock _clock = new();

    public void Dispose() => _dir.Dispose();

    private EmbeddedStore Open(bool positional = false, bool writeBack = false, int readCache = 0) =>
        EmbeddedStore.Open(_dir.Path, new StoreOptions
        {
            Files = positional ? new PositionalReadLayer() : Storage.Files.FileLayer.Default,
            Clock = _clock,
            ReadCacheEntries = readCache,
            WriteBack = writeBack,
            Compression = true,
            AutoCompact = false,
        });

    /// <summary>The span get's answer, checked against the string get's.</summary>
    private static byte[]? SpanGet(EmbeddedStore store, string key)
    {
        var buffer = new ArrayBufferWriter<byte>();
        buffer.Write("prefix"u8); // appended after what the buffer already holds
        var found = store.TryGet(Encoding.UTF8.GetBytes(key), buffer);
        Assert.Equal(found ? buffer.WrittenCount - 6 : 0, found ? store.Get(key)!.Length : 0);
        Assert.Equal("prefix"u8.ToArray(), buffer.WrittenSpan[..6].ToArray());
        var value = found ? buffer.WrittenSpan[6..].ToArray() : null;
        Assert.Equal(store.Get(key), value);
        return value;
    }

    private static byte[] Json(int i) => Encoding.UTF8.GetBytes(
        "{\"id\":" + i + ",\"name\":\"" + new string('n', 300) + "\",\"tags\":[\"a\",\"b\",\"c\"],\"text\":\"" + new string('t', 400) + "\"}");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Answers_what_the_string_get_answers_from_the_buffer_the_segments_and_after_a_reopen(bool positional)
    {
        using (var store = Open(positional))
        {
            for (var i = 0; i < 200; i++)
            {
                store.Put($"small:{i}", Encoding.UTF8.GetBytes($"value {i}"));
                store.Put($"json:{i}", Json(i)); // compressed on disk
            }
            Assert.Equal("value 7"u8.ToArray(), SpanGet(store, "small:7")); // still in the write buffer
            store.Sync();
            for (var i = 0; i < 200; i += 13)
            {
                Assert.Equal(Encoding.UTF8.GetBytes($"value {i}"), SpanGet(store, $"small:{i}"));
                Assert.Equal(Json(i), SpanGet(store, $"json:{i}"));
            }
            Assert.Null(SpanGet(store, "never written"));
            store.Delete("small:3");
            Assert.Null(SpanGet(store, "small:3"));
            store.Put("é-ключ", "unicode"u8.ToArray());
            Assert.Equal("unicode"u8.ToArray(), SpanGet(store, "é-ключ"));
        }
        using (var reopened = Open(positional))
        {
            Assert.Equal(Json(199), SpanGet(reopened, "json:199"));
            Assert.Null(SpanGet(reopened, "small:3"));
        }
    }

    [Fact]
    public void Hash_twins_each_answer_their_own_value()
    {
        var (a, b) = HashCollisions.Pair;
        using var store = Open();
        store.Put(a, "value of a"u8.ToArray());
        Assert.Null(SpanGet(store, b)); // b's lookup by hash finds a's entry; a's record says it is a's
        store.Put(b, "value of b"u8.ToArray());
        store.Sync();
        Assert.Equal("value of a"u8.ToArray(), SpanGet(store, a));
        Assert.Equal("value of b"u8.ToArray(), SpanGet(store, b));
    }

    [Fact]
    public void Expired_keys_are_absent()
    {
        using var store = Open();
        store.Put("short", "lived"u8.ToArray(), TimeSpan.FromSeconds(10));
        store.Put("long", "lived"u8.ToArray());
        store.Sync();
        Assert.Equal("lived"u8.ToArray(), SpanGet(store, "short"));
        _clock.Advance(TimeSpan.FromSeconds(11));
        Assert.Null(SpanGet(store, "short"));
        Assert.Equal("lived"u8.ToArray(), SpanGet(store, "long"));
    }

    [Fact]
    public void Values_buffered_by_write_back_and_held_by_the_read_cache_are_seen()
    {
        using (var store = Open(writeBack: true))
        {
            store.Put("dirty", "not on disk yet"u8.ToArray());
            Assert.Equal("not on disk yet"u8.ToArray(), SpanGet(store, "dirty"));
            store.Delete("dirty");
            Assert.Null(SpanGet(store, "dirty"));
            store.Put("dirty", "again"u8.ToArray());
        }
        using (var cached = Open(positional: true, readCache: 10))
        {
            Assert.Equal("again"u8.ToArray(), SpanGet(cached, "dirty")); // the string get fills the cache
            Assert.Equal("again"u8.ToArray(), SpanGet(cached, "dirty")); // the span get answers from it
            Assert.True(cached.GetStats().CacheHits > 0);
        }
    }

    [Fact]
    public void Keys_the_string_get_refuses_are_refused_and_nothing_is_written()
    {
        using var store = Open();
        store.Put("k", "v"u8.ToArray());
        var buffer = new ArrayBufferWriter<byte>();
        var empty = Assert.ThrowsAny<Exception>(() => store.TryGet(ReadOnlySpan<byte>.Empty, buffer));
        Assert.Equal(Assert.ThrowsAny<Exception>(() => store.Get("")).GetType(), empty.GetType());
        var tooLong = Assert.ThrowsAny<Exception>(() => store.TryGet(new byte[4097], buffer));
        Assert.Contains("max-key-bytes", tooLong.Message);
        var notText = Assert.ThrowsAny<Exception>(() => store.TryGet(new byte[] { 0x6B, 0xFF, 0xFE }, buffer));
        Assert.Contains("not valid UTF-8", notText.Message);
        Assert.Equal(0, buffer.WrittenCount);
        Assert.Throws<ArgumentNullException>(() => store.TryGet("k"u8, null!));
        Assert.Equal("v"u8.ToArray(), SpanGet(store, "k")); // the store is unharmed
    }

    [Fact]
    public void A_key_that_is_not_UTF_8_is_refused_even_when_its_hash_finds_a_stored_key()
    {
        // The byte get checks UTF-8 only when the key is not found (a key found equals a stored
        // key, which passed the check). This key's lookup by hash lands on a stored key's entry,
        // and its record names that other key: the get must still end in the refusal.
        var (valid, invalid) = HashCollisions.InvalidTwin;
        var directory = new CrabKv.Storage.Index.KeyDirectory();
        directory.Set(Encoding.UTF8.GetBytes(valid), new CrabKv.Storage.Index.KeyLocation(CrabKv.Storage.Segments.SegmentId.From(1, 0), 16, 40, 0), out _);
        Assert.True(directory.TryGetByHash(invalid, out _)); // the twins collide in the directory itself
        using var store = Open();
        store.Put(valid, "the valid twin"u8.ToArray());
        store.Sync();
        var buffer = new ArrayBufferWriter<byte>();
        var refused = Assert.ThrowsAny<Exception>(() => store.TryGet(invalid, buffer));
        Assert.Contains("not valid UTF-8", refused.Message);
        Assert.Equal(0, buffer.WrittenCount);
        Assert.Equal("the valid twin"u8.ToArray(), SpanGet(store, valid));
    }
}
