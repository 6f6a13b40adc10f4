using System.Text;
using CrabKv.Storage.Files;
using CrabKv.Storage.Recovery;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>The test wrappers of the file layer, and a power cut under a whole store.</summary>
public sealed class FileLayerTests : IDisposable
{
    private readonly TempDirectory _dir = new("files");

    public void Dispose() => _dir.Dispose();

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private static string Read(string path) => Encoding.UTF8.GetString(File.ReadAllBytes(path));

    /// <summary>Creates <paramref name="name"/> through <paramref name="files"/> with <paramref name="content"/>, synced, its entry durable.</summary>
    private string CreateDurable(FileLayer files, string name, string content)
    {
        var path = _dir.Combine(name);
        using (var h = files.Open(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read))
        {
            files.Write(h, B(content), 0);
            files.FlushToDisk(h);
        }
        files.SyncDirectory(_dir.Path);
        return path;
    }

    // ------------------------------------------------------------ FaultyFileLayer

    [Fact]
    public void FailNextFailsOneMatchingOperationAndChangesNothing()
    {
        using var faults = new FaultyFileLayer(FileLayer.Default);
        var path = _dir.Combine("f");
        using var h = faults.Open(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        faults.FailNext(FileOps.Write);
        var e = Assert.Throws<IOException>(() => faults.Write(h, B("abc"), 0));
        Assert.StartsWith("Injected Write failure on '" + path, e.Message);
        Assert.Equal(0, faults.GetLength(h));
        faults.Write(h, B("abc"), 0); // once only
        faults.SyncData(h);
        Assert.Equal(3, faults.GetLength(h));
        Assert.Equal(1, faults.FailuresInjected);
    }

    [Fact]
    public void FailEveryHitsOnlyItsKindsAndPathsUntilHealed()
    {
        using var faults = new FaultyFileLayer(FileLayer.Default);
        faults.FailEvery(FileOps.Sync, p => p.EndsWith(".data", StringComparison.Ordinal));
        using var data = faults.Open(_dir.Combine("a.data"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        using var hint = faults.Open(_dir.Combine("a.hint"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        faults.Write(data, B("x"), 0);
        Assert.Throws<IOException>(() => faults.SyncData(data));
        Assert.Throws<IOException>(() => faults.FlushToDisk(data));
        faults.FlushToDisk(hint);
        faults.SyncDirectory(_dir.Path);
        faults.Heal();
        faults.SyncData(data);
        Assert.Equal(2, faults.FailuresInjected);
    }

    [Fact]
    public async Task HoldNextParksTheFirstMatchingOperationUntilReleased()
    {
        using var faults = new FaultyFileLayer(FileLayer.Default);
        var path = _dir.Combine("held");
        using var h = faults.Open(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        faults.HoldNext(FileOps.Write);
        var writer = Task.Run(() => faults.Write(h, B("late"), 0));
        faults.WaitUntilHeld();
        faults.Write(h, B("first"), 0); // only the first matching operation is parked
        Assert.False(writer.IsCompleted);
        Assert.Equal("first", Read(path));
        faults.Release();
        await writer.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal("latet", Read(path));
    }

    // ------------------------------------------------------------ PowerLossFileLayer

    [Fact]
    public void BytesWrittenSinceTheLastSyncAreDropped()
    {
        var power = new PowerLossFileLayer(FileLayer.Default);
        var path = CreateDurable(power, "f", "synced");
        using (var h = power.Open(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read))
        {
            power.Write(h, B("-more"), 6);
            power.SetLength(h, 3);
            power.Write(h, B("!"), 3);
        }
        Assert.Equal("syn!", Read(path));
        power.CutPower();
        Assert.Equal("synced", Read(path));
    }

    [Fact]
    public void SyncedBytesSurviveIncludingTruncationAndPreallocatedZeros()
    {
        var power = new PowerLossFileLayer(FileLayer.Default);
        var path = CreateDurable(power, "f", "0123456789");
        using (var h = power.Open(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read))
        {
            power.SetLength(h, 4);
            var preallocated = power.TryPreallocate(h, 4096);
            power.Write(h, B("ab"), 4);
            power.SyncData(h);
            power.Write(h, B("lost"), 6);
            Assert.Equal(preallocated ? 4096 : 6, power.GetLength(h));
        }
        power.CutPower();
        var bytes = File.ReadAllBytes(path);
        Assert.Equal("0123ab", Encoding.UTF8.GetString(bytes, 0, 6));
        Assert.All(bytes.Skip(6), b => Assert.Equal(0, b)); // the preallocated tail, if any, is zeros
    }

    [Fact]
    public void NewFileWithoutADirectoryFsyncDisappears()
    {
        var power = new PowerLossFileLayer(FileLayer.Default);
        var path = _dir.Combine("new");
        using (var h = power.Open(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read))
        {
            power.Write(h, B("data"), 0);
            power.FlushToDisk(h); // the content is durable, the name is not
        }
        power.CutPower();
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void NewFileNeverSyncedRevertsToEmpty()
    {
        var power = new PowerLossFileLayer(FileLayer.Default);
        var path = _dir.Combine("new");
        using (var h = power.Open(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read))
        {
            power.SyncDirectory(_dir.Path);
            power.Write(h, B("data"), 0);
        }
        power.CutPower();
        Assert.Equal(0, new FileInfo(path).Length);
    }

    [Fact]
    public void RenameAndDeleteWithoutADirectoryFsyncAreUndone()
    {
        File.WriteAllText(_dir.Combine("old"), "there before"); // found on disk: durable as found
        var power = new PowerLossFileLayer(FileLayer.Default);
        var moved = CreateDurable(power, "a.tmp", "payload");
        power.Move(moved, _dir.Combine("a"), overwrite: false);
        power.Delete(_dir.Combine("old"));
        Assert.False(File.Exists(_dir.Combine("old")));
        power.CutPower();
        Assert.Equal("payload", Read(_dir.Combine("a.tmp")));
        Assert.False(File.Exists(_dir.Combine("a")));
        Assert.Equal("there before", Read(_dir.Combine("old")));

        power.Move(moved, _dir.Combine("a"), overwrite: false);
        power.Delete(_dir.Combine("old"));
        power.SyncDirectory(_dir.Path);
        power.CutPower();
        Assert.Equal("payload", Read(_dir.Combine("a")));
        Assert.False(File.Exists(moved));
        Assert.False(File.Exists(_dir.Combine("old")));
    }

    [Fact]
    public void RenameOverAnExistingFileIsUndoneToBothOldFiles()
    {
        var power = new PowerLossFileLayer(FileLayer.Default);
        var target = CreateDurable(power, "target", "old content");
        var source = CreateDurable(power, "source", "new content");
        power.Move(source, target, overwrite: true);
        power.CutPower();
        Assert.Equal("old content", Read(target));
        Assert.Equal("new content", Read(source));
    }

    [Fact]
    public void DirectoryCreatedWithoutAParentFsyncDisappears()
    {
        var power = new PowerLossFileLayer(FileLayer.Default);
        var lost = _dir.Combine("lost", "deeper");
        power.CreateDirectory(lost);
        CreateDurableIn(power, lost, "f");
        var kept = _dir.Combine("kept");
        power.CreateDirectory(kept);
        power.SyncDirectory(_dir.Path); // makes "lost" and "kept" durable, not "lost/deeper"
        power.CutPower();
        Assert.False(Directory.Exists(lost));
        Assert.True(Directory.Exists(_dir.Combine("lost")));
        Assert.True(Directory.Exists(kept));
    }

    [Fact]
    public void HandlesOpenedBeforeTheCutRefuseWrites()
    {
        var power = new PowerLossFileLayer(FileLayer.Default);
        var path = CreateDurable(power, "f", "x");
        using var h = power.Open(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        power.CutPower();
        Assert.Throws<IOException>(() => power.Write(h, B("y"), 0));
        Assert.Equal(1, power.Cuts);
    }

    private static void CreateDurableIn(FileLayer files, string directory, string name)
    {
        using var h = files.Open(Path.Combine(directory, name), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        files.Write(h, B("x"), 0);
        files.FlushToDisk(h);
        files.SyncDirectory(directory);
    }

    // ------------------------------------------------------------ a whole store

    [Fact]
    public void EverySyncedPutSurvivesAPowerCutAndNothingIsCorrupt()
    {
        var power = new PowerLossFileLayer(FileLayer.Default);
        var options = new StoreOptions
        {
            Files = power,
            MaxSegmentBytes = 8192, // many rolls, merges and hint files
            Compression = false,
            Compaction = new Compaction.CompactionThresholds(StaleRatio: 0.3, MinTotalBytes: 0),
        };
        var directory = _dir.Combine("store"); // created by the store: its entry must be made durable too
        var model = new Dictionary<string, string?>();
        var store = EmbeddedStore.Open(directory, options);
        for (var i = 0; i < 400; i++)
        {
            var key = $"k{i % 60:D2}";
            if (i % 9 == 4)
            {
                store.Delete(key);
                model[key] = null;
            }
            else
            {
                var value = $"{i}:" + new string((char)('a' + i % 26), 150);
                store.Put(key, value);
                model[key] = value;
            }
            store.Sync();
            if (i == 200)
            {
                store.Compact();
            }
        }
        Assert.True(store.GetStats().Compactions > 0);
        // Handed to the OS but never synced: a process crash keeps these, a power cut does not.
        store.Put("unsynced", "x");
        store.Put("k00", "overwritten, unsynced");
        store.Flush();
        store.SimulateCrash();

        power.CutPower();

        using (var reopened = EmbeddedStore.Open(directory, options))
        {
            foreach (var (key, value) in model)
            {
                Assert.Equal(value, reopened.GetString(key));
            }
            Assert.Null(reopened.GetString("unsynced"));
            Assert.Equal(model.Count(kv => kv.Value is not null), reopened.Count);
        }
        Assert.True(Repair.Verify(directory).Clean);
    }
}
