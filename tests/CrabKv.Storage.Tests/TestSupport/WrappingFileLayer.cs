using CrabKv.Storage.Files;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage.Tests.TestSupport;

/// <summary>
/// A <see cref="FileLayer"/> that forwards every call to <see cref="Inner"/>; test wrappers
/// override only what they change. Shared by the storage and actor test projects (linked).
/// </summary>
public abstract class WrappingFileLayer(FileLayer inner) : FileLayer
{
    /// <summary>The layer calls are forwarded to.</summary>
    protected FileLayer Inner { get; } = inner;

    public override SafeFileHandle Open(string path, FileMode mode, FileAccess access, FileShare share) => Inner.Open(path, mode, access, share);

    public override void Write(SafeFileHandle file, ReadOnlySpan<byte> source, long offset) => Inner.Write(file, source, offset);

    public override int Read(SafeFileHandle file, Span<byte> destination, long offset) => Inner.Read(file, destination, offset);

    public override long GetLength(SafeFileHandle file) => Inner.GetLength(file);

    public override void SetLength(SafeFileHandle file, long length) => Inner.SetLength(file, length);

    public override void SyncData(SafeFileHandle file) => Inner.SyncData(file);

    public override void WriteDurable(SafeFileHandle file, ReadOnlySpan<byte> source, long offset) => Inner.WriteDurable(file, source, offset);

    public override void FlushToDisk(SafeFileHandle file) => Inner.FlushToDisk(file);

    public override bool TryPreallocate(SafeFileHandle file, long length) => Inner.TryPreallocate(file, length);

    public override void SyncDirectory(string directory) => Inner.SyncDirectory(directory);

    public override void Move(string source, string destination, bool overwrite) => Inner.Move(source, destination, overwrite);

    public override void Delete(string path) => Inner.Delete(path);

    public override void CreateDirectory(string path) => Inner.CreateDirectory(path);

    public override bool FileExists(string path) => Inner.FileExists(path);

    public override bool DirectoryExists(string path) => Inner.DirectoryExists(path);

    public override IEnumerable<string> EnumerateFiles(string directory, string pattern) => Inner.EnumerateFiles(directory, pattern);

    public override IEnumerable<string> EnumerateDirectories(string directory, string pattern) => Inner.EnumerateDirectories(directory, pattern);

    public override void MoveDirectory(string source, string destination) => Inner.MoveDirectory(source, destination);

    public override void DeleteDirectory(string path) => Inner.DeleteDirectory(path);
}

/// <summary>
/// The default file layer without memory mapping: every get is a positional read (the path a
/// store takes where the OS cannot map, and the only one that fills the engine's read cache).
/// </summary>
public sealed class PositionalReadLayer() : WrappingFileLayer(FileLayer.Default);
