using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage.Segments;

/// <summary>
/// An open data segment, read positionally through its <see cref="FileLayer"/>: no shared
/// stream position, no re-open per read. Sealed segments are immutable; the active one is also
/// reachable through its <see cref="SegmentWriter"/>, which serves bytes still in its buffer.
/// Gets read records in place (<see cref="TryPeek"/>) through a memory mapping of the file
/// when the file layer makes one (<see cref="FileLayer.MapForRead"/>): no system call per get.
/// Scans (recovery, merge, transfer) keep reading positionally.
/// Disposing it while another thread reads is safe: the mapping goes away after that read
/// (<see cref="MappedRegion"/>), and reads after it throw <see cref="ObjectDisposedException"/>.
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
        _fileBound = length;
    }

    /// <summary>Smallest mapping of a segment still being written (it grows by doubling).</summary>
    private const long MinActiveMapping = 1L << 20;

    private MappedRegion? _map;   // newest mapping; the ones it replaced hang off Previous until Dispose
    private long _fileBound;      // bytes known to lie inside the file: a mapped read never touches past it
    private bool _lengthFinal;    // sealed: Length is the file's size and never changes
    private bool _noMapping;      // the file layer does not map (or refused): gets read through it
    private bool _disposed;

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
            return new Segment(files, id, path, handle, files.GetLength(handle)) { _lengthFinal = true };
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
    public void UpdateLength(long length) => MarkSealed(length);

    /// <summary>The segment is sealed at <paramref name="length"/> bytes (the file's size from now on).</summary>
    internal void MarkSealed(long length)
    {
        Length = length;
        Volatile.Write(ref _fileBound, length);
        _lengthFinal = true;
    }

    /// <summary>
    /// The <paramref name="length"/> bytes at <paramref name="offset"/> in place, through the
    /// segment's mapping (made on first use, and made again larger when the segment being
    /// written has grown past it). False when they cannot be read that way — the file layer
    /// does not map, or the bytes are not (yet) inside the file — and the caller reads them
    /// with <see cref="ReadAt"/>, which reports the short read.
    /// </summary>
    public bool TryPeek(long offset, int length, out MappedBytes bytes)
    {
        var end = offset + length;
        var map = Volatile.Read(ref _map);
        if (map is null || end > Volatile.Read(ref _fileBound) || end > map.Capacity)
        {
            map = offset < 0 || length < 0 ? null : MapFor(end);
            if (map is null)
            {
                bytes = default;
                return false;
            }
        }
        bytes = MappedBytes.Lease(map, offset, length);
        return true;
    }

    /// <summary>A mapping that covers <paramref name="end"/> bytes of the file, or null.</summary>
    private MappedRegion? MapFor(long end)
    {
        if (_noMapping || _disposed || Handle.IsClosed)
        {
            return null;
        }
        if (end > Volatile.Read(ref _fileBound))
        {
            if (_lengthFinal)
            {
                return null;
            }
            // A segment still being written: its file may have grown (writes, preallocation).
            var size = Files.GetLength(Handle);
            if (end > size)
            {
                return null;
            }
            Volatile.Write(ref _fileBound, size);
        }
        var current = Volatile.Read(ref _map);
        if (current is not null && end <= current.Capacity)
        {
            return current;
        }
        var bound = Volatile.Read(ref _fileBound);
        var capacity = _lengthFinal ? bound : Math.Max(bound, Math.Max(MinActiveMapping, (current?.Capacity ?? 0) * 2));
        var fresh = Files.MapForRead(Handle, capacity);
        if (fresh is null)
        {
            _noMapping = true;
            return null;
        }
        // The mapping replaced stays until Dispose: a reader on another thread may still hold it.
        fresh.Previous = current;
        if (Interlocked.CompareExchange(ref _map, fresh, current) != current)
        {
            fresh.Previous = null;
            fresh.Dispose();
            var winner = Volatile.Read(ref _map);
            return winner is not null && end <= winner.Capacity ? winner : null;
        }
        if (_disposed)
        {
            Interlocked.Exchange(ref _map, null)?.DisposeChain();
            return null;
        }
        return fresh;
    }

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

    /// <summary>Closes the file; the mappings go once no reader holds them.</summary>
    public void Dispose()
    {
        _disposed = true;
        Interlocked.Exchange(ref _map, null)?.DisposeChain();
        Handle.Dispose();
    }
}
