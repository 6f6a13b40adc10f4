using System.Diagnostics;
using System.Text;
using CrabKv.Storage;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Recovery;

namespace CrabKv.Node;

/// <summary>
/// The <c>crabkv</c> command. Until the actor node exists (issue 3 onwards) it drives the
/// embedded engine: a demo run, single put/get/delete, stats, verify and repair.
/// </summary>
public static class Program
{
    private const string Usage = """
        crabkv — CrabKv.Actors storage node (engine commands)

        usage:
          crabkv demo   [--data-dir DIR] [--keys N]   write, read, delete and compact N keys (default 200000)
          crabkv put    KEY VALUE [--ttl MS] [--data-dir DIR]
          crabkv get    KEY [--data-dir DIR]
          crabkv delete KEY [--data-dir DIR]
          crabkv stats  [--data-dir DIR]
          crabkv compact [--data-dir DIR]
          crabkv verify [--data-dir DIR]               check every record; changes nothing
          crabkv repair [--data-dir DIR]               rewrite damaged segments keeping intact records

        DIR defaults to ./crabkv-data. Exit codes: 0 ok, 1 not found / damage found, 2 usage or store error.
        """;

    /// <summary>Entry point.</summary>
    public static int Main(string[] args)
    {
        if (args.Length == 0)
        {
            args = ["demo"];
        }
        var positional = new List<string>();
        var dataDir = "crabkv-data";
        var keys = 200_000;
        long? ttlMs = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--data-dir" when i + 1 < args.Length: dataDir = args[++i]; break;
                case "--keys" when i + 1 < args.Length && int.TryParse(args[i + 1], out var k) && k > 0: keys = k; i++; break;
                case "--ttl" when i + 1 < args.Length && long.TryParse(args[i + 1], out var t) && t > 0: ttlMs = t; i++; break;
                case "-h" or "--help": Console.WriteLine(Usage); return 0;
                default:
                    if (args[i].StartsWith("--", StringComparison.Ordinal))
                    {
                        Console.Error.WriteLine($"crabkv: unknown or incomplete option '{args[i]}'.\n\n{Usage}");
                        return 2;
                    }
                    positional.Add(args[i]);
                    break;
            }
        }
        try
        {
            return positional switch
            {
                ["demo"] => Demo(dataDir, keys),
                ["put", var key, var value] => WithStore(dataDir, s =>
                {
                    s.Put(key, value, ttlMs is null ? null : TimeSpan.FromMilliseconds(ttlMs.Value));
                    s.Sync();
                    Console.WriteLine("OK");
                    return 0;
                }),
                ["get", var key] => WithStore(dataDir, s =>
                {
                    var v = s.Get(key);
                    Console.WriteLine(v is null ? "(not found)" : Encoding.UTF8.GetString(v));
                    return v is null ? 1 : 0;
                }),
                ["delete", var key] => WithStore(dataDir, s =>
                {
                    var existed = s.Delete(key);
                    s.Sync();
                    Console.WriteLine(existed ? "deleted" : "(not found)");
                    return existed ? 0 : 1;
                }),
                ["stats"] => WithStore(dataDir, s =>
                {
                    Console.WriteLine(s.GetStats());
                    return 0;
                }),
                ["compact"] => WithStore(dataDir, s =>
                {
                    Console.WriteLine(s.Compact(new ConsoleProgress("compacting")));
                    return 0;
                }),
                ["verify"] => Report(Repair.Verify(dataDir), "verify"),
                ["repair"] => Report(Repair.Run(dataDir, Console.WriteLine), "repair"),
                _ => UsageError(),
            };
        }
        catch (CrabKvException e)
        {
            Console.Error.WriteLine($"crabkv: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"crabkv: {e.Message}");
            return 2;
        }
    }

    private static int UsageError()
    {
        Console.Error.WriteLine(Usage);
        return 2;
    }

    private static int WithStore(string dataDir, Func<EmbeddedStore, int> action)
    {
        using var store = EmbeddedStore.Open(dataDir, new StoreOptions { Log = m => Console.Error.WriteLine($"crabkv: {m}") });
        return action(store);
    }

    private static int Report(RepairReport report, string verb)
    {
        foreach (var n in report.NotSegments)
        {
            Console.WriteLine($"not a segment: {n}");
        }
        foreach (var d in report.Damaged)
        {
            Console.WriteLine($"damaged: {d.Path}: ranges {string.Join(", ", d.DamagedRanges.Select(r => $"[{r.Start}, {r.End})"))}, intact records {d.RecordsKept}, dropped from broken batches {d.RecordsDropped}");
        }
        Console.WriteLine($"{verb}: {report.SegmentsChecked} segments checked, {report.Damaged.Count} damaged, {report.NotSegments.Count} not segments{(verb == "repair" && report.Damaged.Count > 0 ? " (rewritten)" : "")}");
        return report.Clean || verb == "repair" ? 0 : 1;
    }

    private static int Demo(string dataDir, int keys)
    {
        Console.WriteLine($"CrabKv engine demo in '{Path.GetFullPath(dataDir)}' with {keys:N0} keys.");
        var options = new StoreOptions { Log = m => Console.WriteLine($"  recovery: {m}") };
        using var store = EmbeddedStore.Open(dataDir, options);
        var r = store.LastRecovery;
        Console.WriteLine($"Opened: {store.Count:N0} keys recovered ({r.SegmentsFromHints} segments from hints, {r.SegmentsScanned} scanned).");

        var value = new byte[100];
        var sw = Stopwatch.StartNew();
        var bar = new ConsoleProgress("put (sync every 100 ms)");
        var lastSync = Stopwatch.StartNew();
        for (var i = 0; i < keys; i++)
        {
            BitConverter.TryWriteBytes(value, i);
            store.Put($"key:{i:D8}", value);
            if (lastSync.ElapsedMilliseconds >= 100)
            {
                store.Sync();
                lastSync.Restart();
            }
            if ((i & 0x3FFF) == 0)
            {
                bar.Report(new MergeProgress(i, keys));
            }
        }
        store.Sync();
        bar.Done($"{keys / sw.Elapsed.TotalSeconds:N0} puts/s");

        sw.Restart();
        var rng = new Random(42);
        var hits = 0;
        for (var i = 0; i < keys; i++)
        {
            if (store.TryGet($"key:{rng.Next(keys):D8}", out _))
            {
                hits++;
            }
        }
        Console.WriteLine($"get: {hits:N0}/{keys:N0} hits, {keys / sw.Elapsed.TotalSeconds:N0} gets/s");

        var batch = Enumerable.Range(0, keys / 2).Select(i => BatchOperation.Delete($"key:{i:D8}")).ToList();
        store.PutBatch(batch);
        store.Sync();
        Console.WriteLine($"deleted {batch.Count:N0} keys in one atomic batch; {store.Count:N0} keys remain.");

        var outcome = store.Compact(new ConsoleProgress("compact"));
        Console.WriteLine($"compaction: {outcome.InputSegments} segments → {outcome.OutputSegments}, {outcome.BytesBefore:N0} → {outcome.BytesAfter:N0} bytes, {outcome.RecordsDropped:N0} records dropped in {outcome.Duration.TotalMilliseconds:N0} ms");
        Console.WriteLine($"stats: {store.GetStats()}");
        Console.WriteLine("Run `crabkv demo` again to see the store recover from its hint files.");
        return 0;
    }
}

/// <summary>A one-line console progress bar.</summary>
internal sealed class ConsoleProgress(string label) : IProgress<MergeProgress>
{
    private int _lastPercent = -1;

    public void Report(MergeProgress value)
    {
        var percent = (int)(value.Fraction * 100);
        if (percent == _lastPercent)
        {
            return;
        }
        _lastPercent = percent;
        if (Console.IsOutputRedirected && percent < 100)
        {
            return; // a log file gets the final line only
        }
        var filled = percent / 5;
        Console.Write($"\r{label,-26} [{new string('#', filled)}{new string('.', 20 - filled)}] {percent,3}%");
        if (percent >= 100)
        {
            Console.WriteLine();
        }
    }

    public void Done(string summary)
    {
        if (Console.IsOutputRedirected)
        {
            Console.WriteLine($"{label}: {summary}");
            _lastPercent = 100;
            return;
        }
        Console.Write($"\r{label,-26} [{new string('#', 20)}] 100%");
        Console.WriteLine($"  {summary}");
        _lastPercent = 100;
    }
}
