using System.Diagnostics;
using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Index;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage.Recovery;

/// <summary>What open found and did; every repair it made is listed here and logged.</summary>
public sealed class RecoveryReport
{
    /// <summary>Segments whose hint file was used.</summary>
    public int SegmentsFromHints { get; internal set; }

    /// <summary>Segments scanned record by record (no hint file, an unusable one, or the segment that was active).</summary>
    public int SegmentsScanned { get; internal set; }

    /// <summary>How the key directory was rebuilt, from <see cref="SegmentsFromHints"/> and <see cref="SegmentsScanned"/>.</summary>
    public RecoveryMode Mode => (SegmentsFromHints, SegmentsScanned) switch
    {
        (0, 0) => RecoveryMode.None,
        (_, 0) => RecoveryMode.Hints,
        (0, _) => RecoveryMode.Scan,
        _ => RecoveryMode.Mixed,
    };

    /// <summary>Time the recovery took: leftover cleanup, torn-tail check, hint loading and scans.</summary>
    public TimeSpan Duration { get; internal set; }

    /// <summary>Records (or hint entries) applied.</summary>
    public long RecordsApplied { get; internal set; }

    /// <summary>Set when a torn tail was cut off: file, offset cut at, bytes removed.</summary>
    public (string Path, long Offset, long BytesCut)? TornTail { get; internal set; }

    /// <summary>Keys the key directory was presized for from the hint trailers' entry counts (0: no usable hint; it grew as needed).</summary>
    public long PresizedKeys { get; internal set; }

    /// <summary>Human-readable lines of everything noteworthy.</summary>
    public List<string> Messages { get; } = new();
}

/// <summary>Everything a store needs after open: the partition index (key directory, accounting, sealed segments).</summary>
public sealed class RecoveredState
{
    internal RecoveredState(PartitionIndex index, uint nextSequence, RecoveryReport report)
    {
        Index = index;
        NextSequence = nextSequence;
        Report = report;
    }

    /// <summary>The rebuilt index: live, unexpired keys; every segment on disk, all sealed now, opened for reading.</summary>
    public PartitionIndex Index { get; }

    /// <summary>Sequence number for the next active segment.</summary>
    public uint NextSequence { get; }

    /// <summary>What recovery found.</summary>
    public RecoveryReport Report { get; }
}

/// <summary>
/// Rebuilds a partition's state from its directory (FORMAT.md section 8). The caller holds
/// the directory lock.
/// </summary>
public static class StoreRecovery
{
    /// <summary>Lists the data segments of <paramref name="directory"/> in id order.</summary>
    public static List<SegmentId> ListSegments(FileLayer files, string directory)
    {
        foreach (var d in SegmentNamedDirectories(files, directory))
        {
            throw NotAFile(d);
        }
        return ListSegmentFiles(files, directory);
    }

    /// <summary>
    /// Directories named like a segment or hint file: the store could never create that file,
    /// so an open refuses them (<see cref="NotAFile"/>); verify reports them and repair moves
    /// them aside.
    /// </summary>
    public static List<string> SegmentNamedDirectories(FileLayer files, string directory) =>
        files.EnumerateDirectories(directory, "seg-*")
            .Where(d => SegmentId.TryParseFileName(Path.GetFileName(d), out _, out _))
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>What a directory named like a segment or hint file is refused with.</summary>
    public static NotASegmentException NotAFile(string path) => new(path, "it is a directory, not a file", noCrabKvHeader: true);

    /// <summary><see cref="ListSegments"/> without the check for directories named like segments.</summary>
    internal static List<SegmentId> ListSegmentFiles(FileLayer files, string directory)
    {
        var ids = new List<SegmentId>();
        foreach (var path in files.EnumerateFiles(directory, "seg-*.data"))
        {
            if (!SegmentId.TryParseFileName(Path.GetFileName(path), out var id, out _))
            {
                // Skipping it would silently hide its keys.
                throw new NotASegmentException(path, "its name is not seg-SSSSSSSS-BBBBBB.data");
            }
            ids.Add(id);
        }
        ids.Sort();
        return ids;
    }

