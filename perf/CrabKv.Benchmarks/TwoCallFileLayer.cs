using CrabKv.Storage.Files;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Benchmarks;

/// <summary>
/// The real file system without the one-call durable write: <see cref="FileLayer.WriteDurable"/>
/// stays the base class's <c>pwrite</c> + <c>fdatasync</c>, which is what every sync did before
/// (the "two calls" row beside the default in the same run).
/// </summary>
internal sealed class TwoCallFileLayer : FileLayer
{
    public static TwoCallFileLayer Instance { get; } = new();

    private static FileLayer Os => Default;

    public override SafeFileHandle Open(string path, FileMode mode, FileAccess access, FileShare share) => Os.Open(path, mode, access, share);

    public override void Write(SafeFileHandle file, ReadOnlySpan<byte> source, long offset) => Os.Write(file, source, offset);

    public override int Read(SafeFileHandle file, Span<byte> destination, long offset) => Os.Read(file, destination, offset);

    public override long GetLength(SafeFileHandle file) => Os.GetLength(file);

    public override void SetLength(SafeFileHandle file, long length) => Os.SetLength(file, length);

    public override void SyncData(SafeFileHandle file) => Os.SyncData(file);

    public override void FlushToDisk(SafeFileHandle file) => Os.FlushToDisk(file);

    public override bool TryPreallocate(SafeFileHandle file, long length) => Os.TryPreallocate(file, length);

    public override void SyncDirectory(string directory) => Os.SyncDirectory(directory);

    public override void Move(string source, string destination, bool overwrite) => Os.Move(source, destination, overwrite);

    public override void Delete(string path) => Os.Delete(path);

    public override void CreateDirectory(string path) => Os.CreateDirectory(path);

    public override bool FileExists(string path) => Os.FileExists(path);

    public override bool DirectoryExists(string path) => Os.DirectoryExists(path);

    public override IEnumerable<string> EnumerateFiles(string directory, string pattern) => Os.EnumerateFiles(directory, pattern);

    public override IEnumerable<string> EnumerateDirectories(string directory, string pattern) => Os.EnumerateDirectories(directory, pattern);

    public override void MoveDirectory(string source, string destination) => Os.MoveDirectory(source, destination);

    public override void DeleteDirectory(string path) => Os.DeleteDirectory(path);
}
