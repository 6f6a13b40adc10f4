using System.Text;
using CrabKv.Storage.Files;
using CrabKv.Storage.Segments;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>Time to live, driven by a <see cref="ManualClock"/>: expiry on read, at open, in compaction, in sweeps and in write-back.</summary>
public sealed class TtlTests : IDisposable
{
    private readonly TempDirectory _dir = new("ttl");
    private readonly ManualClock _clock = new();

    public void Dispose() => _dir.Dispose();

    private StoreOptions Options => new()
    {
        Clock = _clock,
        MaxSegmentBytes = 64 << 10,
        PreallocateSegments = false,
        Compression = false,
    };

    private EmbeddedStore Open(StoreOptions? options = null) => EmbeddedStore.Open(_dir.Path, options ?? Options);

    /// <summary>Every key that has a record in any data segment of the directory.</summary>
    private List<string> KeysOnDisk()
    {
        var keys = new List<string>();
        foreach (var path in Directory.GetFiles(_dir.Path, "seg-*.data"))
        {
            Assert.True(SegmentId.TryParseFileName(Path.GetFileName(path), out var id, out _));
            using var segment = Segment.OpenSealed(FileLayer.Default, id, path);
            var scanner = new SegmentScanner(segment, segment.Length);
            while (scanner.Next() == ScanStatus.Record)
            {
                keys.Add(Encoding.UTF8.GetString(Format.RecordCodec.KeyOf(scanner.Record, scanner.Header)));
            }
        }
        return keys;
    }

    [Fact]
    public void KeyIsReadableUntilItsExpiryAndAbsentFromThen()
    {
        using var store = Open();
        store.Put("k", "v", TimeSpan.FromSeconds(1));
        _clock.AdvanceMilliseconds(999);
        Assert.Equal("v", store.GetString("k")); // also puts it in the read cache
        Assert.Equal("v", store.GetString("k")); // served by the cache
        _clock.AdvanceMilliseconds(1);
        Assert.Null(store.GetString("k"));       // expiry ≤ now: gone, from the cache too
        Assert.False(store.TryGet("k", out _));
        Assert.False(store.Delete("k"));          // an expired key does not "exist"
    }

    [Fact]
    public void ExpiredKeyIsNotResurrectedByReopen()
    {
        using (var store = Open())
        {
            store.Put("k", "short-lived", TimeSpan.FromSeconds(1));
            store.Put("other", "stays");
        }
        _clock.AdvanceMilliseconds(1000);
        using (var store = Open())
        {
            Assert.Null(store.GetString("k"));
            Assert.Equal("stays", store.GetString("other"));
            Assert.Equal(1, store.Count); // dropped at open, not merely hidden on read
        }
    }

    [Fact]
    public void OlderVersionWithoutTtlDoesNotComeBackWhenTheNewerVersionExpires()
    {
        using (var store = Open())
        {
            store.Put("k", "forever");  // older version, no TTL, in segment 1
        }
        using (var store = Open())
        {
            store.Compact();            // now in a merge output with a hint file
        }
        using (var store = Open())
        {
            Assert.True(store.LastRecovery.SegmentsFromHints > 0);
            store.Put("k", "temporary", TimeSpan.FromSeconds(5)); // newer version, later segment
            Assert.Equal("temporary", store.GetString("k"));
        }
        _clock.AdvanceMilliseconds(5000);
        using (var store = Open())
        {
            Assert.Null(store.GetString("k"));
            Assert.Equal(0, store.Count);
            // Also within one session, after a lazy read and a sweep: still nothing.
            Assert.Equal(0, store.SweepExpired());
            store.Compact();
        }
        using (var store = Open())
        {
            Assert.Null(store.GetString("k"));
            Assert.DoesNotContain("k", KeysOnDisk());
        }
    }

