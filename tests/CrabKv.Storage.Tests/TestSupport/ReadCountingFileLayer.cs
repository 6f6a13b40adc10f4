using System.Collections.Concurrent;
using CrabKv.Storage.Files;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage.Tests.TestSupport;

/// <summary>
/// The real file system, counting the positional reads and the bytes they returned per file
/// (full path, as the engine opened it). Maps nothing (the base layer's
/// <see cref="FileLayer.MapForRead"/>), so every byte the engine reads goes through
/// <see cref="Read"/> and is counted.
/// </summary>
public sealed class ReadCountingFileLayer() : WrappingFileLayer(FileLayer.Default)
{
    private readonly ConcurrentDictionary<SafeFileHandle, string> _paths = new();
    private readonly ConcurrentDictionary<string, (long Calls, long Bytes)> _reads = new(StringComparer.Ordinal);

    public override SafeFileHandle Open(string path, FileMode mode, FileAccess access, FileShare share)
    {
        var handle = base.Open(path, mode, access, share);
        _paths[handle] = Path.GetFullPath(path);
        return handle;
    }

    public override int Read(SafeFileHandle file, Span<byte> destination, long offset)
    {
        var n = base.Read(file, destination, offset);
        if (_paths.TryGetValue(file, out var path))
        {
            _reads.AddOrUpdate(path, (1, n), (_, r) => (r.Calls + 1, r.Bytes + n));
        }
        return n;
    }

    /// <summary>Bytes read from <paramref name="path"/> since the last <see cref="Reset"/>.</summary>
    public long BytesRead(string path) => _reads.TryGetValue(Path.GetFullPath(path), out var r) ? r.Bytes : 0;

    /// <summary>Read calls made on <paramref name="path"/> since the last <see cref="Reset"/>.</summary>
    public long ReadCalls(string path) => _reads.TryGetValue(Path.GetFullPath(path), out var r) ? r.Calls : 0;

    /// <summary>Forgets the counts (the handles stay known).</summary>
    public void Reset() => _reads.Clear();
}
