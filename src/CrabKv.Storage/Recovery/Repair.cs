using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage.Recovery;

/// <summary>Damage found in one segment.</summary>
/// <param name="Path">The segment file.</param>
/// <param name="DamagedRanges">Byte ranges [Start, End) that hold no intact record.</param>
/// <param name="RecordsKept">Intact records kept.</param>
/// <param name="RecordsDropped">Intact records dropped because their batch lost a member.</param>
public sealed record SegmentDamage(string Path, IReadOnlyList<(long Start, long End)> DamagedRanges, long RecordsKept, long RecordsDropped);

/// <summary>What <see cref="Repair.Verify"/> or <see cref="Repair.Run"/> found (and, for Run, fixed).</summary>
/// <param name="SegmentsChecked">Segment files looked at.</param>
/// <param name="Damaged">Segments with damage (repair: rewritten).</param>
/// <param name="NotSegments">Files named like segments that are not (another format version or id, or no CrabKv file when only verified).</param>
/// <param name="MovedAside">Files with no CrabKv data that repair renamed out of the way.</param>
/// <param name="BadHints">Hint files of intact segments that do not verify (open ignores them and scans the segment); repair rewrote them.</param>
public sealed record RepairReport(int SegmentsChecked, IReadOnlyList<SegmentDamage> Damaged, IReadOnlyList<string> NotSegments, IReadOnlyList<string>? MovedAside = null, IReadOnlyList<string>? BadHints = null)
{
    /// <summary>True when every segment verified, and every hint file (verify only: repair rewrites damaged ones).</summary>
    public bool Clean => Damaged.Count == 0 && NotSegments.Count == 0 && (BadHints is null || BadHints.Count == 0 || Rewritten);

    /// <summary>Whether this is repair's report (what it found damaged has been rewritten).</summary>
    public bool Rewritten { get; init; }

    /// <summary>Torn tails of active segments (an interrupted write): not damage; the next open cuts them (FORMAT.md section 8, rule 4).</summary>
    public IReadOnlyList<string> TornTails { get; init; } = [];
}

/// <summary>
/// <c>verify</c> and <c>repair</c> for a partition directory (FORMAT.md section 8, rule 7).
/// Both take the directory lock, so the store must be closed (verify through an existing
/// <c>LOCK</c> file only: it creates and writes nothing).
/// </summary>
public static class Repair
{
    /// <summary>Checks every record of every segment; changes nothing.</summary>
    /// <param name="directory">The partition directory.</param>
    /// <param name="files">The file layer; default <see cref="FileLayer.Default"/>.</param>
    public static RepairReport Verify(string directory, FileLayer? files = null) => Walk(files ?? FileLayer.Default, directory, rewrite: false, null);

    /// <summary>
    /// Rewrites each damaged segment keeping every intact record (and dropping members of
    /// batches that lost one), deletes its stale hint, and reports what was dropped.
    /// </summary>
    /// <param name="directory">The partition directory.</param>
    /// <param name="log">Receives a line per repair.</param>
    /// <param name="files">The file layer; default <see cref="FileLayer.Default"/>.</param>
    public static RepairReport Run(string directory, Action<string>? log = null, FileLayer? files = null) => Walk(files ?? FileLayer.Default, directory, rewrite: true, log);

