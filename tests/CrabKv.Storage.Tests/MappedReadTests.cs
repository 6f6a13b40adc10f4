using System.Text;
using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Segments;
using CrabKv.Storage.Tests.TestSupport;
using Microsoft.Win32.SafeHandles;
using Xunit;
using static CrabKv.Storage.Tests.TestSupport.CorruptionHelpers;

namespace CrabKv.Storage.Tests;

/// <summary>
/// Gets read records in place through a memory mapping of the segment (Segment.TryPeek):
/// sealed segments, the active one up to what it has written, merge outputs, after a reopen —
/// with the checksum still verified, and a wrapper that does not map still seeing every read.
/// </summary>
public sealed class MappedReadTests : IDisposable
{
    private readonly TempDirectory _dir = new("mapped");

    public void Dispose() => _dir.Dispose();

    /// <summary>Maps as the real layer does and counts the positional reads (which a mapped get never makes).</summary>
    private sealed class CountingMappedLayer() : WrappingFileLayer(FileLayer.Default)
    {
        private int _reads, _maps;

        public int Reads => Volatile.Read(ref _reads);

        public int Maps => Volatile.Read(ref _maps);

        public void Reset() => Volatile.Write(ref _reads, 0);

        public override int Read(SafeFileHandle file, Span<byte> destination, long offset)
        {
            Interlocked.Increment(ref _reads);
            return base.Read(file, destination, offset);
        }

        public override MappedRegion? MapForRead(SafeFileHandle file, long capacity)
        {
            Interlocked.Increment(ref _maps);
            return Inner.MapForRead(file, capacity);
        }
    }

    private static bool Maps => OperatingSystem.IsLinux();

    private static string ValueOf(int i, int version) => $"value-{i:D5}-v{version}-" + new string('x', 40 + i % 50);

    private EmbeddedStore Open(FileLayer files) =>
        EmbeddedStore.Open(_dir.Path, new StoreOptions { Files = files, MaxSegmentBytes = 8 << 10, ReadCacheEntries = 0, AutoCompact = false });

    private static void AssertAll(EmbeddedStore store, int count, Func<int, int> versionOf)
    {
        for (var i = 0; i < count; i++)
        {
            Assert.Equal(ValueOf(i, versionOf(i)), store.GetString($"k{i:D5}"));
        }
    }

    [Fact]
    public void Gets_after_rolls_read_sealed_and_active_segments_through_the_mapping()
    {
        var files = new CountingMappedLayer();
        using var store = Open(files);
        for (var i = 0; i < 400; i++)
        {
            store.Put($"k{i:D5}", ValueOf(i, 1));
        }
        store.Flush();
        Assert.True(store.GetStats().Segments > 3, "the writes should have rolled several segments");
        files.Reset();

        AssertAll(store, 400, _ => 1);

        if (Maps)
        {
            Assert.Equal(0, files.Reads);
            Assert.True(files.Maps > 0);
        }
    }

    [Fact]
    public void Gets_of_records_still_in_the_write_buffer_or_just_flushed_see_the_newest_bytes()
    {
        var files = new CountingMappedLayer();
        using var store = Open(files);
        store.Put("a", "buffered");
        Assert.Equal("buffered", store.GetString("a"));
        store.Flush();
        Assert.Equal("buffered", store.GetString("a"));
        store.Put("a", "second");
        store.Flush();
        store.Put("b", "third");
        Assert.Equal("second", store.GetString("a"));
        Assert.Equal("third", store.GetString("b"));
    }

    [Fact]
    public void Gets_after_a_compaction_deleted_the_mapped_segments_read_the_merge_output()
    {
        var files = new CountingMappedLayer();
        using var store = Open(files);
        for (var i = 0; i < 300; i++)
        {
            store.Put($"k{i:D5}", ValueOf(i, 1));
        }
        AssertAll(store, 300, _ => 1); // maps the segments the merge will delete
        for (var i = 0; i < 300; i += 2)
        {
            store.Put($"k{i:D5}", ValueOf(i, 2));
        }
        var before = Directory.GetFiles(_dir.Path, "seg-*.data").Select(Path.GetFileName).ToHashSet();

        var outcome = store.Compact();

        Assert.True(outcome.SegmentsMerged > 1);
        var after = Directory.GetFiles(_dir.Path, "seg-*.data").Select(Path.GetFileName).ToHashSet();
        Assert.NotEmpty(before.Except(after)); // mapped inputs were deleted (and unmapped)
        files.Reset();
        AssertAll(store, 300, i => i % 2 == 0 ? 2 : 1);
        if (Maps)
        {
            Assert.Equal(0, files.Reads);
        }
    }