    [Fact]
    public void OlderVersionDoesNotComeBackWhenTheNewerVersionExpiresInTheSameSession()
    {
        using var store = Open();
        store.Put("k", "forever");
        store.Flush();
        store.Put("k", "temporary", TimeSpan.FromMilliseconds(10));
        _clock.AdvanceMilliseconds(10);
        Assert.Null(store.GetString("k"));
        Assert.Equal(0, store.SweepExpired()); // the read already dropped it
        Assert.Null(store.GetString("k"));
        store.Compact();
        Assert.Null(store.GetString("k"));
        Assert.DoesNotContain("k", KeysOnDisk());
    }

    [Fact]
    public void TtlSurvivesReopenWithItsAbsoluteExpiry()
    {
        using (var store = Open())
        {
            store.Put("k", "v", TimeSpan.FromSeconds(10));
        }
        _clock.AdvanceMilliseconds(9_999);
        using (var store = Open())
        {
            Assert.Equal("v", store.GetString("k"));
            Assert.True(store.KeyDirectory.TryGet("k", out var loc));
            Assert.Equal(ManualClock.DefaultStart.ToUnixTimeMilliseconds() + 10_000, loc.Expiry);
            _clock.AdvanceMilliseconds(1);
            Assert.Null(store.GetString("k"));
        }
    }

    [Fact]
    public void CompactionDropsExpiredRecords()
    {
        var big = new byte[2000];
        new Random(42).NextBytes(big);
        using (var store = Open())
        {
            store.Put("doomed", big);                               // older version, no TTL
            store.Put("doomed", big, TimeSpan.FromSeconds(1));      // newest version, expires
            store.Put("batch-doomed", big, TimeSpan.FromSeconds(1));
            store.PutBatch([BatchEntry.Put("batch-doomed-2", big, TimeSpan.FromSeconds(1)), BatchEntry.Put("keeper", "x"u8.ToArray())]);
            store.Put("late", big, TimeSpan.FromSeconds(60));        // expires later: kept
            _clock.AdvanceMilliseconds(1000);

            var bytesBefore = store.GetStats().TotalBytes;
            var outcome = store.Compact();
            Assert.True(outcome.RecordsDropped >= 4, $"dropped {outcome.RecordsDropped} records");
            Assert.True(outcome.BytesAfter < outcome.BytesBefore - 3 * big.Length, $"{outcome}");
            Assert.True(store.GetStats().TotalBytes < bytesBefore - 3 * big.Length);
            Assert.Null(store.Get("doomed"));
            Assert.Equal(big, store.Get("late"));
        }
        var onDisk = KeysOnDisk();
        Assert.DoesNotContain("doomed", onDisk);
        Assert.DoesNotContain("batch-doomed", onDisk);
        Assert.DoesNotContain("batch-doomed-2", onDisk);
        Assert.Contains("late", onDisk);
        Assert.Contains("keeper", onDisk);
        using (var store = Open())
        {
            Assert.Null(store.Get("doomed"));
            Assert.Null(store.Get("batch-doomed"));
            Assert.Equal("x", store.GetString("keeper"));
            Assert.Equal(2, store.Count);
        }
    }

    [Fact]
    public void DefaultTtlAppliesToWritesWithoutATtl()
    {
        using var store = Open(Options with { DefaultTtl = TimeSpan.FromSeconds(10) });
        var now = _clock.UnixMilliseconds;
        store.Put("plain", "v");
        store.Put("explicit", "v", TimeSpan.FromSeconds(60));
        store.PutBatch([BatchEntry.Put("batched", "v"u8.ToArray())]);

        Assert.True(store.KeyDirectory.TryGet("plain", out var plain));
        Assert.Equal(now + 10_000, plain.Expiry);
        Assert.True(store.KeyDirectory.TryGet("batched", out var batched));
        Assert.Equal(now + 10_000, batched.Expiry);
        Assert.True(store.KeyDirectory.TryGet("explicit", out var explicitTtl));
        Assert.Equal(now + 60_000, explicitTtl.Expiry);

        _clock.AdvanceMilliseconds(10_000);
        Assert.Null(store.GetString("plain"));
        Assert.Null(store.GetString("batched"));
        Assert.Equal("v", store.GetString("explicit"));
    }

