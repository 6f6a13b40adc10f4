using System.Runtime.InteropServices;

namespace CrabKv.Storage.Files;

/// <summary>
/// A read-only, shared memory mapping of the first <see cref="Capacity"/> bytes of a file
/// (<c>mmap(PROT_READ, MAP_SHARED)</c>), made by <see cref="FileLayer.MapForRead"/>. It maps the
/// page cache itself, so it sees every byte written through the file's handle, with no
/// system call per read. Readers take a reference (<see cref="SafeHandle.DangerousAddRef"/>)
/// for as long as they touch the bytes (<see cref="Segments.MappedBytes"/> does it): disposing
/// the region unmaps it only once the last reader let go, so a segment closed by a merge while
/// another thread still reads it is unmapped after that read, never under it.
/// </summary>
/// <remarks>
/// The mapping may be longer than the file (a segment still being written): only bytes below
/// the file's size may be touched — a page past its end faults (SIGBUS). <see cref="Segments.Segment"/>
/// checks every read against the size it last observed.
/// </remarks>
public sealed class MappedRegion : SafeHandle
{
    internal MappedRegion(nint address, long capacity)
        : base(0, ownsHandle: true)
    {
        SetHandle(address);
        Capacity = capacity;
    }

    /// <summary>Bytes mapped from the start of the file.</summary>
    public long Capacity { get; }

    /// <summary>The mapping this one replaced (a segment growing past its mapping); unmapped with it.</summary>
    internal MappedRegion? Previous { get; set; }

    /// <inheritdoc/>
    public override bool IsInvalid => handle == 0;

    /// <summary>Address of the first mapped byte (valid while a reference is held).</summary>
    internal nint Address => handle;

    /// <summary>Disposes this mapping and every one it replaced.</summary>
    internal void DisposeChain()
    {
        for (var region = this; region is not null; region = region.Previous)
        {
            region.Dispose();
        }
    }

    /// <inheritdoc/>
    protected override bool ReleaseHandle() => NativeFile.Unmap(handle, Capacity);
}
