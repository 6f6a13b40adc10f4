using System.IO.Hashing;
using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Segments;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage.Transfer;

/// <summary>
/// The sending side of a partition transfer (FORMAT.md section 10): a stopped partition
/// directory, held under its <c>LOCK</c> so no store opens it meanwhile, described by a
/// <see cref="PartitionManifest"/> and read in chunks. <see cref="Dispose"/> closes the files
/// and releases the lock. Single owner, no threads.
/// </summary>
/// <remarks>
/// Only a cleanly stopped partition is exported: all sealed segments and hints, nothing else.
/// A <c>*.tmp</c> (an interrupted merge or repair), a newest writer segment whose records do
/// not end exactly at the end of the file (a store that crashed: preallocated zeros or a torn
/// tail), or any unknown file is refused; opening and stopping the store first settles each.
/// </remarks>
public sealed class PartitionExport : IDisposable
{
    /// <summary>Largest chunk <see cref="ReadChunk"/> serves (a remote frame must hold it with room to spare).</summary>
    public const int MaxChunkBytes = 16 << 20;

    private readonly FileLayer _files;
    private readonly DirectoryLock _lock;
    private readonly Dictionary<string, SafeFileHandle> _handles;

    private PartitionExport(FileLayer files, string directory, DirectoryLock directoryLock, PartitionManifest manifest, Dictionary<string, SafeFileHandle> handles)
    {
        _files = files;
        Directory = directory;
        _lock = directoryLock;
        Manifest = manifest;
        _handles = handles;
    }

    /// <summary>The partition directory.</summary>
    public string Directory { get; }

    /// <summary>Its files, lengths and checksums.</summary>
    public PartitionManifest Manifest { get; }

