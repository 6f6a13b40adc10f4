using System.Globalization;

namespace CrabKv.Storage;

/// <summary>
/// The <c>LOCK</c> file of a data directory (FORMAT.md section 6): held with an exclusive
/// OS lock while a store is open, so a second process or store instance cannot open it.
/// </summary>
public sealed class DirectoryLock : IDisposable
{
    /// <summary>Name of the lock file.</summary>
    public const string FileName = "LOCK";

    private readonly FileStream _stream;

    private DirectoryLock(FileStream stream) => _stream = stream;

    /// <summary>Takes the lock of <paramref name="directory"/>, creating the directory if needed.</summary>
    /// <exception cref="StoreLockedException">Another process or instance holds it.</exception>
    public static DirectoryLock Acquire(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, FileName);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new StoreLockedException(directory, e, ReadHolder(path));
        }
        try
        {
            stream.SetLength(0);
            var text = string.Create(CultureInfo.InvariantCulture, $"pid {Environment.ProcessId} on {Environment.MachineName} since {DateTimeOffset.UtcNow:O}\n");
            stream.Write(System.Text.Encoding.UTF8.GetBytes(text));
            stream.Flush();
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        return new DirectoryLock(stream);
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
            var bytes = Segments.NativeFile.TryReadIgnoringLock(lockFile, 512);
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
    public void Dispose() => _stream.Dispose();
}
