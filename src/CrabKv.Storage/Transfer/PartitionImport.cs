using System.Globalization;
using System.Text;
using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Segments;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage.Transfer;

/// <summary>
/// The receiving side of a partition transfer (FORMAT.md section 10). Files are written into
/// a staging directory beside the target (<c>p-NNN.incoming</c>), held under its own
/// <c>LOCK</c>; chunks may arrive in any order and more than once. <see cref="Complete"/>
/// fsyncs every file, verifies each against the manifest's checksum and every record of every
/// segment, writes a durable <c>COMPLETE</c> marker and renames the staging directory to the
/// target: a partition directory is never half-written, and a staged copy is either
/// installable (it has <c>COMPLETE</c>) or discarded (<see cref="RecoverStaging"/>).
/// Single owner, no threads.
/// </summary>
public sealed class PartitionImport : IDisposable
{
    /// <summary>Suffix of a staging directory: <c>p-NNN.incoming</c>.</summary>
    public const string StagingSuffix = ".incoming";

    /// <summary>Suffix of a partition directory being deleted after a handoff: <c>p-NNN.deleting</c>.</summary>
    public const string DeletingSuffix = ".deleting";

    /// <summary>The marker of a staged copy that verified and may be installed.</summary>
    public const string CompleteFileName = "COMPLETE";

    private readonly FileLayer _files;
    private readonly DirectoryLock _lock;
    private readonly Dictionary<string, SafeFileHandle> _handles = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ByteRanges> _present = new(StringComparer.Ordinal);
    private bool _installed;

    private PartitionImport(FileLayer files, string target, string staging, PartitionManifest manifest, DirectoryLock stagingLock)
    {
        _files = files;
        Target = target;
        Staging = staging;
        Manifest = manifest;
        _lock = stagingLock;
    }

    /// <summary>The partition directory the copy is installed as.</summary>
    public string Target { get; }

    /// <summary>The staging directory (<see cref="Target"/> + <see cref="StagingSuffix"/>).</summary>
    public string Staging { get; }

    /// <summary>What is being received.</summary>
    public PartitionManifest Manifest { get; }

    /// <summary>Bytes received so far (each byte counted once).</summary>
    public long BytesPresent => _present.Values.Sum(r => r.Count);

    /// <summary>True once every byte of every file is present.</summary>
    public bool AllPresent => Manifest.Files.All(f => _present[f.Name].Count == f.Length);

