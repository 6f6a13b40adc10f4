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
        report.PresizedKeys = HintedKeyCount(files, directory, ids);
        var index = new PartitionIndex(new KeyDirectory((int)Math.Clamp(report.PresizedKeys, 1024, 1 << 30)));
        try
        {
            for (var i = 0; i < ids.Count; i++)
            {
                var id = ids[i];
                var path = Path.Combine(directory, id.DataFileName);
                var isActive = i == ids.Count - 1 && id.Sub == 0; // merge outputs are fsynced before they get their name: never torn
                if (isActive && IsTornCreation(files, path))
                {
                    files.Delete(path);
                    Note($"Deleted '{path}': its creation was torn (shorter than a header).");
                    continue;
                }
                if (isActive)
                {
                    if (CutTornTail(files, path, id, report, Note) == FormatConstants.FileHeaderSize)
                    {
                        files.Delete(path); // holds no record; the next active segment replaces it
                        continue;
                    }
                }
                var segment = Segment.OpenSealed(files, id, path);
                index.AddSealed(segment);
                var hintPath = Path.Combine(directory, id.HintFileName);
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
        var ok = HintFile.TryLoad(files, hintPath, segment.Id, segment.Length, (in HintEntry e) =>
        {
            var loc = new KeyLocation(segment.Id, e.Offset, e.Size, e.Expiry);
            index.Apply(e.Key, loc, (e.Flags & RecordFlags.Tombstone) != 0, nowMs);
            applied++;
        }, out whyNot);
        report.RecordsApplied += applied;
        return ok;
    }

    /// <summary>True when the file is shorter than a header or all zero: its creation was torn.</summary>
    private static bool IsTornCreation(FileLayer files, string path)
    {
        using var s = Segment.OpenReader(files, default, path);
        s.UpdateLength(files.GetLength(s.Handle));
        return s.Length < FormatConstants.FileHeaderSize || IsZeroFill(s, 0);
    }

    private readonly record struct Pending(byte[] Key, KeyLocation Location, bool Tombstone);

    /// <summary>Scans a sealed segment; any damage is a <see cref="CorruptSegmentException"/>.</summary>
    private static void Scan(Segment segment, PartitionIndex index, long nowMs, RecoveryReport report)
    {
        var scanner = new SegmentScanner(segment, segment.Length);
        var pending = new List<Pending>();
        long batchStart = -1;
        while (true)
        {
            var status = scanner.Next();
            if (status == ScanStatus.End)
            {
                if (pending.Count > 0)
                {
                    throw new CorruptSegmentException(segment.Path, batchStart, "batch without its end record");
                }
                return;
            }
            if (status == ScanStatus.Invalid)
            {
                throw new CorruptSegmentException(segment.Path, scanner.Position, scanner.InvalidReason);
            }
            var h = scanner.Header;
            var rec = scanner.Record;
            var loc = new KeyLocation(segment.Id, (uint)scanner.RecordOffset, (uint)h.Size, h.Expiry);
            if (!h.InBatch)
            {
                if (pending.Count > 0)
                {
                    throw new CorruptSegmentException(segment.Path, batchStart, "batch without its end record");
                }
                index.Apply(RecordCodec.KeyOf(rec, h), loc, h.IsTombstone, nowMs);
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
                    index.Apply(p.Key, p.Location, p.Tombstone, nowMs);
                }
                report.RecordsApplied += pending.Count;
                pending.Clear();
            }
        }
    }

    /// <summary>
    /// Finds where the valid data of the active segment ends. Damage followed by a valid
    /// record is corruption; otherwise the rest (and an unended batch) is a torn tail and is cut.
    /// Returns the length the file is left with.
    /// </summary>
    private static long CutTornTail(FileLayer files, string path, SegmentId id, RecoveryReport report, Action<string> note)
    {
        using var segment = Segment.OpenSealed(files, id, path);
        var scanner = new SegmentScanner(segment, segment.Length);
        long batchStart = -1;
        while (true)
        {
            var status = scanner.Next();
            if (status == ScanStatus.Record)
            {
                var h = scanner.Header;
                if (h.InBatch && batchStart < 0)
                {
                    batchStart = scanner.RecordOffset;
                }
                else if (!h.InBatch && batchStart >= 0)
                {
                    throw new CorruptSegmentException(path, batchStart, "batch without its end record");
                }
                if (h.IsBatchEnd)
                {
                    batchStart = -1;
                }
                continue;
            }
            var end = scanner.Position;
            if (status == ScanStatus.Invalid)
            {
                // Searched from the next byte on purpose: a damaged length field must not make
                // open cut valid records as a "tail". A valid-looking record inside a torn value
                // makes open refuse instead (safe); `repair` then skips that value whole.
                var next = scanner.FindNextValidRecord(end);
                if (next >= 0)
                {
                    throw new CorruptSegmentException(path, end, $"{scanner.InvalidReason}, followed by a valid record at {next}");
                }
            }
            var cut = batchStart >= 0 ? batchStart : end;
            if (cut < segment.Length)
            {
                var bytesCut = segment.Length - cut;
                using (var h = files.Open(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete))
                {
                    var allZero = IsZeroFill(segment, cut);
                    files.SetLength(h, cut);
                    files.FlushToDisk(h);
                    if (!allZero)
                    {
                        report.TornTail = (path, cut, bytesCut);
                        note($"Torn tail in '{path}': cut {bytesCut} bytes at offset {cut} (partial record or unfinished batch).");
                    }
                }
                return cut;
            }
            return segment.Length;
        }
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
