using CrabKv.Actors;
using CrabKv.Node.Cli;
using CrabKv.Node.Hosting;
using CrabKv.Node.Output;
using CrabKv.Storage;
using CrabKv.Storage.Files;
using CrabKv.Storage.Recovery;

namespace CrabKv.Node.Commands;

/// <summary>
/// <c>verify</c> and <c>repair</c>, on the data directory of a stopped node: both hold the
/// data directory's LOCK for the whole run and take each partition's, so a running node (which
/// holds them for its whole life) makes them fail with its name; verify only through LOCK files
/// that exist, creating and writing nothing. Findings go to stdout, progress over the partitions
/// to stderr.
/// </summary>
public static class Offline
{
    /// <summary>Checks (or repairs) every partition; 1 when verify finds damage.</summary>
    public static async Task<int> RunAsync(string? configFile, string? dataDir, bool repair)
    {
        var settings = CrabKvSettings.Create(NodeConfig.ForStore(configFile, dataDir));
        var root = NodeConfig.ExistingDataDir(settings.DataDir);
        var partitions = Directory.GetDirectories(root, "p-*").Order(StringComparer.Ordinal).ToList();
        if (partitions.Count == 0)
        {
            throw new CliException(ExitCodes.Error, $"'{root}' holds no partition directory (p-NNN): not a crabkv data directory");
        }
        // A node holds the data directory's LOCK for its whole life: held here, no node starts meanwhile.
        using var rootLock = repair ? DirectoryLock.Acquire(FileLayer.Default, root) : DirectoryLock.AcquireExisting(FileLayer.Default, root);
        var verb = repair ? "repair" : "verify";
        // The partition count is the user's to settle: reported by both, changed by neither.
        var countProblem = DataDirectory.CountProblem(root);
        if (countProblem is not null)
        {
            Consoles.Result($"data directory '{root}' {countProblem}.");
        }
        var clean = countProblem is null;
        var damaged = 0;
        var notSegments = 0;
        var badHints = 0;
        var tornTails = 0;
        var movedAside = 0;
        await ProgressDisplay.RunAsync(progress =>
        {
            var task = progress.Start($"{verb} {partitions.Count} partitions", partitions.Count);
            foreach (var dir in partitions)
            {
                var report = repair ? Repair.Run(dir, line => Consoles.Result($"{Path.GetFileName(dir)}: {line}")) : Repair.Verify(dir);
                foreach (var n in report.NotSegments)
                {
                    Consoles.Result($"not a segment: {n}");
                }
                notSegments += report.NotSegments.Count;
                foreach (var h in repair ? [] : report.BadHints ?? [])
                {
                    Consoles.Result($"{Path.GetFileName(dir)}: {h}");
                }
                badHints += report.BadHints?.Count ?? 0;
                foreach (var t in repair ? [] : report.TornTails)
                {
                    Consoles.Result($"{Path.GetFileName(dir)}: {t}");
                }
                tornTails += report.TornTails.Count;
                foreach (var d in report.Damaged)
                {
                    Consoles.Result($"damaged: {d.Path}: bytes {string.Join(", ", d.DamagedRanges.Select(r => $"[{r.Start}, {r.End})"))}, " +
                                    $"intact records {d.RecordsKept}, dropped from broken batches {d.RecordsDropped}");
                }
                Consoles.Result($"{Path.GetFileName(dir)}: {report.SegmentsChecked} segments checked, {report.Damaged.Count} damaged{(repair && report.Damaged.Count > 0 ? " (rewritten)" : "")}");
                clean &= report.Clean;
                damaged += report.Damaged.Count;
                movedAside += report.MovedAside?.Count ?? 0;
                task.Increment(1);
            }
            var changed = repair && damaged + movedAside + badHints > 0;
            task.Complete(changed ? "repaired (see the lines above)" : clean ? "clean" : damaged > 0 ? $"{damaged} damaged segments" : "problems found (see the lines above)");
            return Task.FromResult(0);
        });
        var found = new List<string>();
        if (damaged > 0)
        {
            found.Add(repair ? $"{damaged} damaged segments rewritten" : $"{damaged} damaged segments (crabkv repair rewrites them)");
        }
        if (notSegments > 0)
        {
            found.Add(repair ? $"{notSegments} files named like segments left as they are (CrabKv files of another format version or id: see the lines above)"
                             : $"{notSegments} files or directories named like segments that are not segments (crabkv repair moves aside those that hold no CrabKv data)");
        }
        if (movedAside > 0)
        {
            found.Add($"{movedAside} files or directories named like segments but holding no CrabKv data moved aside (renamed *{Repair.MovedAsideSuffix}, kept)");
        }
        if (badHints > 0)
        {
            found.Add(repair ? $"{badHints} damaged hint files rewritten"
                             : $"{badHints} damaged hint files (their segments are intact and open by a scan; crabkv repair rewrites the hints)");
        }
        if (countProblem is not null)
        {
            found.Add("its partition count does not match its partition directories (see above; left as it is)");
        }
        var summary = found.Count == 0 ? "clean" : string.Join("; ", found);
        if (tornTails > 0)
        {
            summary += $" ({tornTails} torn tails of interrupted writes: the next start cuts them)";
        }
        Consoles.Result($"{verb}: {partitions.Count} partitions in '{root}': {summary}");
        // repair: 0 when what is left opens; files it could not touch keep the node from starting.
        return clean || (repair && notSegments == 0 && countProblem is null) ? ExitCodes.Ok : repair ? ExitCodes.Error : ExitCodes.NotFound;
    }
}
