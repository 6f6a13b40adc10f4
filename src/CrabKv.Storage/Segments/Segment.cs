using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage.Segments;

/// <summary>
/// An open data segment, read positionally through its <see cref="FileLayer"/>: no shared
/// stream position, no re-open per read. Sealed segments are immutable; the active one is also
/// reachable through its <see cref="SegmentWriter"/>, which serves bytes still in its buffer.
/// Not thread safe with respect to <see cref="Dispose"/>.
/// </summary>
public sealed class Segment : IDisposable, Partition.IRecordSource
{
    internal Segment(FileLayer files, SegmentId id, string path, SafeFileHandle handle, long length)
    {
        Files = files;
        Id = id;
        Path = path;
        Handle = handle;
        Length = length;
    }

    /// <summary>The segment's id.</summary>
    public SegmentId Id { get; }

    /// <summary>Full path of the data file.</summary>
    public string Path { get; internal set; }

    /// <summary>Bytes of data (header included) that belong to the segment.</summary>
    public long Length { get; internal set; }

    internal SafeFileHandle Handle { get; }

    /// <summary>The file layer the segment was opened through (its reads go through it too).</summary>
    internal FileLayer Files { get; }

    /// <summary>Opens a sealed segment for reading and validates its header.</summary>
    public static Segment OpenSealed(FileLayer files, SegmentId id, string path)
    {
        var handle = files.Open(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        try
        {
            FileHeader.Validate(files, handle, FormatConstants.SegmentMagic, id, path);
            return new Segment(files, id, path, handle, files.GetLength(handle));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens a second, read-only handle on a segment being written (the active one), for
    /// readers that must not touch the writer. <see cref="Length"/> follows <see cref="UpdateLength"/>.
    /// </summary>
    public static Segment OpenReader(FileLayer files, SegmentId id, string path)
    {
        var handle = files.Open(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new Segment(files, id, path, handle, FormatConstants.FileHeaderSize);
    }

    /// <summary>Records the final length of a reader's segment once it is sealed.</summary>
    public void UpdateLength(long length) => Length = length;

    /// <summary>Reads up to <paramref name="destination"/>.Length bytes at <paramref name="offset"/>.</summary>
    public int ReadAt(Span<byte> destination, long offset)
    {
        var total = 0;
        while (total < destination.Length)
        {
            var n = Files.Read(Handle, destination[total..], offset + total);
            if (n == 0)
            {
                break;
            }
            total += n;
        }
        return total;
    }

    /// <inheritdoc/>
    public void Dispose() => Handle.Dispose();
}