    private static RepairReport Walk(FileLayer files, string directory, bool rewrite, Action<string>? log)
    {
        directory = Path.GetFullPath(directory);
        if (!files.DirectoryExists(directory))
        {
            throw new DirectoryNotFoundException($"Data directory '{directory}' does not exist.");
        }
        // Verify creates and writes nothing (a read-only copy, a snapshot); repair takes the lock as a store does.
        using var dirLock = rewrite ? DirectoryLock.Acquire(files, directory) : DirectoryLock.AcquireExisting(files, directory);
        if (rewrite)
        {
            StoreRecovery.DeleteTemporaryFiles(files, directory, log);
        }
        var damaged = new List<SegmentDamage>();
        var notSegments = new List<string>();
        var movedAside = new List<string>();
        var badHints = new List<string>();
        var tornTails = new List<string>();
        foreach (var d in StoreRecovery.SegmentNamedDirectories(files, directory))
        {
            var message = StoreRecovery.NotAFile(d).Message;
            if (rewrite)
            {
                var aside = FreeAsideName(files, d);
                files.MoveDirectory(d, aside);
                files.SyncDirectory(directory);
                movedAside.Add($"{message} Moved aside to '{aside}'.");
                log?.Invoke(movedAside[^1]);
                continue;
            }
            notSegments.Add(message);
            log?.Invoke(message);
        }
        var ids = StoreRecovery.ListSegmentFiles(files, directory);
        var firstActive = StoreRecovery.FirstActive(files, directory, ids);
        for (var i = 0; i < ids.Count; i++)
        {
            var id = ids[i];
            var path = Path.Combine(directory, id.DataFileName);
            Segment segment;
            try
            {
                segment = Segment.OpenSealed(files, id, path);
            }
            catch (NotASegmentException e)
            {
                if (rewrite && e.NoCrabKvHeader && !HoldsARecord(files, id, path))
                {
                    // Named like a segment, but no CrabKv file at all: renamed out of the way
                    // (kept, never deleted), so the partition opens. A CrabKv file of another
                    // format version or id is left for its owner to decide.
                    var aside = FreeAsideName(files, path);
                    files.Move(path, aside, overwrite: false);
                    files.SyncDirectory(directory);
                    movedAside.Add($"{e.Message} Moved aside to '{aside}'.");
                    log?.Invoke(movedAside[^1]);
                    continue;
                }
                notSegments.Add(e.Message);
                log?.Invoke(e.Message);
                continue;
            }
            SegmentDamage? damage;
            List<byte[]> kept;
            using (segment)
            {
                damage = Salvage(segment, i >= firstActive && id.Sub == 0, out kept, out var torn);
                if (torn is { } t)
                {
                    var what = t.BatchRecords > 0 ? $"an unfinished batch of {t.BatchRecords} records and what follows" : "a partial record";
                    tornTails.Add($"'{path}': torn tail, bytes [{t.Start}, {t.End}): {what}, from a write that was interrupted " +
                                  "(a crash, a full disk); the next start cuts it");
                    log?.Invoke(tornTails[^1]);
                }
                if (damage is null && !(i >= firstActive && id.Sub == 0)) // hints are a sealed segment's (the active one is always scanned)
                {
                    CheckHint(files, directory, segment, rewrite, badHints, log);
                }
            }
            if (damage is null)
            {
                continue;
            }
            damaged.Add(damage);
            log?.Invoke($"'{path}': damaged ranges {string.Join(", ", damage.DamagedRanges.Select(r => $"[{r.Start}, {r.End})"))}; kept {damage.RecordsKept} records, dropped {damage.RecordsDropped} from broken batches.");
            if (rewrite)
            {
                Rewrite(files, directory, id, kept);
            }
        }
        return new RepairReport(ids.Count, damaged, notSegments, movedAside, badHints) { Rewritten = rewrite, TornTails = tornTails };
    }

    /// <summary>
    /// The hint file of an intact segment, if it has one: open uses it only if every entry
    /// verifies (FORMAT.md section 5), otherwise it scans the segment, at every open. A hint
    /// that does not verify is reported; repair writes it again from the segment's records.
    /// </summary>
    private static void CheckHint(FileLayer files, string directory, Segment segment, bool rewrite, List<string> badHints, Action<string>? log)
    {
        var hintPath = Path.Combine(directory, segment.Id.HintFileName);
        if (!files.FileExists(hintPath) || HintFile.TryLoad(files, hintPath, segment.Id, segment.Length, static (in HintEntry _) => { }, out var whyNot))
        {
            return;
        }
        var message = $"hint file '{hintPath}' is damaged ({whyNot}); its segment is intact: the partition opens by scanning it";
        if (rewrite)
        {
            var hint = new HintFile.Builder(segment.Id);
            var scanner = new SegmentScanner(segment, segment.Length);
            while (scanner.Next() == ScanStatus.Record)
            {
                var h = scanner.Header;
                hint.Add(RecordCodec.KeyOf(scanner.Record, h), h.Flags, h.Expiry, (uint)scanner.RecordOffset, (uint)h.Size);
            }
            files.Delete(hintPath);
            hint.Complete(files, directory, segment.Length);
            files.SyncDirectory(directory);
            message += "; rewritten from the segment's records";
        }
        badHints.Add(message);
        log?.Invoke(message);
    }

