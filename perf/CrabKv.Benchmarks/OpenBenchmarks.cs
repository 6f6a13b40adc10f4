using BenchmarkDotNet.Attributes;
using CrabKv.Storage;

namespace CrabKv.Benchmarks;

/// <summary>
/// Row 6: open (recovery) of a store holding 1,000,000 keys of 100-byte values (131 MB of
/// records), then dispose. "With hints": the store was compacted before closing, so every
/// segment has a hint file and open reads keys and locations without values. "Without
/// hints": plain writer segments, scanned record by record (CRC of every record). Reported
/// per open; divide 1,000,000 by the Mean for keys/s. The files are in the OS page cache
/// (the setup has just written them), so this measures CPU work, not a cold disk.
/// </summary>
[Config(typeof(OpenConfig))]
public class OpenBenchmarks
{
    public const int Keys = BenchData.MillionKeys;

    private string? _directory;

    [GlobalSetup(Target = nameof(OpenWithHints))]
    public void SetupWithHints() => Build(withHints: true);

    [GlobalSetup(Target = nameof(OpenWithoutHints))]
    public void SetupWithoutHints() => Build(withHints: false);

    private void Build(bool withHints)
    {
        _directory = BenchData.NewTempDirectory(withHints ? "open-hints" : "open-plain");
        var keys = BenchData.Keys(Keys);
        var value = BenchData.Value();
        using (var store = EmbeddedStore.Open(_directory, new StoreOptions { AutoCompact = false }))
        {
            foreach (var key in keys)
            {
                store.Put(key, value);
            }
            if (withHints)
            {
                store.Compact();
            }
            store.Sync();
        }
        var hintFiles = Directory.GetFiles(_directory, "*.hint").Length;
        if (withHints != (hintFiles > 0))
        {
            throw new InvalidOperationException($"open setup: expected {(withHints ? "hint files" : "no hint file")}, found {hintFiles}");
        }
        // One open to check the data and to leave the directory exactly as the timed opens will see it.
        int count, fromHints, scanned;
        using (var store = EmbeddedStore.Open(_directory))
        {
            (count, fromHints, scanned) = (store.Count, store.LastRecovery.SegmentsFromHints, store.LastRecovery.SegmentsScanned);
        }
        if (count != Keys || (withHints ? scanned != 0 || fromHints == 0 : fromHints != 0))
        {
            throw new InvalidOperationException($"open setup: {count} keys, {fromHints} segments from hints, {scanned} scanned");
        }
        Console.WriteLine($"// open setup ({(withHints ? "with" : "without")} hints): {count} keys, "
            + $"{Directory.GetFiles(_directory, "*.data").Length} data files, {hintFiles} hint files, "
            + $"{fromHints} segments from hints, {scanned} scanned, "
            + $"{Directory.GetFiles(_directory).Sum(f => new FileInfo(f).Length) / (1024 * 1024)} MiB on disk");
        BenchData.Quiesce();
    }

    [GlobalCleanup]
    public void Cleanup() => BenchData.DeleteDirectory(_directory);

    [Benchmark(Description = "open 1M keys, with hints")]
    public int OpenWithHints() => OpenAndClose();

    [Benchmark(Description = "open 1M keys, without hints")]
    public int OpenWithoutHints() => OpenAndClose();

    private int OpenAndClose()
    {
        using var store = EmbeddedStore.Open(_directory!);
        return store.Count;
    }
}
