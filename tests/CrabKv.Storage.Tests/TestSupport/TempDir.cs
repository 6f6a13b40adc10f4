namespace CrabKv.Storage.Tests.TestSupport;

/// <summary>A fresh directory under the system temp path, deleted (recursively) in <see cref="Dispose"/>.</summary>
public sealed class TempDir : IDisposable
{
    /// <summary>Creates the directory.</summary>
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "crabkv-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    /// <summary>Full path of the directory.</summary>
    public string Path { get; }

    /// <summary>A path inside the directory (not created).</summary>
    public string Combine(string name) => System.IO.Path.Combine(Path, name);

    /// <inheritdoc/>
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
            // A handle leaked by a failing test must not hide the test's own failure.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
