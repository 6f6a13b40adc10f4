using Akka.Actor;
using CrabKv.Actors.Client;
using CrabKv.Actors.Tests.Support;
using CrabKv.Storage.Files;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// Write-back mode: acknowledged from memory, durable only after a flush. The flush interval
/// is 1h so only explicit Flush (or a graceful stop, or the size trigger) writes the buffer.
/// A "crash" is <see cref="StoreTestBase.Crash"/>: the CacheActor drops its dirty entries.
/// </summary>
public sealed class WriteBackTests : StoreTestBase
{
    private const string WriteBack = """
        crabkv.write-back.enabled = on
        crabkv.write-back.flush-interval = 1h
        crabkv.sync-interval = 100ms
        crabkv.ttl-sweep-interval = 0
        """;

    [Fact]
    public async Task Buffered_writes_are_readable_before_flush_and_lost_by_a_crash()
    {
        var store = StartStore(WriteBack);
        var client = await Connect(store);
        for (var i = 0; i < 20; i++)
        {
            await client.PutAsync($"k{i}", $"v{i}");
        }
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal($"v{i}", await client.GetStringAsync($"k{i}"));
        }
        var stats = Stats0(store);
        Assert.Equal(20, stats.DirtyKeys);
        Assert.True(stats.DirtyBytes > 0);
        Assert.Equal(0, stats.Keys); // nothing indexed on disk yet
        Assert.DoesNotContain(SegmentFiles(), HasRecords);

        Crash(store);

