using System.Text;
using CrabKv.Actors.Tests.Support;
using CrabKv.Storage.Files;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// With write-back off the partition answers gets itself when it can read the record in place
/// (a mapped segment); a file layer that does not map sends them to the cache actor, which
/// reads positionally. Both keep the same answers and the same errors.
/// </summary>
public sealed class MappedReadTests : StoreTestBase
{
    private const string Small = "crabkv.partitions = 1\ncrabkv.compaction.auto = off\ncrabkv.segment.max-bytes = 8 KiB\ncrabkv.sync-interval = 100ms\n";

    private static string ValueOf(int i, int version) => $"value-{i:D4}-v{version}-" + new string('y', 40 + i % 30);

    [Fact]
    public async Task Gets_read_in_place_see_every_roll_overwrite_and_compaction_and_leave_the_read_cache_empty()
    {
        var store = StartStore(Small);
        var client = await Connect(store);
        for (var i = 0; i < 200; i++)
        {
            await client.PutAsync($"k{i:D4}", Bytes(ValueOf(i, 1)));
        }
        await client.FlushAsync();
        for (var round = 0; round < 2; round++)
        {
            for (var i = 0; i < 200; i++)
            {
                Assert.Equal(ValueOf(i, 1), Text(await client.GetAsync($"k{i:D4}")));
            }
        }
        for (var i = 0; i < 200; i += 2)
        {
            await client.PutAsync($"k{i:D4}", Bytes(ValueOf(i, 2)));
        }
        Request<CompactOk>(store, new Compact());

        for (var i = 0; i < 200; i++)
        {
            Assert.Equal(ValueOf(i, i % 2 == 0 ? 2 : 1), Text(await client.GetAsync($"k{i:D4}")));
        }
        var stats = Stats0(store);
        Assert.Equal(600, stats.Gets);
        if (OperatingSystem.IsLinux()) // segments map: a mapped read needs no system call, so nothing is copied into an LRU
        {
            Assert.Equal(0, stats.CacheEntries);
            Assert.Equal(0, stats.CacheHits + stats.CacheMisses);
        }
        GracefulStop(store);
    }

    [Fact]
    public async Task Keys_with_the_same_hash_read_their_own_values_and_a_delete_hides_only_its_own()
    {
        var (a, b) = HashCollisions.Pair; // the partition finds keys by hash alone and confirms them by the record's key
        var store = StartStore(Small);
        var client = await Connect(store);
        await client.PutAsync(a, Bytes("value of a"));
        await client.FlushAsync();
        Assert.Null(await client.GetAsync(b)); // b's lookup by hash finds a's record
        await client.PutAsync(b, Bytes("value of b"));
        await client.FlushAsync();
        Assert.Equal("value of a", Text(await client.GetAsync(a))); // a's lookup by hash finds b's record first
        Assert.Equal("value of b", Text(await client.GetAsync(b)));
        await client.DeleteAsync(b);
        await client.FlushAsync();
        Assert.Null(await client.GetAsync(b));
        Assert.Equal("value of a", Text(await client.GetAsync(a)));
        GracefulStop(store);
    }

    [Fact]
    public async Task A_flipped_byte_in_a_mapped_segment_is_answered_StoreFailed_not_a_wrong_value()
    {
        var store = StartStore(Small);
        var client = await Connect(store);
        for (var i = 0; i < 50; i++)
        {
            await client.PutAsync($"k{i:D4}", Bytes(ValueOf(i, 1)));
        }
        await client.FlushAsync();
        Assert.Equal(ValueOf(0, 1), Text(await client.GetAsync("k0000"))); // maps the segment first
        var target = Encoding.UTF8.GetBytes(ValueOf(7, 1));
        var (file, offset) = SegmentFiles()
            .Select(f => (f.FullName, Offset: File.ReadAllBytes(f.FullName).AsSpan().IndexOf(target)))
            .First(f => f.Offset >= 0);

        using (var h = File.OpenHandle(file, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete))
        {
            RandomAccess.Write(h, [(byte)(target[5] ^ 0xFF)], offset + 5); // through another handle: the shared mapping sees it
        }

        var error = ExpectError(store, new Get("k0007"), CrabKvErrorCode.StoreFailed);
        Assert.Contains("k0007", error.Message);
        Assert.Equal(ValueOf(8, 1), Text(await client.GetAsync("k0008")));
    }

    [Fact]
    public async Task Through_a_file_layer_that_does_not_map_gets_are_read_positionally_and_read_errors_answered()
    {
        using var disk = new FaultyFileLayer(FileLayer.Default);
        var store = StartStore(Small, disk);
        var client = await Connect(store);
        for (var i = 0; i < 50; i++)
        {
            await client.PutAsync($"k{i:D4}", Bytes(ValueOf(i, 1)));
        }
        await client.FlushAsync();
        Assert.Equal(ValueOf(1, 1), Text(await client.GetAsync("k0001")));
        Assert.Equal(ValueOf(1, 1), Text(await client.GetAsync("k0001"))); // from the cache actor's LRU
        var stats = Stats0(store);
        Assert.True(stats.CacheEntries >= 1, "positional reads fill the read cache");
        Assert.True(stats.CacheHits >= 1, $"the second read of k0001 should hit the read cache, hits {stats.CacheHits}");

        disk.FailNext(FileOps.Read, WalSegment);

        ExpectError(store, new Get("k0002"), CrabKvErrorCode.StoreFailed);
        Assert.Equal(1, disk.FailuresInjected);
        Assert.Equal(ValueOf(2, 1), Text(await client.GetAsync("k0002")));
        GracefulStop(store);
    }
}
