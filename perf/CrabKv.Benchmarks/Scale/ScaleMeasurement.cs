using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using CrabKv.Benchmarks.Claims;
using Spectre.Console;

namespace CrabKv.Benchmarks.Scale;

/// <summary>
/// `-- scale [--keys N] [--quick] [--json]`: the scale rows at N keys (default 10,000,000; --quick
/// 1,000,000) of 100-byte values, all in one run:
/// <list type="number">
/// <item>resident memory during sustained write-back puts through the actor store, at two
/// <c>crabkv.write-back.max-dirty-bytes</c> limits (<see cref="WriteBackMemory"/>), first, while the process is small;</item>
/// <item>build: N puts into one <see cref="EmbeddedStore"/> (no auto-compaction, no read cache),
/// then N/10 overwrites, so a compaction has something to drop; key-directory bytes per key
/// (<see cref="Storage.Index.KeyDirectory.AllocatedBytes"/> and the GC heap growth);</item>
/// <item>open without hint files (every segment scanned), again with the GC heap growth of the open;</item>
/// <item>compaction of everything (<see cref="EmbeddedStore.Compact"/>, which writes hint files),
/// in MB/s, beside a plain FileStream sequential write + fsync of the same byte count;</item>
/// <item>open with hint files.</item>
/// </list>
/// The files written are in the OS page cache when read back (opens and compaction read
/// them from memory, not from the disk); every step starts after sync(2). Results as markdown
/// on stdout; with <c>--json</c>, one JSON document on stdout (<see cref="JsonReport"/>) and the
/// markdown on stderr.
/// </summary>
internal static class ScaleMeasurement
{
    private const string Usage = """
        usage: scale [--keys N] [--quick] [--json]
          --keys N  keys of the engine part, 1..99,999,999 (default 10,000,000; with --quick 1,000,000); e.g. --quick --keys 200000 for a smoke run
          --quick   1,000,000 keys unless --keys says otherwise, 6 s instead of 20 s per write-back limit
          --json    print one JSON document on stdout (every figure of the markdown, run metadata first); the markdown goes to stderr
        """;