        var restarted = StartStore(WriteBack);
        var after = await Connect(restarted);
        for (var i = 0; i < 20; i++)
        {
            Assert.Null(await after.GetStringAsync($"k{i}"));
        }
        Assert.Equal(0, Stats0(restarted).Keys);
    }

    [Fact]
    public async Task Flushed_writes_survive_a_crash()
    {
        var store = StartStore(WriteBack);
        var client = await Connect(store);
        for (var i = 0; i < 20; i++)
        {
            await client.PutAsync($"k{i}", $"v{i}");
        }
        await client.FlushAsync();
        var stats = Stats0(store);
        Assert.Equal(0, stats.DirtyBytes);
        Assert.True(stats.Flushes >= 1);
        await client.PutAsync("unflushed", "gone");

        Crash(store);

        var restarted = StartStore(WriteBack);
        var after = await Connect(restarted);
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal($"v{i}", await after.GetStringAsync($"k{i}"));
        }
        Assert.Null(await after.GetStringAsync("unflushed"));
        Assert.Equal(20, Stats0(restarted).Keys);
    }

    [Fact]
    public async Task Ttl_applies_to_buffered_writes_and_is_kept_by_the_flush()
    {
        var store = StartStore(WriteBack);
        var client = await Connect(store);
        await client.PutAsync("short", "s", ttl: TimeSpan.FromMilliseconds(1000));
        await client.PutAsync("long", "l", ttl: TimeSpan.FromHours(1));
        await client.PutAsync("forever", "f");
        Assert.Equal("s", await client.GetStringAsync("short"));

        // Expires while still buffered (never reached the log).
        await AwaitAssertAsync(async () => Assert.Null(await client.GetStringAsync("short")),
            TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(50));
        Assert.Equal("l", await client.GetStringAsync("long"));

        await client.FlushAsync();
        Assert.Null(await client.GetStringAsync("short"));
        Crash(store);

        var restarted = StartStore(WriteBack);
        var after = await Connect(restarted);
        Assert.Null(await after.GetStringAsync("short"));
        Assert.Equal("l", await after.GetStringAsync("long"));
        Assert.Equal("f", await after.GetStringAsync("forever"));

        // The flushed record carried its absolute expiry: a restart keeps it (not "forever").
        await after.PutAsync("short2", "x", ttl: TimeSpan.FromMilliseconds(300));
        await after.FlushAsync();
        GracefulStop(restarted);
        var third = StartStore(WriteBack);
        var thirdClient = await Connect(third);
        await AwaitAssertAsync(async () => Assert.Null(await thirdClient.GetStringAsync("short2")),
            TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(50));
    }

    [Fact]
    public async Task Flush_interval_timer_flushes_without_a_request()
    {
        var hocon = WriteBack.Replace("flush-interval = 1h", "flush-interval = 200ms", StringComparison.Ordinal);
        var store = StartStore(hocon);
        var client = await Connect(store);
        for (var i = 0; i < 10; i++)
        {
            await client.PutAsync($"k{i}", $"v{i}");
        }
        await AwaitAssertAsync(() =>
        {
            var s = Stats0(store);
            Assert.Equal(10, s.Keys);
            Assert.Equal(0, s.DirtyKeys);
        }, Timeout, TimeSpan.FromMilliseconds(50));
        Crash(store);
        var after = await Connect(StartStore(WriteBack));
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal($"v{i}", await after.GetStringAsync($"k{i}"));
        }
    }

    [Fact]
    public async Task Overwrite_replaces_the_buffered_value_and_coalesces()
    {
        var store = StartStore(WriteBack);
        var client = await Connect(store);
        for (var i = 0; i < 10; i++)
        {
            await client.PutAsync("k", $"v{i}");
        }
        Assert.Equal("v9", await client.GetStringAsync("k"));
        Assert.Equal(1, Stats0(store).DirtyKeys);

        await client.FlushAsync();
        var stats = Stats0(store);
        Assert.Equal(1, stats.Keys);
        Assert.Equal(0, stats.StaleBytes); // ten puts cost one record
        await client.PutAsync("k", "after-flush");
        Assert.Equal("after-flush", await client.GetStringAsync("k"));
        await client.FlushAsync();
        Crash(store);

        var after = await Connect(StartStore(WriteBack));
        Assert.Equal("after-flush", await after.GetStringAsync("k"));
    }

    [Fact]
    public async Task Delete_in_the_buffer()
    {
        var store = StartStore(WriteBack);
        var client = await Connect(store);

        // A key that never reached the disk: put and delete in the buffer.
        await client.PutAsync("memory-only", "x");
        Assert.True(await client.DeleteAsync("memory-only"));
        Assert.Null(await client.GetStringAsync("memory-only"));
        Assert.False(await client.DeleteAsync("never-written"));

        // Keys on disk: a buffered delete hides them at once.
        await client.PutAsync("on-disk", "1");
        await client.PutAsync("on-disk-2", "2");
        await client.FlushAsync();
        Assert.True(await client.DeleteAsync("on-disk"));
        Assert.True(await client.DeleteAsync("on-disk-2"));
        Assert.Null(await client.GetStringAsync("on-disk"));
        Assert.False(await client.DeleteAsync("on-disk"));

        // Only one of the deletes is flushed before the crash.
        await client.FlushAsync();
        await client.PutAsync("on-disk-2", "3");
        Assert.True(await client.DeleteAsync("on-disk-2")); // buffered, lost by the crash
        Crash(store);

        var after = await Connect(StartStore(WriteBack));
        Assert.Null(await after.GetStringAsync("memory-only"));
        Assert.Null(await after.GetStringAsync("on-disk"));
        Assert.Null(await after.GetStringAsync("on-disk-2"));
    }

    [Fact]
    public async Task Unflushed_delete_is_lost_by_a_crash()
    {
        var store = StartStore(WriteBack);
        var client = await Connect(store);
        await client.PutAsync("k", "durable");
        await client.FlushAsync();
        Assert.True(await client.DeleteAsync("k"));
        Assert.Null(await client.GetStringAsync("k"));
        Crash(store);

        var after = await Connect(StartStore(WriteBack));
        Assert.Equal("durable", await after.GetStringAsync("k"));
    }

    [Fact]
    public async Task Graceful_shutdown_loses_nothing()
    {
        const int n = 300;
        var store = StartStore(WriteBack);
        var client = await Connect(store);
        await Task.WhenAll(Enumerable.Range(0, n).Select(i => client.PutAsync($"k{i:D4}", $"v{i}")));
        await client.PutBatchAsync([new BatchEntry("b1", Bytes("x")), new BatchEntry("b2", Bytes("y"))]);
        Assert.True(await client.DeleteAsync("k0000"));
        Assert.Equal(n + 2, Stats0(store).DirtyKeys); // n puts (one now a buffered delete) + 2 batch entries

        GracefulStop(store);

        var restarted = StartStore(WriteBack);
        var after = await Connect(restarted);
        Assert.Null(await after.GetStringAsync("k0000"));
        for (var i = 1; i < n; i++)
        {
            Assert.Equal($"v{i}", await after.GetStringAsync($"k{i:D4}"));
        }
        Assert.Equal("x", await after.GetStringAsync("b1"));
        Assert.Equal("y", await after.GetStringAsync("b2"));
        Assert.Equal(n - 1 + 2, Stats0(restarted).Keys);
    }

    [Fact]
    public async Task CoordinatedShutdown_with_a_slow_disk_still_loses_nothing()
    {
        using var disk = new FaultyFileLayer(FileLayer.Default);
        var store = StartStore(WriteBack, disk);
        var client = await Connect(store);
        await client.PutAsync("a", "1");

        // A slow disk: the writer is parked inside the write of an explicit flush.
        disk.HoldNext(FileOps.Write, WalSegment);
        var flush = client.FlushAsync(timeout: TimeSpan.FromSeconds(30));
        disk.WaitUntilHeld();
        await client.PutAsync("b", "2"); // acknowledged from memory
        await client.PutAsync("c", "3");
        var cache = await Sys.ActorSelection(PartitionRef(store).Path / "cache").ResolveOne(Timeout);
        Watch(cache);

        // Ctrl-C / SIGTERM / host stop: CoordinatedShutdown runs the store's graceful stop.
        // The reference configuration gives its phase 30 s (Akka's default 5 s used to cut the
        // flush short and lose "b" and "c"); the disk catches up once the stop is under way.
        var shutdown = CoordinatedShutdown.Get(Sys).Run(CoordinatedShutdown.ClrExitReason.Instance);
        await AwaitAssertAsync(async () =>
        {
            var refused = await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("late", "x"));
            Assert.Equal(CrabKvErrorCode.ShuttingDown, refused.Code);
        }, TimeSpan.FromSeconds(10));
        disk.Release(); // the disk catches up
        ExpectTerminated(cache, TimeSpan.FromSeconds(30));
        _ = flush.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default); // its ScatterGather died with the store: no reply
        await shutdown.WaitAsync(TimeSpan.FromSeconds(30));
        await Sys.WhenTerminated.WaitAsync(TimeSpan.FromSeconds(30));

        var verify = ActorSystem.Create("verify", CrabKvSettings.DefaultConfig());
        try
        {
            var restarted = await CrabKvClient.ConnectAsync(CrabKvStore.Start(verify, Settings(WriteBack)), Timeout);
            Assert.Equal("1", await restarted.GetStringAsync("a"));
            Assert.Equal("2", await restarted.GetStringAsync("b")); // observed: null
            Assert.Equal("3", await restarted.GetStringAsync("c"));
        }
        finally
        {
            await verify.Terminate().WaitAsync(Timeout);
        }
    }

    [Fact]
    public async Task Full_buffer_refuses_writes_and_memory_stays_bounded()
    {
        // 4096 is the lower bound CrabKvSettings accepts for max-dirty-bytes.
        var hocon = WriteBack + "\ncrabkv.write-back.max-dirty-bytes = 4096\n";
        var store = StartStore(hocon);
        var client = await Connect(store);

        // A value that can never fit the buffer is refused for good, naming the limit to raise.
        var big = await Assert.ThrowsAsync<CrabKvRequestException>(() => client.PutAsync("big", new byte[5000]));
        Assert.Equal(CrabKvErrorCode.ValueTooLarge, big.Code);
        Assert.Contains("max-dirty-bytes", big.Message);
        Assert.Null(await client.GetAsync("big"));
        Assert.Equal(0, Stats0(store).DirtyBytes);

        // A writer that slows down when told (Flush, then retry) gets everything stored, and
        // the buffer never holds more than its limit.
        for (var i = 0; i < 60; i++)
        {
            var value = new byte[700]; // a fresh array: the store keeps the caller's reference in memory
            value[0] = (byte)i;
            for (var attempt = 0; ; attempt++)
            {
                Assert.True(attempt < 3, $"write {i} still refused after a completed flush");
                try
                {
                    await client.PutAsync($"k{i:D3}", value);
                    break;
                }
                catch (CrabKvRequestException e) when (e.Code == CrabKvErrorCode.WriteBackBufferFull)
                {
                    await client.FlushAsync();
                }
            }
            if (i % 10 == 0)
            {
                Assert.InRange(Stats0(store).DirtyBytes, 0, 4096);
            }
        }
        var stats = Stats0(store);
        Assert.InRange(stats.DirtyBytes, 0, 4096);
        Assert.True(stats.Flushes >= 5, $"the size trigger should have flushed often, got {stats.Flushes}");
        for (var i = 0; i < 60; i++)
        {
            var v = await client.GetAsync($"k{i:D3}");
            Assert.NotNull(v);
            Assert.Equal((byte)i, v![0]);
        }
        GracefulStop(store);
        var restarted = StartStore(hocon);
        Assert.Equal(60, Stats0(restarted).Keys);
    }

    [Fact]
    public async Task Batch_in_write_back_is_atomic_through_flush()
    {
        var store = StartStore(WriteBack);
        var client = await Connect(store);
        await client.PutAsync("old", "1");
        await client.FlushAsync();
        Assert.Equal(3, await client.PutBatchAsync([
            new BatchEntry("a", Bytes("A")), new BatchEntry("b", Bytes("B"), TimeSpan.FromHours(1)), BatchEntry.Delete("old"),
        ]));
        Assert.Equal("A", await client.GetStringAsync("a"));
        Assert.Null(await client.GetStringAsync("old"));
        await client.FlushAsync();
        Crash(store);
        var after = await Connect(StartStore(WriteBack));
        Assert.Equal("A", await after.GetStringAsync("a"));
        Assert.Equal("B", await after.GetStringAsync("b"));
        Assert.Null(await after.GetStringAsync("old"));
    }

    private static bool HasRecords(FileInfo f)
    {
        // A segment with records has bytes after its header that are not preallocated zeros.
        var bytes = File.ReadAllBytes(f.FullName);
        return bytes.Skip(CrabKv.Storage.Format.FormatConstants.FileHeaderSize).Any(b => b != 0);
    }
}