    [Fact]
    public void SweepExpiredRemovesKeysFromTheKeyDirectoryWithoutReads()
    {
        using var store = Open();
        for (var i = 0; i < 5; i++)
        {
            store.Put($"ttl-{i}", "v", TimeSpan.FromSeconds(1));
        }
        for (var i = 0; i < 3; i++)
        {
            store.Put($"keep-{i}", "v");
        }
        store.Put("later", "v", TimeSpan.FromSeconds(2));
        _clock.AdvanceMilliseconds(1000);
        Assert.Equal(9, store.Count);           // nothing read: expired keys still counted
        var staleBefore = store.GetStats().StaleBytes;

        Assert.Equal(5, store.SweepExpired());
        Assert.Equal(4, store.Count);
        Assert.False(store.KeyDirectory.TryGet("ttl-0", out _));
        Assert.True(store.GetStats().StaleBytes > staleBefore, "swept records must count as stale for compaction");
        Assert.Equal(0, store.SweepExpired());

        _clock.AdvanceMilliseconds(1000);
        Assert.Equal(1, store.SweepExpired());
        Assert.Equal(3, store.Count);
    }

    [Fact]
    public void NonPositiveTtlIsRejectedAndChangesNothing()
    {
        using var store = Open();
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Put("k", "v", TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Put("k", "v"u8.ToArray(), TimeSpan.FromMilliseconds(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.PutBatch(
            [BatchEntry.Put("a", "v"u8.ToArray()), BatchEntry.Put("b", "v"u8.ToArray(), TimeSpan.Zero)]));
        Assert.Null(store.GetString("k"));
        Assert.Null(store.GetString("a"));
        Assert.Equal(0, store.Count);
        Assert.Equal(0, store.GetStats().TotalBytes);

        Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddedStore.Open(_dir.Combine("other"), Options with { DefaultTtl = TimeSpan.Zero }));
    }

    [Fact]
    public void WriteBackKeepsTtlsThroughFlush()
    {
        var options = Options with { WriteBack = true };
        using (var store = Open(options))
        {
            store.Put("k", "v", TimeSpan.FromSeconds(5));
            store.PutBatch([BatchEntry.Put("b", "v"u8.ToArray(), TimeSpan.FromSeconds(5))]);
            Assert.Equal(0, store.Count); // still buffered
            store.Flush();
            Assert.Equal(2, store.Count);
            Assert.True(store.KeyDirectory.TryGet("k", out var loc));
            Assert.Equal(_clock.UnixMilliseconds + 5000, loc.Expiry);
        }
        _clock.AdvanceMilliseconds(4999);
        using (var store = Open(options))
        {
            Assert.Equal("v", store.GetString("k")); // before the expiry: present
            Assert.Equal("v", store.GetString("b"));
        }
        _clock.AdvanceMilliseconds(1);
        using (var store = Open(options))
        {
            Assert.Null(store.GetString("k"));       // at the expiry: gone
            Assert.Null(store.GetString("b"));
            Assert.Equal(0, store.Count);
        }
    }

    [Fact]
    public void WriteBackEntryThatExpiresBeforeTheFlushStaysGoneAndHidesTheOlderValue()
    {
        var options = Options with { WriteBack = true };
        using (var store = Open(options))
        {
            store.Put("k", "old, no ttl");
            store.Flush();
            store.Put("k", "new, short ttl", TimeSpan.FromSeconds(1));
            Assert.Equal("new, short ttl", store.GetString("k"));
            _clock.AdvanceMilliseconds(1000);
            Assert.Null(store.GetString("k"));      // buffered and expired: absent, not the older value
            Assert.False(store.Delete("k"));
            store.Flush();
            Assert.Null(store.GetString("k"));
        }
        using (var store = Open(options))
        {
            Assert.Null(store.GetString("k"));
            Assert.Equal(0, store.Count);
        }
    }
}
