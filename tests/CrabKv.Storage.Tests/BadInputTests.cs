using System.Text;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;
using static CrabKv.Storage.Tests.TestSupport.CorruptionHelpers;

namespace CrabKv.Storage.Tests;

/// <summary>Input validation: keys 1..max-key-bytes of UTF-8, values up to max-value-bytes, batches all or none, the lock, options.</summary>
public sealed class BadInputTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void EmptyKeyIsInvalid()
    {
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Throws<InvalidKeyException>(() => store.Put("", "v"));
        Assert.Throws<InvalidKeyException>(() => store.Put(null!, "v"));
        Assert.Throws<InvalidKeyException>(() => store.Delete(""));
        Assert.Throws<InvalidKeyException>(() => store.Get(""));
        Assert.Equal(0, store.Count);
        Assert.Equal(0, store.GetStats().TotalBytes);
    }

    [Theory]
    [InlineData("abcdefghij", true)]     // 10 bytes
    [InlineData("abcdefghijk", false)]   // 11 bytes
    [InlineData("ééééé", true)]          // 5 chars, 10 bytes
    [InlineData("éééééa", false)]        // 6 chars, 11 bytes
    [InlineData("€€€", true)]            // 3 chars, 9 bytes
    [InlineData("€€€€", false)]          // 4 chars, 12 bytes
    [InlineData("😀😀a", true)]           // 2 surrogate pairs (4 bytes each) + 1: 9 bytes
    [InlineData("😀😀😀", false)]          // 12 bytes
    public void KeyLimitCountsUtf8BytesNotCharacters(string key, bool accepted)
    {
        using var store = EmbeddedStore.Open(_dir.Path, Small() with { MaxKeyBytes = 10 });
        if (accepted)
        {
            store.Put(key, "v");
            Assert.Equal("v", store.GetString(key));
            return;
        }
        var e = Assert.Throws<InvalidKeyException>(() => store.Put(key, "v"));
        Assert.Contains($"{Encoding.UTF8.GetByteCount(key)} bytes", e.Message);
        Assert.Contains("10", e.Message);
        Assert.Contains("max-key-bytes", e.Message);
        Assert.Throws<InvalidKeyException>(() => store.Delete(key));
        Assert.Throws<InvalidKeyException>(() => store.Get(key));
        Assert.Equal(0, store.GetStats().TotalBytes);
    }

    [Theory]
    [InlineData(4096, 'a', true)]
    [InlineData(4097, 'a', false)]
    [InlineData(1365, '€', true)]   // 4095 bytes
    [InlineData(1366, '€', false)]  // 4098 bytes
    [InlineData(2048, 'é', true)]   // 4096 bytes
    [InlineData(2049, 'é', false)]  // 4098 bytes
    public void KeyOverDefaultMaxKeyBytesIsInvalidWithTheLimitInTheMessage(int chars, char c, bool accepted)
    {
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        var key = new string(c, chars);
        if (accepted)
        {
            store.Put(key, "long key");
            Assert.Equal("long key", store.GetString(key));
            return;
        }
        var e = Assert.Throws<InvalidKeyException>(() => store.Put(key, "v"));
        Assert.Contains("4096", e.Message);
        Assert.Equal(0, store.Count);
    }

    [Fact]
    public void LongKeysUpToTheFormatLimitRoundTrip()
    {
        var key = new string('k', 65535);
        using (var store = EmbeddedStore.Open(_dir.Path, Small() with { MaxKeyBytes = 65535 }))
        {
            store.Put(key, "max");
            Assert.Throws<InvalidKeyException>(() => store.Put(key + "k", "too long"));
        }
        using var reopened = EmbeddedStore.Open(_dir.Path, Small() with { MaxKeyBytes = 65535 });
        Assert.Equal("max", reopened.GetString(key));
    }

    [Fact]
    public void ValueOverMaxValueBytesIsTooLarge()
    {
        using var store = EmbeddedStore.Open(_dir.Path, Small() with { MaxValueBytes = 100 });
        store.Put("ok", new byte[100]);
        store.Put("empty", []);
        var e = Assert.Throws<ValueTooLargeException>(() => store.Put("big", new byte[101]));
        Assert.Contains("101", e.Message);
        Assert.Contains("100", e.Message);
        Assert.Null(store.Get("big"));
        Assert.Equal(new byte[100], store.Get("ok"));
        Assert.Equal(Array.Empty<byte>(), store.Get("empty"));
    }

    [Fact]
    public void NonPositiveTtlIsRejectedBeforeWriting()
    {
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Put("k", "v", TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Put("k", "v", TimeSpan.FromSeconds(-1)));
        Assert.Null(store.Get("k"));
        Assert.Equal(0, store.GetStats().TotalBytes);
    }

    public static TheoryData<string> BadBatchMembers => new() { "empty-key", "long-key", "big-value", "negative-ttl", "null-op" };

    private static BatchEntry? BadOp(string kind) => kind switch
    {
        "empty-key" => BatchEntry.Put("", [1]),
        "long-key" => BatchEntry.Put(new string('x', 11), [1]),
        "big-value" => BatchEntry.Put("big", new byte[65]),
        "negative-ttl" => BatchEntry.Put("ttl", [1], TimeSpan.FromMilliseconds(-5)),
        "null-op" => null,
        _ => throw new ArgumentException(kind),
    };

    [Theory]
    [MemberData(nameof(BadBatchMembers))]
    public void BatchWithOneBadOperationWritesNothing(string kind)
    {
        var options = Small() with { MaxKeyBytes = 10, MaxValueBytes = 64 };
        using var store = EmbeddedStore.Open(_dir.Path, options);
        store.Put("existing", "old");
        store.Put("doomed", "still here");
        store.Flush();
        var segment = SegmentFiles(_dir.Path).Single();
        var sizeBefore = new FileInfo(segment).Length;
        var statsBefore = store.GetStats();

        var ops = new List<BatchEntry>
        {
            BatchEntry.Put("new1", [1, 2, 3]),
            BatchEntry.Put("existing", "new"u8.ToArray()),
            BatchEntry.Delete("doomed"),
            BadOp(kind)!,
            BatchEntry.Put("new2", [4]),
        };
        Assert.ThrowsAny<Exception>(() => store.PutBatch(ops));
        store.Flush();

        Assert.Equal(sizeBefore, new FileInfo(segment).Length);
        Assert.Equal(statsBefore.TotalBytes, store.GetStats().TotalBytes);
        Assert.Equal(2, store.Count);
        Assert.Null(store.Get("new1"));
        Assert.Null(store.Get("new2"));
        Assert.Equal("old", store.GetString("existing"));
        Assert.Equal("still here", store.GetString("doomed"));
    }

    [Theory]
    [MemberData(nameof(BadBatchMembers))]
    public void BatchWithOneBadOperationBuffersNothingInWriteBackMode(string kind)
    {
        using var store = EmbeddedStore.Open(_dir.Path, Small() with { MaxKeyBytes = 10, MaxValueBytes = 64, WriteBack = true });
        store.Put("existing", "old");
        var dirty = store.GetStats().DirtyBytes;

        Assert.ThrowsAny<Exception>(() => store.PutBatch([BatchEntry.Put("new1", [1]), BatchEntry.Put("existing", [9]), BadOp(kind)!]));

        Assert.Equal(dirty, store.GetStats().DirtyBytes);
        Assert.Null(store.Get("new1"));
        Assert.Equal("old", store.GetString("existing"));
    }

    [Fact]
    public void BatchErrorsHaveTheSpecificTypes()
    {
        using var store = EmbeddedStore.Open(_dir.Path, Small() with { MaxKeyBytes = 10, MaxValueBytes = 64 });
        Assert.Throws<InvalidKeyException>(() => store.PutBatch([BatchEntry.Put("a", [1]), BadOp("empty-key")!]));
        Assert.Throws<InvalidKeyException>(() => store.PutBatch([BadOp("long-key")!]));
        Assert.Throws<ValueTooLargeException>(() => store.PutBatch([BadOp("big-value")!]));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.PutBatch([BadOp("negative-ttl")!]));
        Assert.Throws<ArgumentException>(() => store.PutBatch([BatchEntry.Put("a", [1]), null!]));
        Assert.Throws<ArgumentNullException>(() => store.PutBatch(null!));
        Assert.Throws<ArgumentException>(() => store.PutBatch([])); // an empty batch is refused, as by the partition actor
        Assert.Equal(0, store.GetStats().TotalBytes);
    }

    [Fact]
    public void DirectoryLockedByAnotherStoreInstanceIsRefusedAndTheFirstStillWorks()
    {
        using var first = EmbeddedStore.Open(_dir.Path, Small());
        first.Put("a", "1");

        var e = Assert.Throws<StoreLockedException>(() => EmbeddedStore.Open(_dir.Path, Small()));
        Assert.Equal(Path.GetFullPath(_dir.Path), e.Directory);
        // The same directory through another spelling of its path is the same lock.
        Assert.Throws<StoreLockedException>(() => EmbeddedStore.Open(Path.Combine(_dir.Path, "..", Path.GetFileName(_dir.Path)), Small()));

        first.Put("b", "2");
        first.Sync();
        Assert.Equal("1", first.GetString("a"));
        Assert.Equal("2", first.GetString("b"));
        first.Dispose();

        using var second = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal("1", second.GetString("a"));
        Assert.Equal("2", second.GetString("b"));
    }

    public static TheoryData<string, Func<StoreOptions, StoreOptions>> BadOptions => new()
    {
        { nameof(StoreOptions.MaxSegmentBytes), o => o with { MaxSegmentBytes = 10 } },
        { nameof(StoreOptions.MaxSegmentBytes), o => o with { MaxSegmentBytes = 4L << 30 } },
        { nameof(StoreOptions.WriteBufferBytes), o => o with { WriteBufferBytes = 100 } },
        { nameof(StoreOptions.MaxKeyBytes), o => o with { MaxKeyBytes = 0 } },
        { nameof(StoreOptions.MaxKeyBytes), o => o with { MaxKeyBytes = 65536 } },
        { nameof(StoreOptions.MaxValueBytes), o => o with { MaxValueBytes = -1 } },
        { nameof(StoreOptions.MaxValueBytes), o => o with { MaxValueBytes = (256 << 20) + 1 } },
        { nameof(StoreOptions.CompressionMinValueBytes), o => o with { CompressionMinValueBytes = -1 } },
        { nameof(StoreOptions.DefaultTtl), o => o with { DefaultTtl = TimeSpan.Zero } },
        { nameof(StoreOptions.ReadCacheEntries), o => o with { ReadCacheEntries = -1 } },
        { nameof(StoreOptions.ReadCacheBytes), o => o with { ReadCacheBytes = -1 } },
        { nameof(StoreOptions.MaxDirtyBytes), o => o with { MaxDirtyBytes = 0 } },
        { nameof(CompactionThresholds.StaleRatio), o => o with { Compaction = new CompactionThresholds(StaleRatio: 0) } },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void InvalidOptionIsRejectedNamingTheProperty(string property, Func<StoreOptions, StoreOptions> edit)
    {
        var dir = _dir.Combine("never-created");
        var options = edit(new StoreOptions());

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => options.Validate());
        Assert.Equal(property, e.ParamName);
        Assert.Contains(property == nameof(CompactionThresholds.StaleRatio) ? "stale-ratio" : property, e.Message);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddedStore.Open(dir, options));
        Assert.Equal(property, e.ParamName);
        Assert.False(Directory.Exists(dir)); // validated before anything touches the disk
    }

    [Fact]
    public void DefaultOptionsAreValid()
    {
        var o = new StoreOptions();
        Assert.Same(o, o.Validate());
        (o with { MaxSegmentBytes = 4096, WriteBufferBytes = 4096, MaxKeyBytes = 1, MaxValueBytes = 0, ReadCacheEntries = 0, ReadCacheBytes = 0 }).Validate();
    }

    [Fact]
    public void AfterDisposeOperationsThrowStoreClosed()
    {
        var store = EmbeddedStore.Open(_dir.Path, Small());
        store.Put("k", "v");
        store.Dispose();
        store.Dispose(); // idempotent

        Assert.Throws<StoreClosedException>(() => store.Put("k", "v2"));
        Assert.Throws<StoreClosedException>(() => store.Put("k", [1, 2]));
        Assert.Throws<StoreClosedException>(() => store.Get("k"));
        Assert.Throws<StoreClosedException>(() => store.GetString("k"));
        Assert.Throws<StoreClosedException>(() => store.TryGet("k", out _));
        Assert.Throws<StoreClosedException>(() => store.Delete("k"));
        Assert.Throws<StoreClosedException>(() => store.PutBatch([BatchEntry.Put("x", [1])]));
        Assert.Throws<StoreClosedException>(() => store.Flush());
        Assert.Throws<StoreClosedException>(() => store.Sync());
        Assert.Throws<StoreClosedException>(() => store.Compact());
        Assert.Throws<StoreClosedException>(() => store.SweepExpired());

        using var reopened = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal("v", reopened.GetString("k"));
    }
}
