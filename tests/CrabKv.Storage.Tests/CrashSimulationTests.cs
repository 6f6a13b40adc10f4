using System.Text;
using CrabKv.Storage.Format;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>
/// Crashes simulated at the file level: the active segment cut (or zero-filled) at every
/// byte of its last records, garbage after the data, damage before valid data, and
/// <see cref="EmbeddedStore.SimulateCrash"/> with and without a flush.
/// </summary>
public sealed class CrashSimulationTests : IDisposable
{
    private const int HeaderSize = FormatConstants.FileHeaderSize;
    private readonly TempDirectory _dir = new("crash");
    private readonly ManualClock _clock = new();

    public void Dispose() => _dir.Dispose();

    private StoreOptions Options(bool preallocate = false) => new()
    {
        Clock = _clock,
        Compression = false,         // record sizes are then exactly 19 + key + value
        MaxSegmentBytes = 1 << 20,   // everything in one segment
        WriteBufferBytes = 64 << 10,
        PreallocateSegments = preallocate,
    };

    private static byte[] Bytes(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>One logical operation: a single put/delete, or a batch; applied atomically.</summary>
    private sealed record Op(string Name, IReadOnlyList<BatchEntry> Members, bool IsBatch);

    private static Op Put(string key, int length, int seed, TimeSpan? ttl = null) =>
        new($"put {key}", [BatchEntry.Put(key, Bytes(length, seed), ttl)], false);

    private static Op Del(string key) => new($"delete {key}", [BatchEntry.Delete(key)], false);

    private static Op Batch(params BatchEntry[] members) =>
        new("batch [" + string.Join(", ", members.Select(m => (m.Value is null ? "del " : "put ") + m.Key)) + "]", members, true);

    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    /// <summary>Operations before the part of the file that gets cut.</summary>
    private static readonly Op[] Prefix =
    [
        Put("alpha", 40, 1),
        Put("beta", 25, 2),
        Batch(BatchEntry.Put("gamma", Bytes(30, 3)), BatchEntry.Put("delta", Bytes(10, 4)), BatchEntry.Delete("alpha")),
        Put("beta", 33, 5),
        Del("gamma"),
        Put("epsilon", 20, 6, Hour),
    ];

    /// <summary>The last operations: 10 records, two batches of 3 and 4 records, a tombstone in each.</summary>
    private static readonly Op[] Tail =
    [
        Put("zeta", 17, 7),
        Batch(BatchEntry.Put("eta", Bytes(12, 8)), BatchEntry.Delete("beta"), BatchEntry.Put("θήτα", Bytes(21, 9), Hour)),
        Del("delta"),
        Batch(BatchEntry.Put("alpha", Bytes(9, 10)), BatchEntry.Put("iota", []), BatchEntry.Put("zeta", Bytes(14, 11)), BatchEntry.Delete("eta")),
        Put("kappa", 11, 12),
    ];

    private static readonly string[] Universe = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "θήτα", "iota", "kappa", "after-recovery"];

    private static void Apply(EmbeddedStore store, Op op)
    {
        if (op.IsBatch)
        {
            store.PutBatch(op.Members);
            return;
        }
        var m = op.Members[0];
        if (m.Value is null)
        {
            store.Delete(m.Key);
        }
        else
        {
            store.Put(m.Key, m.Value, m.Ttl);
        }
    }

    private static void Apply(Dictionary<string, (byte[] Value, long Expiry)> model, Op op, long now)
    {
        foreach (var m in op.Members)
        {
            if (m.Value is null)
            {
                model.Remove(m.Key);
            }
            else
            {
                model[m.Key] = (m.Value, m.Ttl is null ? 0 : now + (long)m.Ttl.Value.TotalMilliseconds);
            }
        }
    }

    private static long SizeOf(Op op) =>
        op.Members.Sum(m => (long)RecordCodec.SizeOf(Encoding.UTF8.GetByteCount(m.Key), m.Value?.Length ?? 0));

    private static void AssertState(EmbeddedStore store, Dictionary<string, (byte[] Value, long Expiry)> expected, string context)
    {
        foreach (var key in Universe)
        {
            var found = store.TryGet(key, out var value);
            if (expected.TryGetValue(key, out var e))
            {
                Assert.True(found, $"{context}: '{key}' should be present");
                Assert.True(e.Value.AsSpan().SequenceEqual(value), $"{context}: '{key}' has the wrong value");
                Assert.True(store.KeyDirectory.TryGet(key, out var loc), $"{context}: '{key}' not in the key directory");
                Assert.True(e.Expiry == loc.Expiry, $"{context}: '{key}' expiry {loc.Expiry}, expected {e.Expiry}");
            }
            else
            {
                Assert.False(found, $"{context}: '{key}' should be absent but reads {value.Length} bytes");
            }
        }
        Assert.True(expected.Count == store.Count, $"{context}: Count {store.Count}, expected {expected.Count}");
    }