    [Fact]
    public void Gets_after_a_reopen_map_the_segments_recovery_opened()
    {
        using (var store = Open(new CountingMappedLayer()))
        {
            for (var i = 0; i < 300; i++)
            {
                store.Put($"k{i:D5}", ValueOf(i, 1));
            }
        }
        var files = new CountingMappedLayer();
        using var reopened = Open(files);
        files.Reset();

        AssertAll(reopened, 300, _ => 1);

        if (Maps)
        {
            Assert.Equal(0, files.Reads);
        }
    }

    [Fact]
    public void A_flipped_value_byte_is_caught_by_the_checksum_on_a_mapped_read()
    {
        var files = new CountingMappedLayer();
        using var store = Open(files);
        for (var i = 0; i < 200; i++)
        {
            store.Put($"k{i:D5}", ValueOf(i, 1));
        }
        store.Flush();
        AssertAll(store, 200, _ => 1); // the segments are mapped before the damage
        Assert.True(store.KeyDirectory.TryGet("k00007", out var location));
        var path = Path.Combine(_dir.Path, location.Segment.DataFileName);
        var valueOffset = location.Offset + FormatConstants.RecordHeaderSize + Encoding.UTF8.GetByteCount("k00007") + 3;
        files.Reset();

        FlipByte(path, valueOffset); // through another handle: the shared mapping sees it

        var e = Assert.Throws<CorruptSegmentException>(() => store.Get("k00007"));
        Assert.Contains(location.Offset.ToString(), e.Message);
        Assert.Equal(ValueOf(8, 1), store.GetString("k00008"));
        if (Maps)
        {
            Assert.Equal(0, files.Reads);
        }
    }

    [Fact]
    public void A_wrapper_that_does_not_map_sees_every_get_read_and_can_fail_it()
    {
        using var faulty = new FaultyFileLayer(FileLayer.Default);
        using var store = Open(faulty);
        for (var i = 0; i < 100; i++)
        {
            store.Put($"k{i:D5}", ValueOf(i, 1));
        }
        store.Flush();
        AssertAll(store, 100, _ => 1);

        faulty.FailNext(FileOps.Read);

        Assert.ThrowsAny<IOException>(() => store.Get("k00003"));
        Assert.Equal(1, faulty.FailuresInjected);
        faulty.Heal();
        Assert.Equal(ValueOf(4, 1), store.GetString("k00004"));
    }

    [Fact]
    public void A_segment_disposed_while_a_mapped_read_holds_it_is_unmapped_only_after_that_read()
    {
        if (!Maps)
        {
            return;
        }
        using (var store = Open(FileLayer.Default))
        {
            for (var i = 0; i < 50; i++)
            {
                store.Put($"k{i:D5}", ValueOf(i, 1));
            }
        }
        var file = Directory.GetFiles(_dir.Path, "seg-*.data").Order().First();
        Assert.True(SegmentId.TryParseFileName(Path.GetFileName(file), out var id, out _));
        var segment = Segment.OpenSealed(FileLayer.Default, id, file);
        var header = new byte[FormatConstants.FileHeaderSize];
        Assert.Equal(header.Length, segment.ReadAt(header, 0));

        Assert.True(segment.TryPeek(0, header.Length, out var held));
        segment.Dispose();

        Assert.Equal(header, held.Span.ToArray()); // still mapped: the read holds it
        held.Dispose();
        Assert.False(segment.TryPeek(0, header.Length, out _)); // closed: nothing maps it again
        Assert.Throws<ObjectDisposedException>(() => segment.ReadAt(header, 0));
    }

    [Fact]
    public void A_peek_past_the_end_of_a_sealed_segment_is_refused_not_mapped()
    {
        using (var store = Open(FileLayer.Default))
        {
            store.Put("k", "v");
        }
        var file = Directory.GetFiles(_dir.Path, "seg-*.data").Order().First();
        Assert.True(SegmentId.TryParseFileName(Path.GetFileName(file), out var id, out _));
        using var segment = Segment.OpenSealed(FileLayer.Default, id, file);

        Assert.False(segment.TryPeek(segment.Length - 4, 8, out _));
        Assert.False(segment.TryPeek(segment.Length + 4096, 8, out _));
        Assert.False(segment.TryPeek(-1, 8, out _));
    }
}
