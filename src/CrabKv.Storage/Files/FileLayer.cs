using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage.Files;

/// <summary>
/// Every file-system call the storage engine makes for data it relies on: segment and hint
/// files, their renames and deletes, directory fsyncs, the lock file. The engine holds one
/// instance (<see cref="StoreOptions.Files"/>) and never calls <see cref="File"/>,
/// <see cref="RandomAccess"/> or <see cref="Directory"/> itself, so a wrapper sees all of it:
/// tests wrap <see cref="Default"/> to make writes or fsyncs fail on demand, to park a thread
/// inside one, or to drop what a power cut would drop (Garnet's <c>SimulatedFlakyDevice</c>
/// is the model).
/// </summary>
/// <remarks>
/// Handles are the OS's own <see cref="SafeFileHandle"/>: the real layer adds one virtual call
/// per operation and allocates nothing per read, write or sync. A wrapper that needs to know
/// which file a handle belongs to records it when <see cref="Open"/> returns it. Calls may come
/// from several threads (one owner per file, but readers beside a writer); implementations
/// must allow that.
/// </remarks>
public abstract class FileLayer
{
    /// <summary>The real file system (fdatasync, fallocate, pwritev2 with RWF_DSYNC and directory fsync on Linux).</summary>
    public static FileLayer Default { get; } = new OsFileLayer();

    /// <summary>Opens or creates a file, as <see cref="File.OpenHandle"/>.</summary>
    public abstract SafeFileHandle Open(string path, FileMode mode, FileAccess access, FileShare share);

    /// <summary>Writes all of <paramref name="source"/> at <paramref name="offset"/>.</summary>
    public abstract void Write(SafeFileHandle file, ReadOnlySpan<byte> source, long offset);

    /// <summary>Reads up to <paramref name="destination"/>.Length bytes at <paramref name="offset"/>; 0 at the end.</summary>
    public abstract int Read(SafeFileHandle file, Span<byte> destination, long offset);

    /// <summary>
    /// Maps the first <paramref name="capacity"/> bytes of a file opened for reading, for gets
    /// that read records in place (<see cref="Segments.Segment"/>); null when this layer does not
    /// map. The base layer returns null, so a wrapper (fault injection, power-loss simulation)
    /// that does not override this sees every read of a get through <see cref="Read"/>; the real
    /// layer maps on Linux. The capacity may pass the file's end (a segment being written).
    /// </summary>
    public virtual MappedRegion? MapForRead(SafeFileHandle file, long capacity) => null;

    /// <summary>The file's size.</summary>
    public abstract long GetLength(SafeFileHandle file);

    /// <summary>Truncates or extends the file.</summary>
    public abstract void SetLength(SafeFileHandle file, long length);

    /// <summary>Makes written data durable, with the size when it changed (<c>fdatasync</c>).</summary>
    public abstract void SyncData(SafeFileHandle file);

    /// <summary>
    /// Writes all of <paramref name="source"/> at <paramref name="offset"/> and makes those bytes
    /// durable before returning, in one system call where the OS has one (Linux:
    /// <c>pwritev2</c> with <c>RWF_DSYNC</c>); by default (and in a wrapper that does not
    /// override it) <see cref="Write"/> then <see cref="SyncData"/>. Only the bytes written are
    /// promised durable — not earlier writes to the file, and not a change of its size: callers
    /// write only inside a region whose size and blocks an earlier <see cref="SyncData"/> made
    /// durable (a preallocated, zero-filled, synced segment). A failure may leave some of the
    /// bytes written and not durable, as a failed <see cref="Write"/> or <see cref="SyncData"/> may.
    /// </summary>
    public virtual void WriteDurable(SafeFileHandle file, ReadOnlySpan<byte> source, long offset)
    {
        Write(file, source, offset);
        SyncData(file);
    }

    /// <summary>Makes data and all metadata durable (<c>fsync</c>).</summary>
    public abstract void FlushToDisk(SafeFileHandle file);

