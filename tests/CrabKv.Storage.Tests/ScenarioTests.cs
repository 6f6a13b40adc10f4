using System.Text;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>
/// The original CrabKv's end-to-end scenarios, at engine level: the put / overwrite /
/// delete / reopen / compact cycle, TTL across reopen, write-back, batches and hints.
/// </summary>
public sealed class ScenarioTests : IDisposable
{
    private readonly TempDirectory _dir = new("scenario");
    private readonly ManualClock _clock = new();

    public void Dispose() => _dir.Dispose();

    private StoreOptions Options => new()
    {
        Clock = _clock,
        MaxSegmentBytes = 16 << 10,
        PreallocateSegments = false,
    };

    private static byte[] ValueOf(string key, int version, int length = 200)
    {
        var b = new byte[length];
        new Random(HashCode.Combine(key.Length, key[^1], key[0], version)).NextBytes(b);
        var tag = Encoding.UTF8.GetBytes($"{key}@{version}");
        tag.AsSpan(0, Math.Min(tag.Length, length)).CopyTo(b);
        return b;
    }

    private static void AssertMatches(EmbeddedStore store, IReadOnlyDictionary<string, byte[]?> expected, string when)
    {
        foreach (var (key, value) in expected)
        {
            var actual = store.Get(key);
            if (value is null)
            {
                Assert.True(actual is null, $"{when}: deleted key '{key}' came back");
            }
            else
            {
                Assert.True(actual is not null, $"{when}: '{key}' is missing");
                Assert.True(value.AsSpan().SequenceEqual(actual), $"{when}: '{key}' has the wrong value");
            }
        }
        Assert.Equal(expected.Count(kv => kv.Value is not null), store.Count);
    }

    private long DataFileBytes() => Directory.GetFiles(_dir.Path, "seg-*.data").Sum(f => new FileInfo(f).Length);

    [Fact]
    public void ValuesSurviveReopenAndCompactionAndDeletedKeysStayDeleted()
    {
        var expected = new Dictionary<string, byte[]?>();
        using (var store = EmbeddedStore.Open(_dir.Path, Options))
        {
            for (var version = 1; version <= 4; version++)
            {
                for (var i = 0; i < 100; i++)
                {
                    if (version > 1 && i % 2 == 1)
                    {
                        continue; // odd keys are written once, even keys overwritten 3 times
                    }
                    var key = $"key-{i:D3}";
                    store.Put(key, expected[key] = ValueOf(key, version));
                }
            }
            for (var i = 0; i < 100; i += 4)
            {
                var key = $"key-{i:D3}";
                Assert.True(store.Delete(key));
                expected[key] = null;
            }
            AssertMatches(store, expected, "before reopen");
        }

        var bytesBeforeCompaction = DataFileBytes();
        using (var store = EmbeddedStore.Open(_dir.Path, Options))
        {
            AssertMatches(store, expected, "after reopen");
            var outcome = store.Compact();
            Assert.True(outcome.BytesAfter < outcome.BytesBefore / 2, $"compaction should drop overwritten and deleted records: {outcome}");
            Assert.True(outcome.RecordsDropped >= 150 + 25, $"{outcome}");
            AssertMatches(store, expected, "after compaction");

            // Delete after the compaction (tombstone in a newer segment than the merged data), then compact again.
            Assert.True(store.Delete("key-001"));
            expected["key-001"] = null;
            Assert.False(store.Delete("key-000")); // already deleted
        }
        Assert.True(DataFileBytes() < bytesBeforeCompaction / 2, "the directory should shrink");

        using (var store = EmbeddedStore.Open(_dir.Path, Options))
        {
            AssertMatches(store, expected, "after compaction and reopen");
            store.Compact();
            AssertMatches(store, expected, "after the second compaction");
        }
        using (var store = EmbeddedStore.Open(_dir.Path, Options))
        {
            AssertMatches(store, expected, "after the second compaction and reopen");
            Assert.Null(store.LastRecovery.TornTail);
        }
    }

    [Fact]
    public void TtlExpiryHoldsAcrossReopen()
    {
        using (var store = EmbeddedStore.Open(_dir.Path, Options))
        {
            store.Put("session", "token", TimeSpan.FromMinutes(30));
            store.Put("config", "permanent");
        }
        _clock.Advance(TimeSpan.FromMinutes(29));
        using (var store = EmbeddedStore.Open(_dir.Path, Options))
        {
            Assert.Equal("token", store.GetString("session"));
        }
        _clock.Advance(TimeSpan.FromMinutes(1));
        using (var store = EmbeddedStore.Open(_dir.Path, Options))
        {
            Assert.Null(store.GetString("session"));
            Assert.Equal("permanent", store.GetString("config"));
            Assert.Equal(1, store.Count);
        }
    }