    /// <summary>
    /// Writes Prefix + Tail into one segment and returns its path, the offset where the tail
    /// starts, and the end offset of every operation (the committed boundaries).
    /// </summary>
    private (string Segment, long TailStart, List<(long End, int OpsDone)> Boundaries) WriteKnownSequence()
    {
        using (var store = EmbeddedStore.Open(_dir.Path, Options()))
        {
            foreach (var op in Prefix.Concat(Tail))
            {
                Apply(store, op);
            }
            store.Flush();
        }
        var segments = Directory.GetFiles(_dir.Path, "seg-*.data");
        Assert.Single(segments);
        var boundaries = new List<(long End, int OpsDone)>();
        long pos = HeaderSize;
        var all = Prefix.Concat(Tail).ToArray();
        for (var i = 0; i < all.Length; i++)
        {
            pos += SizeOf(all[i]);
            boundaries.Add((pos, i + 1));
        }
        Assert.Equal(pos, new FileInfo(segments[0]).Length);
        return (segments[0], boundaries[Prefix.Length - 1].End, boundaries);
    }

    private Dictionary<string, (byte[] Value, long Expiry)> ModelAfter(int opsDone)
    {
        var model = new Dictionary<string, (byte[], long)>(StringComparer.Ordinal);
        foreach (var op in Prefix.Concat(Tail).Take(opsDone))
        {
            Apply(model, op, _clock.UnixMilliseconds);
        }
        return model;
    }

    [Fact]
    public void TruncationAtAnyByteOfTheLastRecordsRecoversAWholeOperationPrefix()
    {
        var (segment, tailStart, boundaries) = WriteKnownSequence();
        var fileEnd = boundaries[^1].End;
        var segmentName = Path.GetFileName(segment);
        var tornCount = 0;
        for (var cut = tailStart; cut <= fileEnd; cut++)
        {
            var (boundary, opsDone) = boundaries.Last(b => b.End <= cut);
            var expected = ModelAfter(opsDone);
            var context = $"cut at {cut} (last whole operation ends at {boundary}, {opsDone} operations committed)";
            using var copy = TempDirectory.CopyOf(_dir.Path, "cut");
            var copySegment = copy.Combine(segmentName);
            using (var fs = new FileStream(copySegment, FileMode.Open, FileAccess.ReadWrite))
            {
                fs.SetLength(cut);
            }
            using (var store = EmbeddedStore.Open(copy.Path, Options()))
            {
                var torn = store.LastRecovery.TornTail;
                if (cut == boundary)
                {
                    Assert.True(torn is null, $"{context}: a cut on an operation boundary is not a torn tail, but open reported {torn}");
                }
                else
                {
                    tornCount++;
                    Assert.True(torn is not null, $"{context}: open did not report the torn tail");
                    Assert.Equal(Path.GetFullPath(copySegment), torn.Value.Path);
                    Assert.True(boundary == torn.Value.Offset, $"{context}: torn tail cut at {torn.Value.Offset}");
                    Assert.True(cut - boundary == torn.Value.BytesCut, $"{context}: torn tail cut {torn.Value.BytesCut} bytes");
                }
                Assert.True(boundary == new FileInfo(copySegment).Length, $"{context}: segment is {new FileInfo(copySegment).Length} bytes after open");
                AssertState(store, expected, context);

                if ((cut - tailStart) % 7 == 0)
                {
                    // The recovered store keeps working, and what it writes next survives a reopen.
                    store.Put("after-recovery", Bytes(5, (int)cut));
                }
            }
            if ((cut - tailStart) % 7 == 0)
            {
                expected["after-recovery"] = (Bytes(5, (int)cut), 0);
                using var again = EmbeddedStore.Open(copy.Path, Options());
                Assert.True(again.LastRecovery.TornTail is null, $"{context}: second open found a torn tail {again.LastRecovery.TornTail}");
                AssertState(again, expected, context + ", after a write and a second open");
            }
        }
        Assert.True(tornCount > 200, $"only {tornCount} cuts were torn; the tail is too short to test anything");
    }

