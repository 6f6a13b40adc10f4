using System.Runtime.InteropServices;

namespace CrabKv.Storage.Segments;

/// <summary>
/// Bytes of a record read in place: a span over a segment's mapping (holding a reference on
/// it until <see cref="Dispose"/>, so it cannot be unmapped meanwhile) or over the active
/// segment's write buffer. Use it inside a <c>using</c> and copy what must outlive it.
/// </summary>
public readonly ref struct MappedBytes
{
    private readonly SafeHandle? _owner;

    private MappedBytes(SafeHandle? owner, ReadOnlySpan<byte> span)
    {
        _owner = owner;
        Span = span;
    }

    /// <summary>The bytes; valid until <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<byte> Span { get; }

    /// <summary>Bytes of a buffer the caller owns (nothing to release).</summary>
    internal static MappedBytes Of(ReadOnlySpan<byte> span) => new(null, span);

    /// <summary>
    /// <paramref name="length"/> bytes at <paramref name="offset"/> of <paramref name="region"/>,
    /// holding a reference on it. Throws <see cref="ObjectDisposedException"/> when it is already unmapped.
    /// </summary>
    internal static unsafe MappedBytes Lease(Files.MappedRegion region, long offset, int length)
    {
        var added = false;
        region.DangerousAddRef(ref added);
        return new MappedBytes(region, new ReadOnlySpan<byte>((byte*)region.Address + offset, length));
    }

    /// <summary>Releases the mapping's reference.</summary>
    public void Dispose() => _owner?.DangerousRelease();
}
