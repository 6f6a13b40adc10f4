using System.Globalization;
using CrabKv.Storage.Files;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage;

/// <summary>
/// The <c>LOCK</c> file of a data directory (FORMAT.md section 6): held with an exclusive
/// OS lock while a store is open, so a second process or store instance cannot open it.
/// </summary>
public sealed class DirectoryLock : IDisposable
{
    /// <summary>Name of the lock file.</summary>
    public const string FileName = "LOCK";

    private readonly SafeFileHandle _handle;

    private DirectoryLock(SafeFileHandle handle) => _handle = handle;

    /// <summary>
    /// Takes the lock of <paramref name="directory"/>, creating the directory if needed
    /// (through <paramref name="files"/>, like every other file of the store).
    /// </summary>
    /// <exception cref="StoreLockedException">Another process or instance holds it.</exception>
    public static DirectoryLock Acquire(FileLayer files, string directory)
    {
        CreateDurably(files, directory);
        var path = Path.Combine(directory, FileName);
        SafeFileHandle handle;
        try
        {
            // FileShare.None: .NET takes an exclusive advisory flock on Unix with the handle.
            handle = files.Open(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (IsHeld(e))
        {
            throw new StoreLockedException(directory, e, ReadHolder(path));
        }
        catch (IOException e) // a read-only file system, an I/O error: not another holder
        {
            throw new IOException($"Cannot take the lock of directory '{directory}': {e.Message}", e);
        }
        try
        {
            var text = string.Create(CultureInfo.InvariantCulture, $"pid {Environment.ProcessId} on {Environment.MachineName} since {DateTimeOffset.UtcNow:O}\n");
            var bytes = System.Text.Encoding.UTF8.GetBytes(text);
            files.SetLength(handle, 0);
            files.Write(handle, bytes, 0);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        return new DirectoryLock(handle);
    }

    /// <summary>
    /// Takes the lock of <paramref name="directory"/> through its existing <c>LOCK</c> file,
    /// opened read-write when it can and read-only otherwise: nothing is created or written, so
    /// it works on a read-only file system (verify). Null when there is no <c>LOCK</c> file: no store has the directory open, since a
    /// store creates that file before anything else.
    /// </summary>
    /// <exception cref="StoreLockedException">Another process or instance holds it.</exception>
    public static DirectoryLock? AcquireExisting(FileLayer files, string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!files.FileExists(path))
        {
            return null;
        }
        try
        {
            try
            {
                // Read-write first: opening creates and writes nothing, and an exclusive lock through
                // a read-only handle is silently not taken where flock is emulated (NFS).
                return new DirectoryLock(files.Open(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None));
            }
            catch (Exception e) when (e is UnauthorizedAccessException || (e is IOException io && !IsHeld(io) && io is not FileNotFoundException))
            {
                return new DirectoryLock(files.Open(path, FileMode.Open, FileAccess.Read, FileShare.None)); // a read-only copy or file system
            }
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (IOException e) when (IsHeld(e))
        {
            throw new StoreLockedException(directory, e, ReadHolder(path));
        }
    }

    /// <summary>
    /// Whether opening the LOCK file failed because another open file holds its lock, not for any
    /// other reason: .NET reports a held flock as EWOULDBLOCK (11 on Linux, 35 on macOS and the
    /// BSDs), a held file on Windows as a sharing violation.
    /// </summary>
    private static bool IsHeld(IOException e) =>
        OperatingSystem.IsWindows() ? e.HResult == unchecked((int)0x80070020)
        : OperatingSystem.IsLinux() ? e.HResult == 11
        : e.HResult == 35;

    /// <summary>
    /// Creates the directory and any missing parent, each made durable by an fsync of its
    /// parent: otherwise a power cut could take a new store directory, synced data and all.
    /// </summary>
    internal static void CreateDurably(FileLayer files, string directory)
    {
        var missing = new List<string>();
        for (var d = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)); !files.DirectoryExists(d); d = Path.GetDirectoryName(d)!)
        {
            missing.Add(d);
        }
        if (missing.Count == 0)
        {
            return;
        }
        files.CreateDirectory(directory);
        for (var i = missing.Count - 1; i >= 0; i--)
        {
            files.SyncDirectory(Path.GetDirectoryName(missing[i])!);
        }
    }

    /// <summary>
    /// The holder's line of a held LOCK file ("pid … on host since …"), or null. The holder
    /// writes it right after taking the lock, so an empty file is read again a few times
    /// (bounded: about 200 ms) before giving up.
    /// </summary>
    public static string? ReadHolder(string lockFile)
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var bytes = Files.NativeFile.TryReadIgnoringLock(lockFile, 512);
            if (bytes is null)
            {
                return null;
            }
            var text = System.Text.Encoding.UTF8.GetString(bytes).Trim();
            if (text.Length > 0)
            {
                return text;
            }
            Thread.Sleep(10);
        }
        return null;
    }

    /// <summary>Releases the lock; the file stays, since only the OS lock on it counts.</summary>
    public void Dispose() => _handle.Dispose();
}