    /// <summary>
    /// Deletes the leftovers of an interrupted merge or repair: <c>*.tmp</c> files, and hint
    /// files whose data segment does not exist (a crash between a merge's two renames).
    /// </summary>
    public static void DeleteTemporaryFiles(FileLayer files, string directory, Action<string>? log)
    {
        foreach (var tmp in files.EnumerateFiles(directory, "*.tmp").ToList())
        {
            files.Delete(tmp);
            log?.Invoke($"Deleted leftover temporary file '{tmp}'.");
        }
        foreach (var hint in files.EnumerateFiles(directory, "seg-*.hint").ToList())
        {
            if (!files.FileExists(Path.ChangeExtension(hint, ".data")))
            {
                files.Delete(hint);
                log?.Invoke($"Deleted hint file '{hint}' whose data segment does not exist.");
            }
        }
    }

    /// <summary>
    /// Loads every segment of <paramref name="directory"/>, cutting a torn tail off the last
    /// one; every file operation goes through <paramref name="files"/>.
    /// </summary>
    public static RecoveredState Load(FileLayer files, string directory, long nowMs, Action<string>? log)
    {
        var started = Stopwatch.GetTimestamp();
        DeleteTemporaryFiles(files, directory, log);
        var report = new RecoveryReport();
        void Note(string m)
        {
            report.Messages.Add(m);
            log?.Invoke(m);
        }

        var ids = ListSegments(files, directory);
        var firstActive = FirstActive(files, directory, ids);
        report.PresizedKeys = HintedKeyCount(files, directory, ids);
        var index = new PartitionIndex(new KeyDirectory((int)Math.Clamp(report.PresizedKeys, 1024, 1 << 30)));
        try
        {
            for (var i = 0; i < ids.Count; i++)
            {
                var id = ids[i];
                var path = Path.Combine(directory, id.DataFileName);
                var hintPath = Path.Combine(directory, id.HintFileName);
                var isActive = i >= firstActive && id.Sub == 0; // merge outputs are fsynced before they get their name: never torn
                if (isActive)
                {
                    // One pass validates, cuts the torn tail and indexes: a hint would add nothing.
                    if (files.FileExists(hintPath))
                    {
                        Note($"Ignoring hint '{hintPath}' beside the active segment; scanning the data segment instead.");
                    }
                    if (RecoverActive(files, path, id, index, nowMs, report, Note) is { } active)
                    {
                        index.AddSealed(active);
                        report.SegmentsScanned++;
                    }
                    continue;
                }
                var segment = Segment.OpenSealed(files, id, path);
                index.AddSealed(segment);
                if (files.FileExists(hintPath))
                {
                    if (LoadHint(files, hintPath, segment, index, nowMs, report, out var whyNot))
                    {
                        report.SegmentsFromHints++;
                        continue;
                    }
                    Note($"Ignoring hint '{hintPath}' ({whyNot}); scanning the data segment instead.");
                }
                Scan(segment, index, nowMs, report);
                report.SegmentsScanned++;
            }
        }
        catch
        {
            index.Dispose();
            throw;
        }
        var next = ids.Count == 0 ? 1u : ids[^1].Sequence + 1;
        report.Duration = Stopwatch.GetElapsedTime(started);
        return new RecoveredState(index, next, report);
    }

    /// <summary>
    /// Key directory capacity for an open: the entry counts the hint trailers state (read before
    /// any entry is; merge outputs hold each live key once, so their sum is close to the key
    /// count), so the directory does not grow and rehash its way up. Segments without a hint
    /// are not guessed at: the directory grows for them as before.
    /// </summary>
    private static long HintedKeyCount(FileLayer files, string directory, List<SegmentId> ids)
    {
        long total = 0;
        foreach (var id in ids)
        {
            var hintPath = Path.Combine(directory, id.HintFileName);
            if (files.FileExists(hintPath) && HintFile.TryReadEntryCount(files, hintPath) is { } count)
            {
                total += count;
            }
        }
        return total;
    }

    private static bool LoadHint(FileLayer files, string hintPath, Segment segment, PartitionIndex index, long nowMs, RecoveryReport report, out string? whyNot)
    {
        long applied = 0;
        var queue = new ApplyQueue(index, nowMs);
        var ok = HintFile.TryLoad(files, hintPath, segment.Id, segment.Length, (in HintEntry e) =>
        {
            var loc = new KeyLocation(segment.Id, e.Offset, e.Size, e.Expiry);
            queue.Add(e.Key, loc, (e.Flags & RecordFlags.Tombstone) != 0);
            applied++;
        }, out whyNot);
        queue.Drain();
        report.RecordsApplied += applied;
        return ok;
    }

