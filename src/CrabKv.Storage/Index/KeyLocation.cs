using CrabKv.Storage.Segments;

namespace CrabKv.Storage.Index;

/// <summary>
/// Where a key's newest record lives: segment, offset, size, and the record's absolute
/// expiry (Unix ms, 0 = never). <see cref="Tombstone"/> is only used by merge's scratch
/// directory; the store's key directory holds live keys only.
/// </summary>
public readonly record struct KeyLocation(SegmentId Segment, uint Offset, uint Size, long Expiry, bool Tombstone = false)
{
    /// <summary>True when the key has expired at <paramref name="nowMs"/>.</summary>
    public bool IsExpiredAt(long nowMs) => !Storage.Expiry.IsLiveAt(Expiry, nowMs);

    /// <summary>True when both name the same record.</summary>
    public bool SameRecord(in KeyLocation other) => Segment == other.Segment && Offset == other.Offset;
}