    public static int Run(string[] args)
    {
        if (args.Any(a => a is "-h" or "--help"))
        {
            Console.Error.WriteLine(Usage);
            return 0;
        }
        var quick = args.Contains("--quick");
        var json = args.Contains("--json");
        var keys = quick ? 1_000_000 : 10_000_000;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--keys" && i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var k) && k > 0 && k <= 99_999_999)
            {
                keys = k;
                i++;
            }
            else if (args[i] is not ("--quick" or "--json"))
            {
                Console.Error.WriteLine($"scale: bad argument '{args[i]}'.");
                Console.Error.WriteLine(Usage);
                return 2;
            }
        }
        var run = RunMetadata.Start(string.Join(" ", ["scale", .. args]), quick);
        // Records of 4 + 8 + 100 bytes plus headers (~131 B), +10% overwrites, the compaction's
        // output beside its input, the raw-write file: about 3.5x the records.
        var needed = (long)(keys * 131L * 3.5);
        var free = new DriveInfo(Path.GetTempPath()).AvailableFreeSpace;
        if (free < needed)
        {
            Console.Error.WriteLine($"scale: {keys:N0} keys need about {needed >> 20:N0} MiB free under {Path.GetTempPath()}; {free >> 20:N0} MiB are.");
            return 1;
        }
        var root = BenchData.NewTempDirectory("scale");
        var md = new StringBuilder();
        object? figures = null;
        try
        {
            md.AppendLine(RunHeader.Describe($"scale --keys {keys}") + string.Create(CultureInfo.InvariantCulture, $", {free / 1e9:F0} GB free before"));
            md.AppendLine();
            figures = StderrProgress.Run(ctx =>
            {
                // Write-back first: the engine part leaves a ~1 GB working set behind at 10M keys.
                var writeBack = WriteBackMemory.Run(Path.Combine(root, "write-back"), quick, ctx, md);
                var engine = RunEngine(Path.Combine(root, "engine"), keys, ctx, md);
                return new
                {
                    keys,
                    scratchDirectory = Path.GetTempPath(),
                    freeBytesBefore = free,
                    writeBackMemory = writeBack,
                    engine,
                };
            });
            md.AppendLine(CultureInfo.InvariantCulture, $"(finished {DateTime.UtcNow:HH:mm} UTC, {RunHeader.LoadAverage()})");
            return 0;
        }
        finally
        {
            JsonReport.WriteText(md.ToString(), json);
            if (json && figures is not null)
            {
                JsonReport.Write(run, figures);
            }
            BenchData.DeleteDirectory(root);
        }
    }

    /// <summary>Runs the engine steps, appends their markdown table to <paramref name="md"/> and returns the same figures for JSON.</summary>
    private static Dictionary<string, object?> RunEngine(string dir, int keys, ProgressContext progress, StringBuilder md)
    {
        var value = BenchData.Value();
        var overwrites = keys / 10;
        var rows = new List<(string What, string Figure, string Detail)>();
        var json = new Dictionary<string, object?>
        {
            ["keys"] = keys,
            ["keyBytes"] = BenchData.Key(0).Length,
            ["valueBytes"] = value.Length,
            ["overwrites"] = overwrites,
        };

        // 1. Build.
        var build = progress.Step($"build: {keys:N0} puts + {overwrites:N0} overwrites", keys + overwrites);
        var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        var cpuBuild = Cpu();
        var watch = Stopwatch.StartNew();
        long allocated, keyBytes;
        int count;
        using (var store = EmbeddedStore.Open(dir, new StoreOptions { AutoCompact = false, ReadCacheEntries = 0 }))
        {
            for (var i = 0; i < keys + overwrites; i++)
            {
                // Overwrites: every 10th key once more.
                store.Put(BenchData.Key(i < keys ? i : (int)((i - keys) * 10L % keys)), value);
                if ((i & 0xFFFF) == 0)
                {
                    build.Value = i;
                }
            }
            store.Sync();
            var elapsed = watch.Elapsed;
            var heapAfter = GC.GetTotalMemory(forceFullCollection: true);
            (allocated, keyBytes, count) = (store.KeyDirectory.AllocatedBytes, store.KeyDirectory.KeyBytes, store.Count);
            var buildCpu = Cpu() - cpuBuild;
            json["build"] = new
            {
                puts = keys + overwrites,
                seconds = JsonReport.Num(elapsed.TotalSeconds, 3),
                cpuSeconds = JsonReport.Num(buildCpu.TotalSeconds, 3),
                putsPerSecond = JsonReport.Num((keys + overwrites) / elapsed.TotalSeconds, 0),
                keysAfter = count,
            };
            json["keyDirectoryAfterBuild"] = new
            {
                allocatedBytes = allocated,
                bytesPerKey = JsonReport.Num((double)allocated / Math.Max(1, count), 1),
                keyUtf8BytesPerKey = JsonReport.Num(keyBytes / (double)count, 1),
            };
            json["buildGcHeapGrowth"] = new
            {
                bytes = heapAfter - heapBefore,
                bytesPerKey = JsonReport.Num((double)(heapAfter - heapBefore) / Math.Max(1, count), 1),
            };
            rows.Add(("build", string.Create(CultureInfo.InvariantCulture, $"{(keys + overwrites) / elapsed.TotalSeconds:N0} puts/s"),
                string.Create(CultureInfo.InvariantCulture, $"{keys + overwrites:N0} puts in {elapsed.TotalSeconds:F1} s ({buildCpu.TotalSeconds:F1} s CPU; Sync() once at the end), {count:N0} keys")));
            rows.Add(("key directory after the build: KeyDirectory.AllocatedBytes / key", PerKey(allocated, count),
                string.Create(CultureInfo.InvariantCulture, $"{allocated / 1048576.0:F0} MiB; key UTF-8 bytes {keyBytes / (double)count:F1} / key included")));
            rows.Add(("GC heap growth of the build / key", PerKey(heapAfter - heapBefore, count),
                string.Create(CultureInfo.InvariantCulture, $"{(heapAfter - heapBefore) / 1048576.0:F0} MiB (store open, write buffer, segments)")));
        }
        build.Done();
        var disk = DataBytes(dir);
        var dataFiles = Directory.GetFiles(dir, "*.data").Length;
        rows.Add(("on disk", string.Create(CultureInfo.InvariantCulture, $"{disk / (double)(keys + overwrites):F1} B / record"),
            string.Create(CultureInfo.InvariantCulture, $"{disk / 1048576.0:F0} MiB in {dataFiles} data files, no hint files")));
        json["onDisk"] = new
        {
            dataBytes = disk,
            bytesPerRecord = JsonReport.Num(disk / (double)(keys + overwrites), 1),
            dataFiles,
            hintFiles = 0,
        };

        // 2. Open without hints, then 3. compact (writes hint files).
        var scan = progress.Step("open without hints (scan)");
        BenchData.Quiesce();
        CompactionOutcome outcome;
        TimeSpan compactWall, compactCpu;
        {
            var (store, openTime, openCpu, heapDelta) = TimedOpen(dir);
            using (store)
            {
                scan.Done();
                rows.Add(("open without hints", string.Create(CultureInfo.InvariantCulture, $"{openTime.TotalSeconds:F2} s"),
                    string.Create(CultureInfo.InvariantCulture, $"{openCpu.TotalSeconds:F2} s CPU; {store.Count:N0} keys ({store.Count / openTime.TotalSeconds / 1e6:F2} M keys/s), {store.LastRecovery.SegmentsScanned} segments scanned, {store.LastRecovery.SegmentsFromHints} from hints")));
                rows.Add(("GC heap growth of that open / key", PerKey(heapDelta, store.Count),
                    string.Create(CultureInfo.InvariantCulture, $"{heapDelta / 1048576.0:F0} MiB; KeyDirectory.AllocatedBytes {PerKey(store.KeyDirectory.AllocatedBytes, store.Count)}")));
                json["openWithoutHints"] = OpenJson(store, openTime, openCpu, heapDelta, hintFiles: 0, hintBytes: 0);
                var compact = progress.Step("compaction (writes hint files)");
                BenchData.Quiesce();
                compactCpu = Cpu();
                var cw = Stopwatch.StartNew();
                outcome = store.Compact();
                compactWall = cw.Elapsed;
                compactCpu = Cpu() - compactCpu;
                compact.Done();
            }
        }
        rows.Add(("compaction", string.Create(CultureInfo.InvariantCulture, $"{outcome.BytesAfter / 1e6 / compactWall.TotalSeconds:F0} MB/s written"),
            string.Create(CultureInfo.InvariantCulture,
                $"{outcome.BytesBefore / 1e6:F0} MB read → {outcome.BytesAfter / 1e6:F0} MB written in {compactWall.TotalSeconds:F2} s ({compactCpu.TotalSeconds:F2} s CPU; {outcome.BytesBefore / 1e6 / compactWall.TotalSeconds:F0} MB/s read), " +
                $"{outcome.SegmentsMerged} → {outcome.SegmentsWritten} segments, {outcome.RecordsDropped:N0} records dropped")));
        json["compaction"] = new
        {
            bytesRead = outcome.BytesBefore,
            bytesWritten = outcome.BytesAfter,
            seconds = JsonReport.Num(compactWall.TotalSeconds, 3),
            cpuSeconds = JsonReport.Num(compactCpu.TotalSeconds, 3),
            mbPerSecondWritten = JsonReport.Num(outcome.BytesAfter / 1e6 / compactWall.TotalSeconds, 1),
            mbPerSecondRead = JsonReport.Num(outcome.BytesBefore / 1e6 / compactWall.TotalSeconds, 1),
            segmentsMerged = outcome.SegmentsMerged,
            segmentsWritten = outcome.SegmentsWritten,
            recordsDropped = outcome.RecordsDropped,
        };

        // The raw disk, same run, same byte count as the compaction wrote.
        var raw = progress.Step($"raw sequential write of {outcome.BytesAfter / 1e6:F0} MB + fsync");
        BenchData.Quiesce();
        var rawCpu = Cpu();
        var rawTime = RawSequentialWrite(Path.Combine(Path.GetDirectoryName(dir)!, "raw-write.bin"), outcome.BytesAfter);
        rawCpu = Cpu() - rawCpu;
        raw.Done();
        rows.Add(("raw sequential write (FileStream 1 MiB writes + fsync)", string.Create(CultureInfo.InvariantCulture, $"{outcome.BytesAfter / 1e6 / rawTime.TotalSeconds:F0} MB/s"),
            string.Create(CultureInfo.InvariantCulture, $"{outcome.BytesAfter / 1e6:F0} MB in {rawTime.TotalSeconds:F2} s ({rawCpu.TotalSeconds:F2} s CPU); compaction wrote at {rawTime.TotalSeconds / compactWall.TotalSeconds:P0} of this rate")));
        json["rawSequentialWrite"] = new
        {
            bytes = outcome.BytesAfter,
            seconds = JsonReport.Num(rawTime.TotalSeconds, 3),
            cpuSeconds = JsonReport.Num(rawCpu.TotalSeconds, 3),
            mbPerSecond = JsonReport.Num(outcome.BytesAfter / 1e6 / rawTime.TotalSeconds, 1),
            compactionWriteRateVsRaw = JsonReport.Num(rawTime.TotalSeconds / compactWall.TotalSeconds, 3),
        };

        // 4. Open with hints.
        var hinted = progress.Step("open with hints");
        BenchData.Quiesce();
        {
            var (store, openTime, openCpu, heapDelta) = TimedOpen(dir);
            using (store)
            {
                json["openWithHints"] = OpenJson(store, openTime, openCpu, heapDelta, Directory.GetFiles(dir, "*.hint").Length, HintBytes(dir));
                rows.Add(("open with hints", string.Create(CultureInfo.InvariantCulture, $"{openTime.TotalSeconds:F2} s"),
                    string.Create(CultureInfo.InvariantCulture, $"{openCpu.TotalSeconds:F2} s CPU; {store.Count:N0} keys ({store.Count / openTime.TotalSeconds / 1e6:F2} M keys/s), {store.LastRecovery.SegmentsFromHints} segments from hints, {store.LastRecovery.SegmentsScanned} scanned; {Directory.GetFiles(dir, "*.hint").Length} hint files, {HintBytes(dir) / 1048576.0:F0} MiB")));
                rows.Add(("GC heap growth of that open / key", PerKey(heapDelta, store.Count),
                    string.Create(CultureInfo.InvariantCulture, $"{heapDelta / 1048576.0:F0} MiB; KeyDirectory.AllocatedBytes {PerKey(store.KeyDirectory.AllocatedBytes, store.Count)}")));
            }
        }
        hinted.Done();
        BenchData.DeleteDirectory(dir);

        md.AppendLine(CultureInfo.InvariantCulture, $"### Engine at {keys:N0} keys (12-byte keys, 100-byte values)");
        md.AppendLine();
        md.AppendLine("| row | figure | detail |");
        md.AppendLine("|---|---:|---|");
        foreach (var (what, figure, detail) in rows)
        {
            md.AppendLine($"| {what} | {figure} | {detail} |");
        }
        md.AppendLine();
        return json;
    }

    /// <summary>The figures of one timed open (the "open …" row and the "GC heap growth of that open" row below it).</summary>
    private static object OpenJson(EmbeddedStore store, TimeSpan openTime, TimeSpan openCpu, long heapDelta, int hintFiles, long hintBytes) => new
    {
        seconds = JsonReport.Num(openTime.TotalSeconds, 3),
        cpuSeconds = JsonReport.Num(openCpu.TotalSeconds, 3),
        keys = store.Count,
        keysPerSecond = JsonReport.Num(store.Count / openTime.TotalSeconds, 0),
        segmentsScanned = store.LastRecovery.SegmentsScanned,
        segmentsFromHints = store.LastRecovery.SegmentsFromHints,
        hintFiles,
        hintBytes,
        gcHeapGrowthBytes = heapDelta,
        gcHeapGrowthBytesPerKey = JsonReport.Num((double)heapDelta / Math.Max(1, store.Count), 1),
        keyDirectoryAllocatedBytes = store.KeyDirectory.AllocatedBytes,
        keyDirectoryBytesPerKey = JsonReport.Num((double)store.KeyDirectory.AllocatedBytes / Math.Max(1, store.Count), 1),
    };

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (EmbeddedStore Store, TimeSpan Open, TimeSpan Cpu, long HeapDelta) TimedOpen(string dir)
    {
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var cpu = Cpu();
        var watch = Stopwatch.StartNew();
        var store = EmbeddedStore.Open(dir, new StoreOptions { AutoCompact = false, ReadCacheEntries = 0 });
        var open = watch.Elapsed;
        cpu = Cpu() - cpu;
        var after = GC.GetTotalMemory(forceFullCollection: true);
        return (store, open, cpu, after - before);
    }

    private static TimeSpan RawSequentialWrite(string path, long bytes)
    {
        var chunk = new byte[1 << 20];
        new Random(3).NextBytes(chunk);
        var watch = Stopwatch.StartNew();
        using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
        {
            for (var left = bytes; left > 0; left -= chunk.Length)
            {
                file.Write(chunk, 0, (int)Math.Min(left, chunk.Length));
            }
            file.Flush(flushToDisk: true);
        }
        var elapsed = watch.Elapsed;
        File.Delete(path);
        return elapsed;
    }

    private static TimeSpan Cpu() => Process.GetCurrentProcess().TotalProcessorTime;

    private static long DataBytes(string dir) => Directory.EnumerateFiles(dir, "*.data").Sum(f => new FileInfo(f).Length);

    private static long HintBytes(string dir) => Directory.EnumerateFiles(dir, "*.hint").Sum(f => new FileInfo(f).Length);

    private static string PerKey(long bytes, int keys) => string.Create(CultureInfo.InvariantCulture, $"{(double)bytes / Math.Max(1, keys):F1} B");
}