    [Fact]
    public void ZeroFillAfterAnyByteOfTheLastRecordsRecoversAWholeOperationPrefix()
    {
        // A crash with a preallocated segment: the bytes the OS never got read back as zeros,
        // and the file keeps its full length.
        var (segment, tailStart, boundaries) = WriteKnownSequence();
        var fileEnd = boundaries[^1].End;
        var segmentName = Path.GetFileName(segment);
        var original = File.ReadAllBytes(segment);
        const int ZeroTail = 4096;
        for (var cut = tailStart; cut <= fileEnd; cut++)
        {
            var (boundary, opsDone) = boundaries.Last(b => b.End <= cut);
            var context = $"zero fill from {cut} (last whole operation ends at {boundary})";
            using var copy = TempDirectory.CopyOf(_dir.Path, "zero");
            var copySegment = copy.Combine(segmentName);
            var bytes = new byte[fileEnd + ZeroTail];
            original.AsSpan(0, (int)cut).CopyTo(bytes);
            File.WriteAllBytes(copySegment, bytes);
            using var store = EmbeddedStore.Open(copy.Path, Options());
            var torn = store.LastRecovery.TornTail;
            var partialWrite = bytes.AsSpan((int)boundary, (int)(cut - boundary)).ContainsAnyExcept((byte)0);
            if (partialWrite)
            {
                Assert.True(torn is not null, $"{context}: a partial record before the zeros must be reported as a torn tail");
                Assert.True(boundary == torn.Value.Offset, $"{context}: torn tail cut at {torn.Value.Offset}");
                Assert.True(bytes.Length - boundary == torn.Value.BytesCut, $"{context}: torn tail cut {torn.Value.BytesCut} bytes");
            }
            else
            {
                Assert.True(torn is null, $"{context}: a zero tail alone is cut silently, but open reported {torn}");
            }
            Assert.True(boundary == new FileInfo(copySegment).Length, $"{context}: segment is {new FileInfo(copySegment).Length} bytes after open");
            AssertState(store, ModelAfter(opsDone), context);
        }
    }

    /// <summary>The next write to a data segment writes all but its last bytes, then fails as a full disk does.</summary>
    private sealed class PartialWriteLayer() : TestSupport.WrappingFileLayer(Files.FileLayer.Default)
    {
        public int ShortBy { get; set; }

        public override void Write(Microsoft.Win32.SafeHandles.SafeFileHandle file, ReadOnlySpan<byte> source, long offset) =>
            WriteThenFail(file, source, offset, durable: false);

        public override void WriteDurable(Microsoft.Win32.SafeHandles.SafeFileHandle file, ReadOnlySpan<byte> source, long offset) =>
            WriteThenFail(file, source, offset, durable: true);