    private readonly record struct Pending(byte[] Key, KeyLocation Location, bool Tombstone);

    /// <summary>Scans a sealed segment; any damage is a <see cref="CorruptSegmentException"/>.</summary>
    private static void Scan(Segment segment, PartitionIndex index, long nowMs, RecoveryReport report)
    {
        var scanner = new SegmentScanner(segment, segment.Length);
        var status = ApplyRecords(scanner, segment, index, nowMs, report, out var unendedBatch);
        if (status == ScanStatus.End && unendedBatch >= 0)
        {
            throw new CorruptSegmentException(segment.Path, unendedBatch, "batch without its end record");
        }
        if (status == ScanStatus.Invalid)
        {
            throw new CorruptSegmentException(segment.Path, scanner.Position, scanner.InvalidReason);
        }
    }

    /// <summary>
    /// Applies a segment's records front to back up to the first bytes that are not a valid
    /// record (<see cref="ScanStatus.Invalid"/>, at <see cref="SegmentScanner.Position"/>) or
    /// the end of the data (<see cref="ScanStatus.End"/>). Batch members are kept aside and
    /// applied when the member carrying <c>BatchEnd</c> is read; a plain record after an
    /// unended batch is corruption. <paramref name="unendedBatch"/> is the offset of a batch
    /// still open where the records stop, or -1: its members were not applied.
    /// </summary>
    private static ScanStatus ApplyRecords(SegmentScanner scanner, Segment segment, PartitionIndex index, long nowMs, RecoveryReport report, out long unendedBatch)
    {
        var pending = new List<Pending>();
        var queue = new ApplyQueue(index, nowMs);
        long batchStart = -1;
        while (true)
        {
            var status = scanner.Next();
            if (status != ScanStatus.Record)
            {
                queue.Drain();
                unendedBatch = pending.Count > 0 ? batchStart : -1;
                return status;
            }
            var h = scanner.Header;
            var rec = scanner.Record;
            var loc = new KeyLocation(segment.Id, (uint)scanner.RecordOffset, (uint)h.Size, h.Expiry);
            if (!h.InBatch)
            {
                if (pending.Count > 0)
                {
                    queue.Drain(); // the index holds everything before the damage, as without the queue
                    throw new CorruptSegmentException(segment.Path, batchStart, "batch without its end record");
                }
                queue.Add(RecordCodec.KeyOf(rec, h), loc, h.IsTombstone);
                report.RecordsApplied++;
                continue;
            }
            if (pending.Count == 0)
            {
                batchStart = scanner.RecordOffset;
            }
            pending.Add(new Pending(RecordCodec.KeyOf(rec, h).ToArray(), loc, h.IsTombstone));
            if (h.IsBatchEnd)
            {
                foreach (var p in pending)
                {
                    queue.Add(p.Key, p.Location, p.Tombstone);
                }
                report.RecordsApplied += pending.Count;
                pending.Clear();
            }
        }
    }