    /// <summary>
    /// Starts an import: takes the staging directory's lock, discards whatever an earlier,
    /// unfinished import left there, and creates every file of the manifest at its length.
    /// </summary>
    /// <param name="target">The partition directory to install, e.g. <c>data/p-007</c>; must be absent or empty when <see cref="Complete"/> installs.</param>
    /// <param name="manifest">The holder's manifest.</param>
    /// <param name="files">The file layer (default: the real one).</param>
    /// <exception cref="StoreLockedException">Another import is staging the same partition.</exception>
    /// <exception cref="TransferRefusedException">The manifest is of another format version, or names a file that is not a segment or hint.</exception>
    public static PartitionImport Begin(string target, PartitionManifest manifest, FileLayer? files = null)
    {
        files ??= FileLayer.Default;
        target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(target));
        if (manifest.FormatVersion != FormatConstants.Version)
        {
            throw new TransferRefusedException($"The holder writes format version {manifest.FormatVersion}; this node reads version {FormatConstants.Version}.");
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in manifest.Files)
        {
            if (!SegmentId.TryParseFileName(f.Name, out _, out _) || f.Length < FormatConstants.FileHeaderSize || !seen.Add(f.Name))
            {
                throw new TransferRefusedException($"The manifest names '{f.Name}' ({f.Length} bytes): not a segment or hint file of at least a header, or named twice.");
            }
        }
        var staging = target + StagingSuffix;
        var stagingLock = DirectoryLock.Acquire(files, staging); // creates it durably
        var import = new PartitionImport(files, target, staging, manifest, stagingLock);
        try
        {
            foreach (var leftover in files.EnumerateFiles(staging, "*").Where(p => Path.GetFileName(p) != DirectoryLock.FileName).ToList())
            {
                files.Delete(leftover);
            }
            foreach (var f in manifest.Files)
            {
                var handle = files.Open(Path.Combine(staging, f.Name), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
                import._handles.Add(f.Name, handle);
                import._present.Add(f.Name, new ByteRanges());
                files.SetLength(handle, f.Length);
            }
            return import;
        }
        catch
        {
            import.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes a chunk of <paramref name="file"/> at <paramref name="offset"/>. A chunk that
    /// repeats bytes already present is accepted only if they are the same bytes.
    /// </summary>
    /// <returns>Bytes that were not present before.</returns>
    /// <exception cref="TransferRefusedException">Not a file of the manifest, outside it, or differing from bytes already written.</exception>
    public long Write(string file, long offset, ReadOnlySpan<byte> data)
    {
        ThrowIfInstalled();
        var entry = Manifest.Find(file) ?? throw new TransferRefusedException($"'{file}' is not a file of the manifest.");
        if (offset < 0 || offset > entry.Length - data.Length)
        {
            throw new TransferRefusedException($"Chunk [{offset}, {offset + data.Length}) of '{file}' is outside the file ({entry.Length} bytes).");
        }
        var handle = _handles[file];
        var present = _present[file];
        var end = offset + data.Length;
        long already = 0;
        foreach (var (s, e) in present.Overlaps(offset, end).ToList())
        {
            var existing = new byte[e - s];
            var n = ReadFully(handle, existing, s);
            if (n != existing.Length || !existing.AsSpan().SequenceEqual(data.Slice((int)(s - offset), existing.Length)))
            {
                throw new TransferRefusedException($"Chunk [{offset}, {end}) of '{file}' differs from the bytes [{s}, {e}) already received.");
            }
            already += e - s;
        }
        if (already == data.Length)
        {
            return 0; // a duplicate
        }
        _files.Write(handle, data, offset);
        present.Add(offset, end);
        return data.Length - already;
    }

    /// <summary>The byte ranges of <paramref name="file"/> not received yet (what to ask for again).</summary>
    public IEnumerable<(long Start, long End)> Missing(string file)
    {
        var entry = Manifest.Find(file) ?? throw new TransferRefusedException($"'{file}' is not a file of the manifest.");
        return _present[file].Missing(entry.Length);
    }

    /// <summary>
    /// Verifies and installs: fsyncs every file; checks each against the manifest's length and
    /// checksum and every record of every segment; writes <c>COMPLETE</c>, fsyncs it and the
    /// staging directory; then renames the staging directory to <see cref="Target"/> (an
    /// empty target, or one holding only its <c>LOCK</c>, is removed first) and fsyncs the
    /// parent. On a refusal nothing is installed and the staging directory stays without
    /// <c>COMPLETE</c> (call <see cref="Abort"/> or let <see cref="RecoverStaging"/> discard it).
    /// </summary>
    /// <exception cref="TransferRefusedException">Bytes are missing, or the target holds data.</exception>
    /// <exception cref="TransferVerificationException">A file does not verify (names file and offset).</exception>
    /// <exception cref="StoreLockedException">A store holds the target.</exception>
    public void Complete()
    {
        ThrowIfInstalled();
        if (!IsEmptyOrAbsent(_files, Target))
        {
            throw new TransferRefusedException($"Cannot install into '{Target}': it holds data (a partition directory is never overwritten).");
        }
        foreach (var f in Manifest.Files)
        {
            var missing = _present[f.Name].Missing(f.Length).FirstOrDefault();
            if (missing != default)
            {
                throw new TransferRefusedException($"'{f.Name}' is incomplete: bytes [{missing.Start}, {missing.End}) of {f.Length} were never received.");
            }
        }
        var buffer = new byte[1 << 20];
        foreach (var f in Manifest.Files)
        {
            var handle = _handles[f.Name];
            _files.FlushToDisk(handle);
            var length = _files.GetLength(handle);
            if (length != f.Length)
            {
                throw new TransferVerificationException(f.Name, Math.Min(length, f.Length), $"the file has {length} bytes, the manifest {f.Length}");
            }
            var checksum = PartitionExport.Checksum(_files, handle, length, buffer, f.Name);
            if (checksum != f.Checksum)
            {
                throw new TransferVerificationException(f.Name, FirstBadRecordOffset(f) ?? 0, $"its checksum is {checksum:X16}, the manifest's {f.Checksum:X16}");
            }
        }
        foreach (var f in Manifest.Files)
        {
            if (FirstBadRecord(f) is { } bad)
            {
                throw new TransferVerificationException(f.Name, bad.Offset, bad.Reason);
            }
        }
        WriteCompleteMarker();
        CloseFiles();
        Install(_files, Staging, Target);
        _installed = true;
        _lock.Dispose();
    }

    /// <summary>Discards the staging directory (a failed or cancelled transfer). Idempotent.</summary>
    public void Abort()
    {
        if (_installed)
        {
            return;
        }
        CloseFiles();
        if (_files.DirectoryExists(Staging))
        {
            PartitionExport.DeleteDirectoryContents(_files, Staging); // the LOCK goes too; our handle dies with Dispose
        }
        _installed = true; // nothing left to write or install
        _lock.Dispose();
    }

    /// <summary>Closes the files and releases the staging lock; the staging directory stays as it is (for <see cref="RecoverStaging"/>).</summary>
    public void Dispose()
    {
        CloseFiles();
        _lock.Dispose();
    }

    /// <summary>
    /// Settles what a crash left in a data directory; the node calls it (through
    /// <see cref="DataDirectory.Open"/>) before it opens any partition. For each
    /// <c>p-NNN.incoming</c>: with <c>COMPLETE</c>, it is installed as <c>p-NNN</c> (when that is
    /// absent or empty; otherwise it is left alone and reported); without, it is deleted (the
    /// copy elsewhere stays authoritative). Each <c>p-NNN.deleting</c> is deleted. A staging
    /// directory whose lock is held (an import running in this process) is skipped.
    /// </summary>
    /// <returns>One line per directory settled, for the log.</returns>
    public static IReadOnlyList<string> RecoverStaging(string dataDir, FileLayer? files = null)
    {
        files ??= FileLayer.Default;
        var notes = new List<string>();
        if (!files.DirectoryExists(dataDir))
        {
            return notes;
        }
        foreach (var dir in files.EnumerateDirectories(dataDir, "*" + DeletingSuffix).ToList())
        {
            PartitionExport.DeleteDirectoryContents(files, dir);
            notes.Add($"Finished deleting '{dir}', a partition handed to another node.");
        }
        foreach (var dir in files.EnumerateDirectories(dataDir, "*" + StagingSuffix).ToList())
        {
            DirectoryLock held;
            try
            {
                held = DirectoryLock.Acquire(files, dir);
            }
            catch (StoreLockedException)
            {
                notes.Add($"Left '{dir}' alone: an import is staging it.");
                continue;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) // a staged copy is disposable: never worth a failed start
            {
                notes.Add($"Left '{dir}' alone: its lock could not be taken ({e.Message}).");
                continue;
            }
            var target = dir[..^StagingSuffix.Length];
            using (held)
            {
                if (!files.FileExists(Path.Combine(dir, CompleteFileName)))
                {
                    PartitionExport.DeleteDirectoryContents(files, dir);
                    notes.Add($"Discarded '{dir}': a partition transfer stopped before it completed (the holder's copy stays authoritative).");
                    continue;
                }
                if (!IsEmptyOrAbsent(files, target))
                {
                    notes.Add($"Left '{dir}' alone: it is complete, but '{target}' holds data; the holder registry must decide which copy is authoritative.");
                    continue;
                }
            }
            Install(files, dir, target);
            notes.Add($"Installed '{dir}' as '{target}': a partition transfer had completed its verification before a crash.");
        }
        return notes;
    }

    // ------------------------------------------------------------------ verification

    private long? FirstBadRecordOffset(TransferFile f) => FirstBadRecord(f)?.Offset;

    /// <summary>The first record of a segment that fails its checks (or an unended batch at its end); null for a hint file or a segment that verifies.</summary>
    private (long Offset, string Reason)? FirstBadRecord(TransferFile f)
    {
        if (!SegmentId.TryParseFileName(f.Name, out var id, out var isHint) || isHint)
        {
            return null;
        }
        Segment segment;
        try
        {
            segment = Segment.OpenSealed(_files, id, Path.Combine(Staging, f.Name));
        }
        catch (NotASegmentException e)
        {
            return (0, e.Message);
        }
        using (segment)
        {
            var scanner = new SegmentScanner(segment, segment.Length);
            long batchStart = -1;
            while (true)
            {
                var status = scanner.Next();
                if (status == ScanStatus.End)
                {
                    return batchStart >= 0 ? (batchStart, "a batch without its end") : null;
                }
                if (status == ScanStatus.Invalid)
                {
                    return (scanner.Position, scanner.InvalidReason);
                }
                var h = scanner.Header;
                if (!h.InBatch)
                {
                    if (batchStart >= 0)
                    {
                        return (batchStart, "a batch without its end");
                    }
                }
                else if (h.IsBatchEnd)
                {
                    batchStart = -1;
                }
                else if (batchStart < 0)
                {
                    batchStart = scanner.RecordOffset;
                }
            }
        }
    }

    // ------------------------------------------------------------------ file operations

    private void WriteCompleteMarker()
    {
        var text = string.Create(CultureInfo.InvariantCulture,
            $"complete: {Manifest.Files.Count} files, {Manifest.TotalBytes} bytes, verified {DateTimeOffset.UtcNow:O}\n");
        using (var handle = _files.Open(Path.Combine(Staging, CompleteFileName), FileMode.Create, FileAccess.ReadWrite, FileShare.None))
        {
            _files.Write(handle, Encoding.UTF8.GetBytes(text), 0);
            _files.FlushToDisk(handle);
        }
        _files.SyncDirectory(Staging); // every file's entry, and the marker's, durable before the rename
    }

    /// <summary>
    /// Renames a complete staging directory to its target. An empty target (or one holding
    /// only its LOCK, as a node creates for every partition) is deleted first under its lock:
    /// a crash between the two leaves no target and a complete staging directory, which
    /// <see cref="RecoverStaging"/> installs.
    /// </summary>
    private static void Install(FileLayer files, string staging, string target)
    {
        var parent = Path.GetDirectoryName(target)!;
        if (files.DirectoryExists(target))
        {
            using (DirectoryLock.Acquire(files, target))
            {
                if (!IsEmptyOrAbsent(files, target))
                {
                    throw new TransferRefusedException($"Cannot install '{staging}': '{target}' holds data (a partition directory is never overwritten).");
                }
                files.Delete(Path.Combine(target, DirectoryLock.FileName));
                files.DeleteDirectory(target);
            }
        }
        files.MoveDirectory(staging, target);
        files.SyncDirectory(parent);
        // The marker has done its job; a crash before this delete leaves it in the partition
        // directory, where the store and the export ignore it.
        files.Delete(Path.Combine(target, CompleteFileName));
        files.SyncDirectory(target);
    }

    /// <summary>True when the directory is absent, or holds nothing but a LOCK file.</summary>
    private static bool IsEmptyOrAbsent(FileLayer files, string directory) =>
        !files.DirectoryExists(directory)
        || files.EnumerateFiles(directory, "*").All(p => Path.GetFileName(p) == DirectoryLock.FileName)
           && !files.EnumerateDirectories(directory, "*").Any();

    private int ReadFully(SafeFileHandle handle, Span<byte> destination, long offset)
    {
        var done = 0;
        while (done < destination.Length)
        {
            var n = _files.Read(handle, destination[done..], offset + done);
            if (n == 0)
            {
                break;
            }
            done += n;
        }
        return done;
    }

    private void CloseFiles()
    {
        foreach (var h in _handles.Values)
        {
            h.Dispose();
        }
        _handles.Clear();
    }

    private void ThrowIfInstalled()
    {
        if (_installed || (_handles.Count == 0 && Manifest.Files.Count > 0))
        {
            throw new InvalidOperationException($"The import into '{Target}' is finished or closed.");
        }
    }
}