        private void WriteThenFail(Microsoft.Win32.SafeHandles.SafeFileHandle file, ReadOnlySpan<byte> source, long offset, bool durable)
        {
            if (ShortBy > 0 && source.Length > ShortBy && source.ContainsAnyExcept((byte)0))
            {
                Inner.Write(file, source[..^ShortBy], offset);
                Inner.SyncData(file); // those bytes are on the disk
                ShortBy = 0;
                throw new IOException("No space left on device (injected after a partial write)");
            }
            if (durable)
            {
                Inner.WriteDurable(file, source, offset);
            }
            else
            {
                Inner.Write(file, source, offset);
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AWriteThatFailsPartWayIsCutBackSoItsWholeRecordsDoNotComeBackAtTheNextOpen(bool preallocate)
    {
        // A full disk: the write of three puts reaches the file up to the middle of the third
        // and fails. The caller is told it failed; the first two puts are whole records on the
        // disk, and without the cut the next open applied them.
        var layer = new PartialWriteLayer();
        var options = Options(preallocate) with { Files = layer };
        var store = EmbeddedStore.Open(_dir.Path, options);
        store.Put("a", "1");
        store.Put("b", "2");
        store.Sync();
        store.Put("c", "3");
        store.Put("d", "4");
        store.Put("e", "5");
        layer.ShortBy = 3;

        var failed = Assert.Throws<IOException>(() => store.Sync());

        Assert.Contains("No space left", failed.Message);
        store.SimulateCrash();
        using var reopened = EmbeddedStore.Open(_dir.Path, Options(preallocate));
        Assert.Equal("1", reopened.GetString("a"));
        Assert.Equal("2", reopened.GetString("b"));
        Assert.All(new[] { "c", "d", "e" }, k => Assert.Null(reopened.GetString(k)));
    }

    /// <summary>
    /// Every op of Prefix and Tail written and flushed, then a crash: the active segment keeps
    /// its preallocated zero tail. Returns the model, that segment's id and path, and where its data ends.
    /// </summary>
    private (Dictionary<string, (byte[] Value, long Expiry)> Model, CrabKv.Storage.Segments.SegmentId Active, string Segment, long DataEnd) CrashAfterFlush(StoreOptions options)
    {
        var store = EmbeddedStore.Open(_dir.Path, options);
        var model = new Dictionary<string, (byte[] Value, long Expiry)>(StringComparer.Ordinal);
        foreach (var op in Prefix.Concat(Tail))
        {
            Apply(store, op);
            Apply(model, op, _clock.UnixMilliseconds);
        }
        store.Flush();
        var active = store.GetStats().ActiveSegment;
        store.SimulateCrash();
        return (model, active, Path.Combine(_dir.Path, active.DataFileName), HeaderSize + Prefix.Concat(Tail).Sum(SizeOf));
    }

    [Fact]
    public void CrashAfterFlushLeavesAZeroTailThatRecoveryCutsSilently()
    {
        var options = Options(preallocate: true) with { MaxSegmentBytes = 64 << 10 };
        var (model, _, segment, dataEnd) = CrashAfterFlush(options);

        Assert.Equal(64 << 10, new FileInfo(segment).Length); // preallocated, never trimmed
        Assert.False(File.ReadAllBytes(segment).AsSpan((int)dataEnd).ContainsAnyExcept((byte)0));

        var messages = new List<string>();
        using var reopened = EmbeddedStore.Open(_dir.Path, options with { Log = messages.Add });
        Assert.Null(reopened.LastRecovery.TornTail);
        Assert.DoesNotContain(messages, m => m.Contains("Torn", StringComparison.OrdinalIgnoreCase));
        Assert.Equal(dataEnd, new FileInfo(segment).Length);
        AssertState(reopened, model, "after a crash following a flush");
    }

    [Fact]
    public void ACrashInsideARollLeavesAZeroTailBeforeAnEmptySegmentAndRecoveryCutsItSilently()
    {
        // A roll creates the next segment, then seals (trims, fsyncs) the current one. A crash
        // in between leaves the current segment with its preallocated zero tail, no longer the
        // last file: observed as a node that would not start (kill -9 during compactions).
        var options = Options(preallocate: true) with { MaxSegmentBytes = 64 << 10 };
        var (model, current, segment, dataEnd) = CrashAfterFlush(options);
        // The next segment as the roll creates it: a header, then preallocated zeros.
        var next = CrabKv.Storage.Segments.SegmentId.From(current.Sequence + 1, 0);
        var created = new byte[32 << 10];
        CrabKv.Storage.Segments.FileHeader.Write(created, CrabKv.Storage.Format.FormatConstants.SegmentMagic, next);
        File.WriteAllBytes(Path.Combine(_dir.Path, next.DataFileName), created);
        Assert.Equal(64 << 10, new FileInfo(segment).Length); // the current one: preallocated, never trimmed

        var verify = CrabKv.Storage.Recovery.Repair.Verify(_dir.Path);
        Assert.True(verify.Clean, string.Join("; ", verify.Damaged.Select(d => d.Path)));
        var messages = new List<string>();
        using (var reopened = EmbeddedStore.Open(_dir.Path, options with { Log = messages.Add }))
        {
            Assert.Null(reopened.LastRecovery.TornTail);
            Assert.DoesNotContain(messages, m => m.Contains("Torn", StringComparison.OrdinalIgnoreCase));
            Assert.Equal(dataEnd, new FileInfo(segment).Length); // cut at the end of its records
            Assert.False(File.Exists(Path.Combine(_dir.Path, next.DataFileName))); // held nothing: deleted
            AssertState(reopened, model, "after a crash inside a roll");
            reopened.Put("after", "the crash");
        }
        using var again = EmbeddedStore.Open(_dir.Path, options);
        Assert.Equal("the crash", again.GetString("after"));
        model["after"] = ("the crash"u8.ToArray(), 0);
        AssertState(again, model, "reopened once more");
    }

    [Fact]
    public void UnflushedWritesAreLostAndFlushedWritesSurviveACrash()
    {
        var options = Options(preallocate: true);
        var store = EmbeddedStore.Open(_dir.Path, options);
        store.Put("kept-1", "flushed");
        store.PutBatch([BatchEntry.Put("kept-2", "flushed"u8.ToArray()), BatchEntry.Put("kept-3", "flushed"u8.ToArray())]);
        store.Flush();
        store.Put("lost", "buffered only");
        store.Delete("kept-1");
        store.Put("kept-2", "overwritten in the buffer only");
        store.PutBatch([BatchEntry.Put("lost-batch", "x"u8.ToArray()), BatchEntry.Delete("kept-3")]);
        Assert.Equal("buffered only", store.GetString("lost")); // readable from the write buffer
        store.SimulateCrash();

        using var reopened = EmbeddedStore.Open(_dir.Path, options);
        Assert.Equal("flushed", reopened.GetString("kept-1"));
        Assert.Equal("flushed", reopened.GetString("kept-2"));
        Assert.Equal("flushed", reopened.GetString("kept-3"));
        Assert.Null(reopened.GetString("lost"));
        Assert.Null(reopened.GetString("lost-batch"));
        Assert.Equal(3, reopened.Count);
        Assert.Null(reopened.LastRecovery.TornTail);
    }

    [Fact]
    public void GarbageAfterTheLastRecordIsCutOffAsATornTail()
    {
        var (segment, _, boundaries) = WriteKnownSequence();
        var end = boundaries[^1].End;
        var seed = 777;
        var garbage = Bytes(300, seed);
        garbage[0] |= 0x80; // unknown flag bits would do too; make sure it is not a zero run
        using (var fs = new FileStream(segment, FileMode.Append, FileAccess.Write))
        {
            fs.Write(garbage);
        }
        using var store = EmbeddedStore.Open(_dir.Path, Options());
        var torn = store.LastRecovery.TornTail;
        Assert.True(torn is not null, $"garbage seed {seed}: not reported as a torn tail");
        Assert.Equal(Path.GetFullPath(segment), torn.Value.Path);
        Assert.Equal(end, torn.Value.Offset);
        Assert.Equal(garbage.Length, torn.Value.BytesCut);
        Assert.Equal(end, new FileInfo(segment).Length);
        AssertState(store, ModelAfter(Prefix.Length + Tail.Length), $"garbage seed {seed}");
    }

    [Fact]
    public void WriteBackBatchIsAllOrNoneAcrossACrashWhenTheBufferFillsMidBatch()
    {
        // Each member costs ~3 KB of dirty bytes; the limit holds one at a time, and the
        // 4 KiB write buffer holds one record, so the first member reaches the OS while
        // the batch call is still running.
        var options = Options() with { WriteBack = true, MaxDirtyBytes = 5000, WriteBufferBytes = 4096 };
        var store = EmbeddedStore.Open(_dir.Path, options);
        store.PutBatch(
        [
            BatchEntry.Put("a", Bytes(3000, 1)),
            BatchEntry.Put("b", Bytes(3000, 2)),
            BatchEntry.Put("c", Bytes(3000, 3)),
        ]);
        store.SimulateCrash(); // the caller never flushed: none of the batch, or all of it, may survive

        using var reopened = EmbeddedStore.Open(_dir.Path, options);
        var visible = new[] { "a", "b", "c" }.Where(k => reopened.Get(k) is not null).ToArray();
        Assert.True(visible.Length is 0 or 3, $"batch partially applied after the crash: only [{string.Join(", ", visible)}] survived");
    }

    [Fact]
    public void BadRecordFollowedByAValidRecordInTheActiveSegmentIsCorruption()
    {
        var (segment, _, boundaries) = WriteKnownSequence();
        // Damage the last byte of the value of the operation that starts the tail (a single put):
        // a valid record follows, so this is not a torn tail.
        var badRecord = boundaries[Prefix.Length - 1].End;
        var badByte = boundaries[Prefix.Length].End - 1;
        var bytes = File.ReadAllBytes(segment);
        bytes[badByte] ^= 0x5A;
        File.WriteAllBytes(segment, bytes);

        var e = Assert.Throws<CorruptSegmentException>(() => EmbeddedStore.Open(_dir.Path, Options()));
        Assert.Equal(Path.GetFullPath(segment), e.Path);
        Assert.Equal(badRecord, e.Offset);
        Assert.Contains(segment, e.Message);
        // Nothing was cut or rewritten, and the failed open released the lock (same error again).
        Assert.Equal(bytes, File.ReadAllBytes(segment));
        var again = Assert.Throws<CorruptSegmentException>(() => EmbeddedStore.Open(_dir.Path, Options()));
        Assert.Equal(badRecord, again.Offset);
    }
}