    /// <summary><paramref name="path"/> + <see cref="MovedAsideSuffix"/>, numbered (<c>.2</c>, <c>.3</c>, …) when an earlier repair already used that name.</summary>
    private static string FreeAsideName(FileLayer files, string path)
    {
        var aside = path + MovedAsideSuffix;
        for (var n = 2; files.FileExists(aside) || files.DirectoryExists(aside); n++)
        {
            aside = $"{path}{MovedAsideSuffix}.{n}";
        }
        return aside;
    }

    /// <summary>The suffix a file named like a segment but holding no CrabKv data gets from repair.</summary>
    public const string MovedAsideSuffix = ".not-a-segment";

    /// <summary>Whether <paramref name="name"/> is a file or directory repair moved aside (kept for its owner, no store data).</summary>
    public static bool IsMovedAside(string name) => name.Contains(MovedAsideSuffix, StringComparison.Ordinal);

    /// <summary>Where <see cref="KeepMovedAside"/> keeps them, under the data directory (not a <c>p-*</c> name: no partition).</summary>
    public const string KeptDirectoryName = "moved-aside";

    /// <summary>
    /// Moves what repair moved aside in <paramref name="partitionDirectory"/> to
    /// <c>&lt;data-dir&gt;/moved-aside/&lt;partition&gt;/</c> before the partition directory is
    /// deleted (it moved to another node): kept, as repair promised, never deleted with it.
    /// </summary>
    public static void KeepMovedAside(FileLayer files, string partitionDirectory)
    {
        var entries = files.EnumerateFiles(partitionDirectory, "*").Concat(files.EnumerateDirectories(partitionDirectory, "*"))
            .Where(e => IsMovedAside(Path.GetFileName(e)))
            .ToList();
        if (entries.Count == 0)
        {
            return;
        }
        var dataDir = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(partitionDirectory))!;
        var kept = Path.Combine(dataDir, KeptDirectoryName, Path.GetFileName(Path.TrimEndingDirectorySeparator(partitionDirectory)));
        DirectoryLock.CreateDurably(files, kept);
        foreach (var entry in entries)
        {
            var target = FreeAsideName(files, Path.Combine(kept, Path.GetFileName(entry)[..Path.GetFileName(entry).IndexOf(MovedAsideSuffix, StringComparison.Ordinal)]));
            if (files.DirectoryExists(entry))
            {
                files.MoveDirectory(entry, target);
            }
            else
            {
                files.Move(entry, target, overwrite: false);
            }
        }
        files.SyncDirectory(kept);
        files.SyncDirectory(partitionDirectory);
    }

    /// <summary>
    /// Whether a file whose header is not a segment's still holds a record that verifies past
    /// where the header ends: then it is a CrabKv segment with a damaged header, and its records
    /// must not be moved out of the partition's sight.
    /// </summary>
    private static bool HoldsARecord(FileLayer files, SegmentId id, string path)
    {
        using var segment = Segment.OpenReader(files, id, path);
        segment.UpdateLength(files.GetLength(segment.Handle));
        return new SegmentScanner(segment, segment.Length).FindNextValidRecord(Format.FormatConstants.FileHeaderSize - 1) >= 0;
    }

    /// <summary>
    /// The intact records of <paramref name="segment"/> and its damage, or null when it has none.
    /// In the active segment (<paramref name="isActive"/>) open's rule 4 applies (FORMAT.md
    /// section 8): invalid bytes with no valid record after them, and an unended batch at the
    /// end, are a torn tail (an interrupted write, a full disk), which open cuts: reported in
    /// <paramref name="tornTail"/>, not as damage; a zero tail is neither.
    /// </summary>
    private static SegmentDamage? Salvage(Segment segment, bool isActive, out List<byte[]> kept, out (long Start, long End, int BatchRecords)? tornTail)
    {
        kept = new List<byte[]>();
        tornTail = null;
        var ranges = new List<(long, long)>();
        var scanner = new SegmentScanner(segment, segment.Length);
        var batch = new List<byte[]>();
        long batchStart = -1;
        long dropped = 0;
        // After damage, batch members up to the next BatchEnd may belong to a batch whose
        // first members were in the damaged range: they are dropped (FORMAT.md section 4).
        var dropUntilBatchEnd = false;
        while (true)
        {
            var status = scanner.Next();
            if (status == ScanStatus.End)
            {
                break;
            }
            if (status == ScanStatus.Invalid)
            {
                var start = scanner.Position;
                if (isActive && scanner.FindNextValidRecord(start, out var zeroTail) < 0)
                {
                    // What open cuts: from here (or the unended batch's first record) to the end.
                    if (batch.Count > 0 || !zeroTail)
                    {
                        tornTail = (batch.Count > 0 ? batchStart : start, segment.Length, batch.Count);
                    }
                    batch.Clear();
                    break;
                }
                // A damaged record whose header still holds: resume right after it, so bytes
                // inside its value are never mistaken for records. Otherwise search.
                var next = scanner.EndOfDamagedRecord(start);
                if (next < 0)
                {
                    var claimedEnd = scanner.EndOfPlausibleRecord(start);
                    next = scanner.FindNextValidRecord(claimedEnd > start ? claimedEnd - 1 : start);
                }
                else if (next == segment.Length)
                {
                    ranges.Add((start, next));
                    dropUntilBatchEnd = true;
                    dropped += batch.Count;
                    batch.Clear();
                    break;
                }
                ranges.Add((start, next < 0 ? segment.Length : next));
                dropUntilBatchEnd = true;
                dropped += batch.Count;
                batch.Clear();
                if (next < 0)
                {
                    break;
                }
                scanner.Seek(next);
                continue;
            }
            var h = scanner.Header;
            var rec = scanner.Record.ToArray();
            if (dropUntilBatchEnd)
            {
                if (h.InBatch)
                {
                    dropped++;
                    dropUntilBatchEnd = !h.IsBatchEnd;
                    continue;
                }
                dropUntilBatchEnd = false;
            }
            if (!h.InBatch)
            {
                dropped += batch.Count;
                batch.Clear();
                kept.Add(rec);
                continue;
            }
            if (batch.Count == 0)
            {
                batchStart = scanner.RecordOffset;
            }
            batch.Add(rec);
            if (h.IsBatchEnd)
            {
                kept.AddRange(batch);
                batch.Clear();
            }
        }
        if (isActive && batch.Count > 0)
        {
            tornTail = (batchStart, segment.Length, batch.Count); // a batch whose end record was never written
            batch.Clear();
        }
        dropped += batch.Count;
        if (ranges.Count == 0 && dropped == 0)
        {
            return null;
        }
        return new SegmentDamage(segment.Path, ranges, kept.Count, dropped);
    }

    private static void Rewrite(FileLayer files, string directory, SegmentId id, List<byte[]> records)
    {
        var tmpName = id.DataFileName + ".repair.tmp";
        using (var writer = SegmentWriter.Create(files, directory, id, 1 << 20, 0, tmpName))
        {
            foreach (var r in records)
            {
                writer.AppendRaw(r);
            }
            writer.Seal();
        }
        files.Delete(Path.Combine(directory, id.HintFileName));
        files.Move(Path.Combine(directory, tmpName), Path.Combine(directory, id.DataFileName), overwrite: true);
        files.SyncDirectory(directory);
    }
}
