using System.Diagnostics;
using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Index;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage.Compaction;

/// <summary>Answers "does the key directory still point at this record?" during a merge.</summary>
public delegate bool LivenessCheck(ReadOnlySpan<byte> key, in KeyLocation location);

/// <summary>A live key the merge copied: apply with compare-and-set (From → To).</summary>
/// <param name="Key">The key.</param>
/// <param name="From">Where it was.</param>
/// <param name="To">Where it is in the merge's output.</param>
/// <param name="Slot">The key directory entry that held it when the merge was planned (<see cref="LiveRecords"/>), or -1: a hint that spares a lookup.</param>
public readonly record struct Relocation(byte[] Key, KeyLocation From, KeyLocation To, int Slot = -1);

/// <summary>Progress of a running merge.</summary>
public readonly record struct MergeProgress(long BytesDone, long BytesTotal)
{
    /// <summary>Fraction done, 0..1.</summary>
    public double Fraction => BytesTotal == 0 ? 1 : (double)BytesDone / BytesTotal;
}

/// <summary>What a merge asks for.</summary>
/// <param name="Directory">The partition directory.</param>
/// <param name="Inputs">A contiguous run of sealed segments, in id order.</param>
/// <param name="OlderSegmentsExist">True when segments older than the run remain: tombstones are then kept.</param>
/// <param name="NowMs">Clock for expiry.</param>
/// <param name="MaxSegmentBytes">Output segments roll at this size.</param>
/// <param name="IsLive">Optional check against the key directory; without it, every newest-in-run record is kept and compare-and-set sorts it out.</param>
/// <param name="Live">
/// Optional: the records of the inputs the key directory pointed at when the merge was planned
/// (<see cref="LiveRecords.Of"/>). With it, and no older segment left, the merge reads its inputs
/// once and keeps exactly these records (less the expired ones), with no lookup by key.
/// </param>
public sealed record MergeRequest(string Directory, IReadOnlyList<Segment> Inputs, bool OlderSegmentsExist, long NowMs, long MaxSegmentBytes, LivenessCheck? IsLive = null,
    LiveRecords? Live = null);

/// <summary>What a merge produced. Apply the relocations, then <see cref="Merger.DeleteInputs"/>.</summary>
public sealed class MergeResult
{
    internal MergeResult(List<Segment> outputs, RelocationList relocations, List<(byte[] Key, KeyLocation Location)> expired, long bytesBefore, long bytesAfter, long dropped, TimeSpan duration)
    {
        Expired = expired;
        Outputs = outputs;
        Relocations = relocations;
        BytesBefore = bytesBefore;
        BytesAfter = bytesAfter;
        RecordsDropped = dropped;
        Duration = duration;
    }

    /// <summary>New sealed segments (each with a hint file), open for reading.</summary>
    public List<Segment> Outputs { get; }

    /// <summary>Live keys and where they moved (stored compactly; each item read allocates its key).</summary>
    public RelocationList Relocations { get; }

    /// <summary>Newest-in-run puts dropped because they expired: the key directory must forget them if it still points there.</summary>
    public List<(byte[] Key, KeyLocation Location)> Expired { get; }

    /// <summary>Bytes of the inputs.</summary>
    public long BytesBefore { get; }

    /// <summary>Bytes of the outputs.</summary>
    public long BytesAfter { get; }

    /// <summary>Records left behind (overwritten, deleted, expired, unneeded tombstones).</summary>
    public long RecordsDropped { get; }

    /// <summary>Wall time of the merge.</summary>
    public TimeSpan Duration { get; }
}

/// <summary>
/// Merges a run of sealed segments (FORMAT.md section 7). Pure file work: reads the inputs,
/// writes new segments and hint files, touches no key directory. Blocking; the actor layer
/// runs it on its I/O dispatcher.
/// </summary>
public static class Merger
{
    /// <summary>How many relocations ahead <see cref="ApplyRelocations"/> prefetches key directory entries.</summary>
    private const int PrefetchDistance = 16;

