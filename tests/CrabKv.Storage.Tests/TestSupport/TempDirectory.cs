namespace CrabKv.Storage.Tests;

/// <summary>
/// A fresh directory under <see cref="System.IO.Path.GetTempPath"/>, deleted (with
/// everything in it) on <see cref="Dispose"/>.
/// </summary>
public sealed class TempDirectory : IDisposable
{
    /// <summary>Creates an empty directory named <c>crabkv-{prefix}-{guid}</c> in the temp folder.</summary>
    public TempDirectory(string prefix = "test")
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"crabkv-{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    /// <summary>Full path of the directory.</summary>
    public string Path { get; }

    /// <summary>A path inside the directory.</summary>
    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    /// <summary>Creates (if needed) and returns a subdirectory.</summary>
    public string Subdirectory(string name)
    {
        var p = Combine(name);
        Directory.CreateDirectory(p);
        return p;
    }

    /// <summary>
    /// Copies every file of <paramref name="source"/> (not recursive) into
    /// <paramref name="destination"/>, creating it; existing files are overwritten.
    /// The <c>LOCK</c> file is skipped: it is only a lock, and the source may still hold it.
    /// </summary>
    public static void CopyFiles(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.EnumerateFiles(source))
        {
            var name = System.IO.Path.GetFileName(file);
            if (name == DirectoryLock.FileName)
            {
                continue;
            }
            File.Copy(file, System.IO.Path.Combine(destination, name), overwrite: true);
        }
    }

    /// <summary>A new temporary directory holding a copy of <paramref name="source"/>'s files.</summary>
    public static TempDirectory CopyOf(string source, string prefix = "copy")
    {
        var t = new TempDirectory(prefix);
        CopyFiles(source, t.Path);
        return t;
    }

    /// <summary>Deletes the directory and its contents (best effort).</summary>
    public void Dispose()
    {
        try
        {
            if (Directory.Exists(Path))
            {
                Directory.Delete(Path, recursive: true);
            }
        }
        catch (IOException)
        {
            // A handle still open (a test failed mid-way); the OS temp cleaner gets it.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Path;
}