    // ------------------------------------------------------------ write-back

    private StoreOptions WriteBack => Options with { WriteBack = true };

    [Fact]
    public void WriteBackWritesAreReadableBeforeTheFlush()
    {
        using var store = EmbeddedStore.Open(_dir.Path, WriteBack);
        store.Put("a", "1");
        store.Put("b", "2");
        store.PutBatch([BatchEntry.Put("c", "3"u8.ToArray()), BatchEntry.Delete("b")]);
        Assert.True(store.Delete("a"));
        store.Put("a", "again");

        Assert.Equal("again", store.GetString("a"));
        Assert.Null(store.GetString("b"));
        Assert.Equal("3", store.GetString("c"));
        var stats = store.GetStats();
        Assert.True(stats.DirtyBytes > 0);
        Assert.Equal(0, stats.TotalBytes); // nothing written to the log yet
        Assert.Equal(0, store.Count);       // buffered entries are not counted

        store.Flush();
        Assert.Equal(0, store.GetStats().DirtyBytes);
        Assert.Equal(2, store.Count);
        Assert.Equal("again", store.GetString("a"));
        Assert.Null(store.GetString("b"));
        Assert.Equal("3", store.GetString("c"));
    }

    [Fact]
    public void WriteBackWritesNotFlushedAreLostInACrash()
    {
        var store = EmbeddedStore.Open(_dir.Path, WriteBack);
        store.Put("a", "1");
        store.PutBatch([BatchEntry.Put("b", "2"u8.ToArray())]);
        Assert.Equal("1", store.GetString("a"));
        store.SimulateCrash();

        using var reopened = EmbeddedStore.Open(_dir.Path, WriteBack);
        Assert.Null(reopened.GetString("a"));
        Assert.Null(reopened.GetString("b"));
        Assert.Equal(0, reopened.Count);
    }

    [Fact]
    public void WriteBackWritesFlushedBeforeACrashPersist()
    {
        var store = EmbeddedStore.Open(_dir.Path, WriteBack);
        store.Put("a", "1");
        store.Put("b", "2");
        store.Flush(); // hands the bytes to the OS; SimulateCrash keeps what the OS has
        store.Put("c", "3");
        store.Delete("a");
        store.SimulateCrash();

        using var reopened = EmbeddedStore.Open(_dir.Path, WriteBack);
        Assert.Equal("1", reopened.GetString("a"));
        Assert.Equal("2", reopened.GetString("b"));
        Assert.Null(reopened.GetString("c"));
        Assert.Equal(2, reopened.Count);
    }

    [Fact]
    public void WriteBackOverwriteReplacesTheBufferedValue()
    {
        using (var store = EmbeddedStore.Open(_dir.Path, WriteBack with { Compression = false }))
        {
            store.Put("k", "first");
            var dirtyAfterOne = store.GetStats().DirtyBytes;
            store.Put("k", "second");
            store.Put("k", "third!");
            Assert.Equal("third!", store.GetString("k"));
            Assert.Equal(dirtyAfterOne + 1, store.GetStats().DirtyBytes); // one entry, charged for the newest value only
            store.Flush();
            Assert.Equal(19 + 1 + 6, store.GetStats().TotalBytes);     // coalesced: one record reached the log
            Assert.Equal("third!", store.GetString("k"));

            store.Put("k", "fourth");
            Assert.True(store.Delete("k"));                              // buffered delete replaces the buffered put
            Assert.Null(store.GetString("k"));
        }
        using (var store = EmbeddedStore.Open(_dir.Path, WriteBack))
        {
            Assert.Null(store.GetString("k"));
            Assert.Equal(0, store.Count);
        }
    }

