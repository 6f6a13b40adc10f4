using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Segments;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>Preallocation in steps: a segment reserves one step, and another when the writes reach its end.</summary>
public sealed class PreallocationTests : IDisposable
{
    private const int Step = SegmentWriter.ZeroFillStep; // 256 KiB
    private readonly TempDirectory _dir = new("prealloc");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void The_reservation_grows_a_step_at_a_time_up_to_the_limit_and_seal_trims_it()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // fallocate only
        }
        using var writer = SegmentWriter.Create(FileLayer.Default, _dir.Path, SegmentId.From(1, 0), 64 << 10, Step, preallocateLimit: 4 * Step);
        var path = writer.Segment.Path;
        Assert.Equal(Step, new FileInfo(path).Length);

        var value = new byte[1000];
        var key = "k"u8.ToArray();
        while (writer.Length < Step + 10_000)
        {
            writer.Append(RecordFlags.None, 0, key, value);
        }
        writer.Flush();
        Assert.Equal(2 * Step, new FileInfo(path).Length); // the next step, not the whole limit

        while (writer.Length < 3 * Step + 10_000)
        {
            writer.Append(RecordFlags.None, 0, key, value);
        }
        writer.Flush();
        Assert.Equal(4 * Step, new FileInfo(path).Length);

        while (writer.Length < 5 * Step)
        {
            writer.Append(RecordFlags.None, 0, key, value);
        }
        writer.Flush();
        Assert.Equal(writer.Length, new FileInfo(path).Length); // past the limit the file grows with the writes

        var length = writer.Length;
        writer.Seal();
        Assert.Equal(length, new FileInfo(path).Length);
    }

    [Fact]
    public void Without_a_limit_the_first_reservation_is_the_only_one()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }
        using var writer = SegmentWriter.Create(FileLayer.Default, _dir.Path, SegmentId.From(1, 0), 64 << 10, Step);
        var value = new byte[1000];
        while (writer.Length < Step + 10_000)
        {
            writer.Append(RecordFlags.None, 0, "k"u8, value);
        }
        writer.Flush();
        Assert.Equal(writer.Length, new FileInfo(writer.Segment.Path).Length);
    }

    [Fact]
    public void A_store_preallocating_in_steps_recovers_everything_after_a_crash()
    {
        var options = new StoreOptions { PreallocateStepBytes = Step, MaxSegmentBytes = 4 << 20, Compression = false };
        var value = new byte[3000];
        new Random(7).NextBytes(value);
        var store = EmbeddedStore.Open(_dir.Path, options);
        for (var i = 0; i < 2000; i++) // ~6 MB: several steps and a roll
        {
            store.Put($"key-{i}", value);
        }
        store.Flush();
        store.SimulateCrash(); // the active segment keeps its reserved zero tail

        using var reopened = EmbeddedStore.Open(_dir.Path, options);
        for (var i = 0; i < 2000; i++)
        {
            Assert.Equal(value, reopened.Get($"key-{i}"));
        }
    }
}