    /// <summary>Runs the merge; every file operation goes through <paramref name="files"/>.</summary>
    public static MergeResult Run(FileLayer files, MergeRequest request, IProgress<MergeProgress>? progress = null)
    {
        var sw = Stopwatch.StartNew();
        var inputs = request.Inputs;
        if (inputs.Count == 0)
        {
            return new MergeResult(new(), new RelocationList(inputs, 0), new(), 0, 0, 0, sw.Elapsed);
        }
        for (var i = 1; i < inputs.Count; i++)
        {
            if (inputs[i - 1].Id.CompareTo(inputs[i].Id) >= 0)
            {
                throw new ArgumentException("Merge inputs must be in ascending id order.", nameof(request));
            }
        }
        // Outputs are named S/(last sub + 1), …: the run must end at the newest segment of
        // sequence S, or an output would take the name of a segment outside the run.
        var last = inputs[^1].Id;
        foreach (var path in files.EnumerateFiles(request.Directory, $"seg-{last.Sequence:D8}-*"))
        {
            if (SegmentId.TryParseFileName(Path.GetFileName(path), out var other, out _) && other.Sub > last.Sub)
            {
                throw new ArgumentException($"Merge run must end at the newest segment of sequence {last.Sequence}; {other} exists outside the run.", nameof(request));
            }
        }
        long bytesBefore = 0;
        foreach (var s in inputs)
        {
            bytesBefore += s.Length;
        }
        long done = 0;
        var total = 2 * bytesBefore;

        // With the key directory's live records (and nothing older left for a tombstone to
        // hide), one pass decides by position; otherwise pass 1 finds the newest record of each
        // key within the run.
        var cursor = request.Live is not null && !request.OlderSegmentsExist ? request.Live.Start(inputs) : null;
        var newest = new KeyDirectory();
        if (cursor is not null)
        {
            total = bytesBefore;
        }
        foreach (var segment in cursor is null ? inputs : [])
        {
            var scanner = new SegmentScanner(segment, segment.Length);
            ScanStatus st;
            while ((st = scanner.Next()) == ScanStatus.Record)
            {
                var h = scanner.Header;
                newest.Set(RecordCodec.KeyOf(scanner.Record, h),
                    new KeyLocation(segment.Id, (uint)scanner.RecordOffset, (uint)h.Size, h.Expiry, h.IsTombstone), out _);
            }
            ThrowIfInvalid(st, segment, scanner);
            done += segment.Length;
            progress?.Report(new MergeProgress(done, total));
        }

        // Pass 2: copy what survives.
        var sequence = inputs[^1].Id.Sequence;
        var sub = inputs[^1].Id.Sub;
        var outputs = new List<Segment>();
        var relocations = new RelocationList(inputs, cursor?.Count ?? 0);
        var expired = new List<(byte[] Key, KeyLocation Location)>();
        long dropped = 0, bytesAfter = 0;
        SegmentWriter? writer = null;
        HintFile.Builder? hint = null;

        void Finish()
        {
            if (writer is null)
            {
                return;
            }
            var seg = writer.Seal();
            var finalPath = Path.Combine(request.Directory, seg.Id.DataFileName);
            files.Move(seg.Path, finalPath, overwrite: false); // data first: a hint never exists without its data
            hint!.Complete(files, request.Directory, seg.Length);
            seg.Path = finalPath;
            outputs.Add(seg);
            bytesAfter += seg.Length;
            writer = null;
            hint = null;
        }

        try
        {
            for (var ordinal = 0; ordinal < inputs.Count; ordinal++)
            {
                var segment = inputs[ordinal];
                var scanner = new SegmentScanner(segment, segment.Length);
                ScanStatus st;
                while ((st = scanner.Next()) == ScanStatus.Record)
                {
                    var h = scanner.Header;
                    var rec = scanner.Record;
                    var key = RecordCodec.KeyOf(rec, h);
                    var here = new KeyLocation(segment.Id, (uint)scanner.RecordOffset, (uint)h.Size, h.Expiry, h.IsTombstone);
                    if (cursor is not null)
                    {
                        // The key directory points at every record that survives, and at no tombstone.
                        if (!cursor.IsLive(ordinal, scanner.RecordOffset) || h.IsTombstone)
                        {
                            dropped++;
                            continue;
                        }
                        if (here.IsExpiredAt(request.NowMs))
                        {
                            expired.Add((key.ToArray(), here)); // the key directory must forget it
                            dropped++;
                            continue;
                        }
                    }
                    else if (!newest.TryGet(key, out var latest) || !latest.SameRecord(here)
                        || (h.IsTombstone && !request.OlderSegmentsExist)
                        || (!h.IsTombstone && (here.IsExpiredAt(request.NowMs) || (request.IsLive is not null && !request.IsLive(key, here)))))
                    {
                        var expiredNewest = !h.IsTombstone && latest.SameRecord(here) && here.IsExpiredAt(request.NowMs);
                        if (expiredNewest)
                        {
                            expired.Add((key.ToArray(), here));
                        }
                        if (!(expiredNewest && request.OlderSegmentsExist))
                        {
                            dropped++;
                            continue;
                        }
                        // An expired put still hides older versions outside the run: it becomes a tombstone.
                        h = new RecordHeader(0, RecordFlags.Tombstone, 0, h.KeyLength, 0);
                    }
                    if (writer is null || writer.Length + h.Size > request.MaxSegmentBytes && writer.Length > FormatConstants.FileHeaderSize)
                    {
                        Finish();
                        if (++sub > FormatConstants.MaxSub)
                        {
                            throw new InvalidOperationException("Merge produced more outputs than segment ids allow; raise segment max-bytes.");
                        }
                        var id = SegmentId.From(sequence, sub);
                        writer = SegmentWriter.Create(files, request.Directory, id, 1 << 20, 0, id.DataFileName + ".tmp");
                        relocations.StartOutput(id);
                        hint = new HintFile.Builder(id);
                    }
                    // Batch framing is dropped: the batch committed long ago, and a lone member
                    // would otherwise read as an unended batch.
                    var flags = h.Flags & ~(RecordFlags.InBatch | RecordFlags.BatchEnd);
                    var offset = writer.Append(flags, h.Expiry, key, h.IsTombstone ? default : RecordCodec.StoredValueOf(rec, h));
                    hint!.Add(key, flags, h.Expiry, (uint)offset, (uint)h.Size);
                    if (!h.IsTombstone)
                    {
                        relocations.Add(key, ordinal, here, (uint)offset, cursor?.Slot ?? -1);
                    }
                }
                ThrowIfInvalid(st, segment, scanner);
                done += segment.Length;
                progress?.Report(new MergeProgress(done, total));
            }
            Finish();
            files.SyncDirectory(request.Directory);
        }
        catch
        {
            if (writer is not null)
            {
                var path = writer.Segment.Path;
                writer.Dispose();
                files.Delete(path);
            }
            foreach (var o in outputs)
            {
                o.Dispose();
                files.Delete(o.Path);
                files.Delete(Path.Combine(request.Directory, o.Id.HintFileName));
            }
            throw;
        }
        return new MergeResult(outputs, relocations, expired, bytesBefore, bytesAfter, dropped, sw.Elapsed);
    }