    [Fact]
    public void WriteBackBufferFlushesItselfInsteadOfGrowingPastItsLimit()
    {
        const long Limit = 2048;
        var options = WriteBack with { MaxDirtyBytes = Limit };
        var expected = new Dictionary<string, byte[]?>();
        var rng = new Random(99);
        var sawSelfFlush = false;
        using (var store = EmbeddedStore.Open(_dir.Path, options))
        {
            for (var i = 0; i < 300; i++)
            {
                var key = $"k{rng.Next(60)}";
                if (rng.Next(5) == 0)
                {
                    store.Delete(key);
                    if (expected.ContainsKey(key))
                    {
                        expected[key] = null;
                    }
                }
                else
                {
                    store.Put(key, expected[key] = ValueOf(key, i, rng.Next(50, 400)));
                }
                var dirty = store.GetStats().DirtyBytes;
                Assert.True(dirty <= Limit, $"write {i}: DirtyBytes {dirty} passed the limit {Limit}");
                sawSelfFlush |= store.Count > 0;
            }
            Assert.True(sawSelfFlush, "the buffer never flushed itself");
            foreach (var (key, value) in expected)
            {
                Assert.Equal(value, store.Get(key)); // from the buffer or the log
            }
            store.Flush();
            AssertMatches(store, expected, "after the final flush");
        }
        using (var store = EmbeddedStore.Open(_dir.Path, options))
        {
            AssertMatches(store, expected, "after reopen");
        }
    }

    [Fact]
    public void BatchIsVisibleAllAtOnceAndAnInvalidBatchWritesNothing()
    {
        using var store = EmbeddedStore.Open(_dir.Path, Options with { MaxValueBytes = 1000 });
        store.Put("x", "old");
        store.PutBatch([BatchEntry.Put("a", "1"u8.ToArray()), BatchEntry.Put("b", "2"u8.ToArray()), BatchEntry.Delete("x")]);
        Assert.Equal("1", store.GetString("a"));
        Assert.Equal("2", store.GetString("b"));
        Assert.Null(store.GetString("x"));

        var bytes = store.GetStats().TotalBytes;
        Assert.Throws<InvalidKeyException>(() => store.PutBatch([BatchEntry.Put("c", "3"u8.ToArray()), BatchEntry.Put("", "4"u8.ToArray())]));
        Assert.Throws<ValueTooLargeException>(() => store.PutBatch([BatchEntry.Delete("a"), BatchEntry.Put("d", new byte[1001])]));
        Assert.Throws<ArgumentException>(() => store.PutBatch([BatchEntry.Delete("a"), null!]));
        Assert.Null(store.GetString("c"));
        Assert.Equal("1", store.GetString("a"));
        Assert.Null(store.GetString("d"));
        Assert.Equal(bytes, store.GetStats().TotalBytes);
        Assert.Equal(2, store.Count);
    }

    [Fact]
    public void WriteBackBatchThatCannotBeBufferedHasNoPartialEffect()
    {
        var store = EmbeddedStore.Open(_dir.Path, WriteBack with { MaxDirtyBytes = 1024 });
        try
        {
            store.PutBatch([BatchEntry.Put("small", "1"u8.ToArray()), BatchEntry.Put("huge", new byte[2000])]);
        }
        catch (CrabKvException)
        {
            // Refusing the batch is acceptable; applying half of it is not.
        }
        var small = store.GetString("small") is not null;
        var huge = store.Get("huge") is not null;
        Assert.True(small == huge, $"batch applied partially: small {(small ? "visible" : "absent")}, huge {(huge ? "visible" : "absent")}");
        store.Flush();
        store.SimulateCrash();
        using var reopened = EmbeddedStore.Open(_dir.Path, WriteBack with { MaxDirtyBytes = 1024 });
        small = reopened.GetString("small") is not null;
        huge = reopened.Get("huge") is not null;
        Assert.True(small == huge, $"after flush and reopen the batch is partial: small {(small ? "visible" : "absent")}, huge {(huge ? "visible" : "absent")}");
    }

    [Fact]
    public void WriteBackBatchValueIsCopiedWhenBuffered()
    {
        using var store = EmbeddedStore.Open(_dir.Path, WriteBack);
        var buffer = "hello"u8.ToArray();
        store.PutBatch([BatchEntry.Put("k", buffer)]);
        buffer[0] = (byte)'J'; // the caller reuses its buffer
        Assert.Equal("hello", store.GetString("k"));
        store.Flush();
        Assert.Equal("hello", store.GetString("k"));
    }

    [Fact]
    public void ModifyingAReturnedValueDoesNotChangeTheStoredValue()
    {
        using var store = EmbeddedStore.Open(_dir.Path, Options);
        store.Put("k", "hello");
        var first = store.Get("k")!;
        first[0] = (byte)'J';
        Assert.Equal("hello", store.GetString("k"));
    }

    // ------------------------------------------------------------ hints