    /// <summary>
    /// Recovers the active segment in one pass over its bytes (FORMAT.md section 8, rule 4):
    /// its records are verified and applied as they are read, up to where the valid data ends.
    /// Damage followed by a valid record is corruption; otherwise the rest (and an unended
    /// batch, whose members were never applied) is a torn tail and is cut. Returns the segment,
    /// sealed at the length it is left with and open for reading, or null when it was deleted:
    /// its creation was torn (shorter than a header, or all zero), or it holds no record.
    /// </summary>
    private static Segment? RecoverActive(FileLayer files, string path, SegmentId id, PartitionIndex index, long nowMs, RecoveryReport report, Action<string> note)
    {
        var segment = Segment.OpenReader(files, id, path);
        try
        {
            segment.UpdateLength(files.GetLength(segment.Handle));
            Span<byte> header = stackalloc byte[FormatConstants.FileHeaderSize];
            var headerBytes = segment.Length < FormatConstants.FileHeaderSize ? 0 : segment.ReadAt(header, 0);
            if (segment.Length < FormatConstants.FileHeaderSize
                || (!header[..headerBytes].ContainsAnyExcept((byte)0) && IsZeroFill(segment, headerBytes)))
            {
                segment.Dispose();
                files.Delete(path);
                note($"Deleted '{path}': its creation was torn (shorter than a header).");
                return null;
            }
            FileHeader.Validate(header[..headerBytes], FormatConstants.SegmentMagic, id, path);

            var scanner = new SegmentScanner(segment, segment.Length);
            var status = ApplyRecords(scanner, segment, index, nowMs, report, out var unendedBatch);
            var end = scanner.Position;
            var zeroTail = false;
            if (status == ScanStatus.Invalid)
            {
                // Searched from the next byte on purpose: a damaged length field must not make
                // open cut valid records as a "tail". A valid-looking record inside a torn value
                // makes open refuse instead (safe); `repair` then skips that value whole.
                var next = scanner.FindNextValidRecord(end, out zeroTail);
                if (next >= 0)
                {
                    throw new CorruptSegmentException(path, end, $"{scanner.InvalidReason}, followed by a valid record at {next}");
                }
            }
            // An unended batch's first record is never zero bytes: a cut there is a torn write.
            var cut = unendedBatch >= 0 ? unendedBatch : end;
            if (cut < segment.Length)
            {
                var bytesCut = segment.Length - cut;
                using (var h = files.Open(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete))
                {
                    files.SetLength(h, cut);
                    files.FlushToDisk(h);
                }
                segment.UpdateLength(cut);
                if (!(unendedBatch < 0 && zeroTail))
                {
                    report.TornTail = (path, cut, bytesCut);
                    note($"Torn tail in '{path}': cut {bytesCut} bytes at offset {cut} (partial record or unfinished batch).");
                }
            }
            if (segment.Length == FormatConstants.FileHeaderSize)
            {
                segment.Dispose();
                files.Delete(path); // holds no record; the next active segment replaces it
                return null;
            }
            return segment;
        }
        catch
        {
            segment.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The index in <paramref name="ids"/> from which segments are recovered as the active one
    /// (a torn or preallocated tail is cut, not reported as damage): the last segment, and the
    /// one before it when the last holds no record. A roll creates the next segment before it
    /// seals (flushes, trims, fsyncs) the current one, so a crash in between leaves the current
    /// segment with its zero-filled preallocated tail, followed by a segment that holds nothing;
    /// once sealed, a segment is durable at its trimmed length before anything is written to the
    /// next. Merge outputs (sub-segment above 0) are never active.
    /// </summary>
    internal static int FirstActive(FileLayer files, string directory, List<SegmentId> ids)
    {
        if (ids.Count < 2 || ids[^1].Sub != 0 || ids[^2].Sub != 0)
        {
            return ids.Count - 1;
        }
        // Nothing where its first record would start: no record (no record's first bytes are
        // zero). Only those bytes are read; the last segment's recovery reads the rest once.
        var last = ids[^1];
        using var segment = Segment.OpenReader(files, last, Path.Combine(directory, last.DataFileName));
        segment.UpdateLength(files.GetLength(segment.Handle));
        Span<byte> first = stackalloc byte[32];
        var read = segment.Length <= FormatConstants.FileHeaderSize ? 0 : segment.ReadAt(first, FormatConstants.FileHeaderSize);
        var holdsNoRecord = !first[..read].ContainsAnyExcept((byte)0);
        return holdsNoRecord ? ids.Count - 2 : ids.Count - 1;
    }

    /// <summary>True when every byte from <paramref name="from"/> on is zero (preallocated, never written).</summary>
    internal static bool IsZeroFill(Segment segment, long from)
    {
        var buffer = new byte[64 * 1024];
        for (var pos = from; pos < segment.Length;)
        {
            var n = segment.ReadAt(buffer.AsSpan(0, (int)Math.Min(buffer.Length, segment.Length - pos)), pos);
            if (n == 0 || buffer.AsSpan(0, n).ContainsAnyExcept((byte)0))
            {
                return n == 0;
            }
            pos += n;
        }
        return true;
    }
}