    /// <summary>
    /// Installs a merge result in a key directory: each relocation compare-and-set (a key
    /// moves only if it still points at its old place), the inputs' accounting replaced by the
    /// outputs'. Returns how many keys moved. Delete the inputs afterwards, once unused. In one
    /// go; <see cref="BeginInstall"/> does the same in steps.
    /// </summary>
    public static int ApplyRelocations(KeyDirectory keys, SegmentUsage usage, IEnumerable<SegmentId> inputs, MergeResult result)
    {
        var install = BeginInstall(keys, usage, inputs, result);
        install.Step(int.MaxValue);
        return install.Complete();
    }

    /// <summary>
    /// Starts installing a merge result in steps (<see cref="MergeInstall.Step"/>), so the
    /// directory's owner can serve other work between them: the outputs' accounting is set up
    /// now (no live bytes yet; each relocation that lands moves its record's bytes from live
    /// in its input to live in its output, so usage is exact between steps), the inputs'
    /// stays until <see cref="MergeInstall.Complete"/>. Between steps the directory may change
    /// freely (puts, deletes, expiry): a key moves only if it still points at its old place, and
    /// a record killed after it moved is counted against its output. Both the inputs and the
    /// outputs must stay readable until the install is complete.
    /// </summary>
    public static MergeInstall BeginInstall(KeyDirectory keys, SegmentUsage usage, IEnumerable<SegmentId> inputs, MergeResult result) =>
        new(keys, usage, inputs.ToList(), result);

    /// <summary>A merge result being installed in a key directory (<see cref="BeginInstall"/>); not thread safe, like the directory.</summary>
    public sealed class MergeInstall
    {
        private readonly KeyDirectory _keys;
        private readonly SegmentUsage _usage;
        private readonly List<SegmentId> _inputs;
        private readonly MergeResult _result;
        private int _next;
        private bool _completed;