    /// <summary>
    /// Takes the partition's lock and describes its files, reading each once for its checksum.
    /// </summary>
    /// <param name="directory">A partition directory whose store is stopped.</param>
    /// <param name="files">The file layer (default: the real one).</param>
    /// <exception cref="StoreLockedException">A store holds the partition.</exception>
    /// <exception cref="TransferRefusedException">The directory is missing, or not a cleanly stopped partition.</exception>
    public static PartitionExport Open(string directory, FileLayer? files = null)
    {
        files ??= FileLayer.Default;
        directory = Path.GetFullPath(directory);
        if (!files.DirectoryExists(directory))
        {
            throw new TransferRefusedException($"Partition directory '{directory}' does not exist.");
        }
        var directoryLock = DirectoryLock.Acquire(files, directory);
        var handles = new Dictionary<string, SafeFileHandle>(StringComparer.Ordinal);
        try
        {
            var names = CheckStopped(files, directory);
            var entries = new List<TransferFile>(names.Count);
            var buffer = new byte[1 << 20];
            foreach (var name in names)
            {
                var handle = files.Open(Path.Combine(directory, name), FileMode.Open, FileAccess.Read, FileShare.Read);
                handles.Add(name, handle);
                var length = files.GetLength(handle);
                entries.Add(new TransferFile(name, length, Checksum(files, handle, length, buffer, name)));
            }
            return new PartitionExport(files, directory, directoryLock, new PartitionManifest(FormatConstants.Version, entries), handles);
        }
        catch
        {
            foreach (var h in handles.Values)
            {
                h.Dispose();
            }
            directoryLock.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads <paramref name="length"/> bytes of <paramref name="file"/> at <paramref name="offset"/>.
    /// </summary>
    /// <exception cref="TransferRefusedException">Not a file of the manifest, or the range is not inside it, or longer than <see cref="MaxChunkBytes"/>.</exception>
    public byte[] ReadChunk(string file, long offset, int length)
    {
        var entry = Manifest.Find(file) ?? throw new TransferRefusedException($"'{file}' is not a file of the partition '{Directory}'.");
        if (length < 0 || length > MaxChunkBytes || offset < 0 || offset > entry.Length - length)
        {
            throw new TransferRefusedException($"Chunk [{offset}, {offset + length}) of '{file}' is outside the file ({entry.Length} bytes) or longer than {MaxChunkBytes} bytes.");
        }
        var bytes = GC.AllocateUninitializedArray<byte>(length);
        var handle = _handles[file];
        var done = 0;
        while (done < length)
        {
            var n = _files.Read(handle, bytes.AsSpan(done), offset + done);
            if (n == 0)
            {
                throw new IOException($"'{Path.Combine(Directory, file)}' shrank while being exported (at {offset + done}).");
            }
            done += n;
        }
        return bytes;
    }

    /// <summary>Closes the files and releases the partition's lock.</summary>
    public void Dispose()
    {
        foreach (var h in _handles.Values)
        {
            h.Dispose();
        }
        _handles.Clear();
        _lock.Dispose();
    }

    /// <summary>
    /// Deletes a partition directory after its data has a new holder: renames it to
    /// <c>&lt;name&gt;.deleting</c> (fsync of the parent), so a crash can never leave a
    /// partition directory with some of its segments gone; then deletes segments, hints, the
    /// lock file and the directory, and fsyncs the parent. A leftover <c>.deleting</c> is
    /// finished by <see cref="PartitionImport.RecoverStaging"/>. Takes the partition's lock
    /// first: a store that holds it is refused.
    /// </summary>
    /// <param name="directory">The partition directory (its export must be disposed).</param>
    /// <param name="files">The file layer (default: the real one).</param>
    /// <exception cref="StoreLockedException">A store or an export holds the partition.</exception>
    public static void DeleteSource(string directory, FileLayer? files = null)
    {
        files ??= FileLayer.Default;
        directory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        if (!files.DirectoryExists(directory))
        {
            return;
        }
        var parent = Path.GetDirectoryName(directory)!;
        var doomed = directory + PartitionImport.DeletingSuffix;
        using (DirectoryLock.Acquire(files, directory))
        {
            if (files.DirectoryExists(doomed))
            {
                DeleteDirectoryContents(files, doomed);
            }
            Recovery.Repair.KeepMovedAside(files, directory);
            files.MoveDirectory(directory, doomed);
            files.SyncDirectory(parent);
        }
        DeleteDirectoryContents(files, doomed);
    }

    /// <summary>
    /// Deletes segments, then hints, then every other file and subdirectory (e.g. one that repair
    /// moved aside), then the directory, and fsyncs its parent.
    /// </summary>
    internal static void DeleteDirectoryContents(FileLayer files, string directory)
    {
        foreach (var sub in files.EnumerateDirectories(directory, "*").ToList())
        {
            DeleteDirectoryContents(files, sub);
        }
        foreach (var pattern in new[] { "seg-*.data", "seg-*.hint", "*" })
        {
            foreach (var file in files.EnumerateFiles(directory, pattern).ToList())
            {
                files.Delete(file);
            }
        }
        files.DeleteDirectory(directory);
        files.SyncDirectory(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(directory))!);
    }

    /// <summary>The names to export, once the directory is known to be a cleanly stopped partition.</summary>
    /// <summary>
    /// Whether <paramref name="directory"/> could be exported as it is (the checks of <see cref="Open"/>
    /// without the lock and the checksums): no <c>*.tmp</c>, no foreign file, the newest segment
    /// sealed. False after a crash of its store: opening and stopping the store settles it.
    /// </summary>
    public static bool IsCleanlyStopped(string directory, FileLayer? files = null)
    {
        files ??= FileLayer.Default;
        directory = Path.GetFullPath(directory);
        if (!files.DirectoryExists(directory))
        {
            return false;
        }
        try
        {
            CheckStopped(files, directory);
            return true;
        }
        catch (TransferRefusedException)
        {
            return false;
        }
    }

    private static List<string> CheckStopped(FileLayer files, string directory)
    {
        var names = new List<string>();
        var segments = new List<SegmentId>();
        foreach (var path in files.EnumerateFiles(directory, "*"))
        {
            var name = Path.GetFileName(path);
            if (name is DirectoryLock.FileName or PartitionImport.CompleteFileName || Recovery.Repair.IsMovedAside(name))
            {
                continue; // a moved-aside file holds no store data: not exported, kept by DeleteSource
            }
            if (name.EndsWith(".tmp", StringComparison.Ordinal))
            {
                throw new TransferRefusedException($"Partition '{directory}' holds '{name}', the leftover of an interrupted merge or repair: open and stop its store first.");
            }
            if (!SegmentId.TryParseFileName(name, out var id, out var isHint))
            {
                throw new TransferRefusedException($"Partition '{directory}' holds '{name}', which is neither a segment nor a hint file: not exported (it would be lost).");
            }
            if (!isHint)
            {
                segments.Add(id);
            }
            names.Add(name);
        }
        foreach (var name in names.Where(n => n.EndsWith(".hint", StringComparison.Ordinal)))
        {
            if (!names.Contains(Path.ChangeExtension(name, ".data")))
            {
                throw new TransferRefusedException($"Partition '{directory}' holds the hint file '{name}' without its data segment (an interrupted merge): open and stop its store first.");
            }
        }
        segments.Sort();
        if (segments.Count > 0 && segments[^1].Sub == 0)
        {
            CheckSealed(files, directory, segments[^1]);
        }
        names.Sort(StringComparer.Ordinal);
        return names;
    }

    /// <summary>
    /// The newest writer segment is sealed when its records end exactly at the end of the
    /// file and no batch is left open: a store that crashed leaves zeros or a torn tail.
    /// </summary>
    private static void CheckSealed(FileLayer files, string directory, SegmentId id)
    {
        var path = Path.Combine(directory, id.DataFileName);
        using var segment = Segment.OpenSealed(files, id, path);
        var scanner = new SegmentScanner(segment, segment.Length);
        var openBatch = false;
        while (true)
        {
            var status = scanner.Next();
            if (status == ScanStatus.End)
            {
                break;
            }
            if (status == ScanStatus.Invalid)
            {
                throw new TransferRefusedException($"Partition '{directory}' was not stopped cleanly: its active segment '{id.DataFileName}' is unsealed ({scanner.InvalidReason} at offset {scanner.Position} of {segment.Length}). Open and stop its store first (recovery seals it).");
            }
            openBatch = scanner.Header.InBatch && !scanner.Header.IsBatchEnd;
        }
        if (openBatch)
        {
            throw new TransferRefusedException($"Partition '{directory}' was not stopped cleanly: its active segment '{id.DataFileName}' ends inside a batch. Open and stop its store first (recovery seals it).");
        }
    }

    /// <summary>XxHash3 of the whole file, read through the file layer.</summary>
    internal static ulong Checksum(FileLayer files, SafeFileHandle handle, long length, byte[] buffer, string name)
    {
        var hash = new XxHash3();
        long at = 0;
        while (at < length)
        {
            var n = files.Read(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - at)), at);
            if (n == 0)
            {
                throw new IOException($"'{name}' ended at {at} of {length} bytes while being read.");
            }
            hash.Append(buffer.AsSpan(0, n));
            at += n;
        }
        return hash.GetCurrentHashAsUInt64();
    }
}