    [Fact]
    public void KeyDirectoryLoadedFromHintsEqualsTheOneFromAFullScan()
    {
        var options = Options with { MaxSegmentBytes = 4096, Compression = true, CompressionMinValueBytes = 16 };
        var rng = new Random(7);
        using (var store = EmbeddedStore.Open(_dir.Path, options))
        {
            for (var i = 0; i < 400; i++)
            {
                var key = $"key-{rng.Next(80)}";
                switch (rng.Next(6))
                {
                    case 0:
                        store.Delete(key);
                        break;
                    case 1:
                        store.Put(key, ValueOf(key, i, rng.Next(0, 300)), TimeSpan.FromMilliseconds(rng.Next(1, 20_000)));
                        break;
                    case 2:
                        store.PutBatch([BatchEntry.Put(key, ValueOf(key, i, 60)), BatchEntry.Delete($"key-{rng.Next(80)}")]);
                        break;
                    default:
                        store.Put(key, ValueOf(key, i, rng.Next(0, 300)));
                        break;
                }
                if (i == 250)
                {
                    _clock.AdvanceMilliseconds(5_000); // some TTLs are over before the merge, some after
                    store.Compact();
                }
            }
        }
        _clock.AdvanceMilliseconds(5_000);
        Assert.True(Directory.GetFiles(_dir.Path, "*.hint").Length >= 2, "the merge should have produced several outputs with hints");

        using var withHints = TempDirectory.CopyOf(_dir.Path, "hints");
        using var withoutHints = TempDirectory.CopyOf(_dir.Path, "nohints");
        foreach (var hint in Directory.GetFiles(withoutHints.Path, "*.hint"))
        {
            File.Delete(hint);
        }

        using var fromHints = EmbeddedStore.Open(withHints.Path, options);
        using var fromScan = EmbeddedStore.Open(withoutHints.Path, options);
        Assert.True(fromHints.LastRecovery.SegmentsFromHints >= 2);
        Assert.Equal(0, fromScan.LastRecovery.SegmentsFromHints);
        Assert.Equal(fromHints.LastRecovery.SegmentsFromHints + fromHints.LastRecovery.SegmentsScanned, fromScan.LastRecovery.SegmentsScanned);

        var a = fromHints.KeyDirectory.ToDictionary();
        var b = fromScan.KeyDirectory.ToDictionary();
        Assert.True(a.Count > 10, $"only {a.Count} keys: the scenario tests little");
        Assert.Equal(b.Keys.Order(), a.Keys.Order());
        foreach (var (key, loc) in b)
        {
            Assert.True(loc == a[key], $"'{key}': {a[key]} from hints, {loc} from the scan");
            Assert.Equal(fromScan.Get(key), fromHints.Get(key));
        }
        var sa = fromHints.GetStats();
        var sb = fromScan.GetStats();
        Assert.Equal(sb.TotalBytes, sa.TotalBytes);
        Assert.Equal(sb.StaleBytes, sa.StaleBytes);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DuplicateKeysInOneBatchTheLastEntryWinsAlsoAfterReopen(bool writeBack)
    {
        var options = writeBack ? WriteBack : Options;
        void Check(EmbeddedStore s)
        {
            Assert.Equal("3", s.GetString("a"));
            Assert.Equal("y", s.GetString("b"));
            Assert.Null(s.GetString("gone"));
        }
        using (var store = EmbeddedStore.Open(_dir.Path, options))
        {
            store.Put("gone", "before");
            store.PutBatch(
            [
                BatchEntry.Put("a", "1"u8.ToArray()),
                BatchEntry.Put("gone", "again"u8.ToArray()),
                BatchEntry.Put("a", "2"u8.ToArray()),
                BatchEntry.Delete("gone"),
                BatchEntry.Put("b", "x"u8.ToArray()),
                BatchEntry.Delete("b"),
                BatchEntry.Put("b", "y"u8.ToArray()),
                BatchEntry.Put("a", "3"u8.ToArray()),
            ]);
            Check(store);
        }
        using (var store = EmbeddedStore.Open(_dir.Path, options))
        {
            Check(store);
            Assert.Equal(2, store.Count);
        }
    }

    [Fact]
    public void ValuesReturnedByTheEngineAreTheCallersOwn()
    {
        using var store = EmbeddedStore.Open(_dir.Path, Options);
        store.Put("k", "original");
        for (var read = 0; read < 3; read++) // disk, then cache hits
        {
            var value = store.Get("k")!;
            Assert.Equal("original", System.Text.Encoding.UTF8.GetString(value));
            Array.Fill(value, (byte)'X');
        }
    }
}