        internal MergeInstall(KeyDirectory keys, SegmentUsage usage, List<SegmentId> inputs, MergeResult result)
        {
            (_keys, _usage, _inputs, _result) = (keys, usage, inputs, result);
            foreach (var o in result.Outputs)
            {
                usage.Set(o.Id, o.Length - FormatConstants.FileHeaderSize, 0);
            }
        }

        /// <summary>Keys moved so far.</summary>
        public int Moved { get; private set; }

        /// <summary>Relocations looked at so far, out of <see cref="Total"/>.</summary>
        public int Applied => _next;

        /// <summary>Relocations of the merge.</summary>
        public int Total => _result.Relocations.Count;

        /// <summary>Applies up to <paramref name="maxRelocations"/> more relocations; true when none is left.</summary>
        public bool Step(int maxRelocations)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(maxRelocations, 1);
            ObjectDisposedException.ThrowIf(_completed, this);
            var relocations = _result.Relocations;
            var count = relocations.Count;
            var end = (int)Math.Min(count, (long)_next + maxRelocations);
            for (var i = _next; i < end; i++)
            {
                if (i + PrefetchDistance < count)
                {
                    _keys.PrefetchSlot(relocations.Slot(i + PrefetchDistance)); // the entries are random: overlap their misses
                }
                var to = relocations.To(i);
                var from = relocations.From(i);
                if (_keys.CompareAndSetAt(relocations.Slot(i), relocations.Key(i), from, to))
                {
                    _usage.Kill(from.Segment, from.Size); // between steps, each segment's live bytes stay exact
                    _usage.Revive(to.Segment, to.Size);
                    Moved++;
                }
            }
            _next = end;
            return _next == count;
        }

        /// <summary>
        /// Finishes the install once every relocation is applied: keys whose expired record the
        /// merge dropped are forgotten, the inputs' accounting is removed. Returns the keys moved.
        /// </summary>
        /// <exception cref="InvalidOperationException">Relocations are left (<see cref="Step"/> has not returned true).</exception>
        public int Complete()
        {
            ObjectDisposedException.ThrowIf(_completed, this);
            if (_next < _result.Relocations.Count)
            {
                throw new InvalidOperationException($"{_result.Relocations.Count - _next} relocations are not applied yet.");
            }
            _completed = true;
            foreach (var (key, location) in _result.Expired)
            {
                // Its record is gone with the inputs: the key must not point there (a clock that
                // steps back would otherwise make it readable again, from a deleted file).
                if (_keys.TryGet(key, out var current) && current.SameRecord(location))
                {
                    _keys.Remove(key, out _);
                }
            }
            foreach (var id in _inputs)
            {
                _usage.Remove(id);
            }
            return Moved;
        }
    }

    /// <summary>
    /// Deletes merged inputs, oldest first (FORMAT.md section 7), with their hint files.
    /// Call once no reader can still use them; disposes them. On a failure it stops and
    /// returns the inputs left on disk (the failing one and every newer one) with the error.
    /// </summary>
    public static (List<Segment> Left, Exception? Error) DeleteInputs(FileLayer files, string directory, IEnumerable<Segment> inputs)
    {
        var ordered = inputs.OrderBy(s => s.Id).ToList();
        for (var i = 0; i < ordered.Count; i++)
        {
            var s = ordered[i];
            s.Dispose();
            try
            {
                files.Delete(s.Path);
                files.Delete(Path.Combine(directory, s.Id.HintFileName));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Stop here: deleting a newer input while an older one stays could drop the
                // tombstone that hides the older one's put. The rest stays, to be retried; until
                // then merges must treat them as older segments (OlderSegmentsExist).
                foreach (var rest in ordered.Skip(i + 1))
                {
                    rest.Dispose();
                }
                return (ordered.GetRange(i, ordered.Count - i), e);
            }
        }
        files.SyncDirectory(directory);
        return ([], null);
    }

    private static void ThrowIfInvalid(ScanStatus status, Segment segment, SegmentScanner scanner)
    {
        if (status == ScanStatus.Invalid)
        {
            throw new CorruptSegmentException(segment.Path, scanner.Position, scanner.InvalidReason);
        }
    }
}