    /// <summary>
    /// Reserves disk for the first <paramref name="length"/> bytes (<c>fallocate</c>, which
    /// also extends the size). Best effort: false when not done.
    /// </summary>
    public abstract bool TryPreallocate(SafeFileHandle file, long length);

    /// <summary>Makes the entries of <paramref name="directory"/> (new, renamed, deleted files) durable.</summary>
    public abstract void SyncDirectory(string directory);

    /// <summary>Renames a file; <paramref name="overwrite"/> replaces an existing target atomically.</summary>
    public abstract void Move(string source, string destination, bool overwrite);

    /// <summary>Deletes a file; a missing file is not an error.</summary>
    public abstract void Delete(string path);

    /// <summary>Creates a directory and any missing parents.</summary>
    public abstract void CreateDirectory(string path);

    /// <summary>True when the file exists.</summary>
    public abstract bool FileExists(string path);

    /// <summary>True when the directory exists.</summary>
    public abstract bool DirectoryExists(string path);

    /// <summary>Full paths of the files of <paramref name="directory"/> matching <paramref name="pattern"/> (not recursive).</summary>
    public abstract IEnumerable<string> EnumerateFiles(string directory, string pattern);

    /// <summary>Full paths of the subdirectories of <paramref name="directory"/> matching <paramref name="pattern"/> (not recursive).</summary>
    public abstract IEnumerable<string> EnumerateDirectories(string directory, string pattern);

    /// <summary>
    /// Renames a directory (one <c>rename(2)</c>: atomic); <paramref name="destination"/> must
    /// not exist. Durable once the parent directories are fsynced.
    /// </summary>
    public abstract void MoveDirectory(string source, string destination);

    /// <summary>Deletes an empty directory; a missing one is not an error.</summary>
    public abstract void DeleteDirectory(string path);
}

/// <summary>The real file system. Internal: reached through <see cref="FileLayer.Default"/>.</summary>
internal sealed class OsFileLayer : FileLayer
{
    public override SafeFileHandle Open(string path, FileMode mode, FileAccess access, FileShare share) =>
        File.OpenHandle(path, mode, access, share);

    public override void Write(SafeFileHandle file, ReadOnlySpan<byte> source, long offset) =>
        RandomAccess.Write(file, source, offset);

    public override int Read(SafeFileHandle file, Span<byte> destination, long offset) =>
        RandomAccess.Read(file, destination, offset);

    public override MappedRegion? MapForRead(SafeFileHandle file, long capacity) => NativeFile.TryMap(file, capacity);

    public override long GetLength(SafeFileHandle file) => RandomAccess.GetLength(file);

    public override void SetLength(SafeFileHandle file, long length) => RandomAccess.SetLength(file, length);

    public override void SyncData(SafeFileHandle file) => NativeFile.SyncData(file);

    public override void FlushToDisk(SafeFileHandle file) => RandomAccess.FlushToDisk(file);

    public override void WriteDurable(SafeFileHandle file, ReadOnlySpan<byte> source, long offset)
    {
        if (!NativeFile.TryWriteDurable(file, source, offset))
        {
            Write(file, source, offset);
            SyncData(file);
        }
    }

    public override bool TryPreallocate(SafeFileHandle file, long length) => NativeFile.TryPreallocate(file, length);

    public override void SyncDirectory(string directory) => NativeFile.SyncDirectory(directory);

    public override void Move(string source, string destination, bool overwrite) => File.Move(source, destination, overwrite);

    public override void Delete(string path) => File.Delete(path);

    public override void CreateDirectory(string path) => Directory.CreateDirectory(path);

    public override bool FileExists(string path) => File.Exists(path);

    public override bool DirectoryExists(string path) => Directory.Exists(path);

    public override IEnumerable<string> EnumerateFiles(string directory, string pattern) => Directory.EnumerateFiles(directory, pattern);

    public override IEnumerable<string> EnumerateDirectories(string directory, string pattern) => Directory.EnumerateDirectories(directory, pattern);

    public override void MoveDirectory(string source, string destination) => Directory.Move(source, destination);

    public override void DeleteDirectory(string path)
    {
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: false);
        }
    }
}
