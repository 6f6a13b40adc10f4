using CrabKv.Storage.Segments;

namespace CrabKv.Storage.Index;

/// <summary>
/// Per-segment byte accounting: total record bytes, and the bytes the key directory still
/// points at. Stale = total − live; the compaction heuristic reads it. Not thread safe.
/// </summary>
public sealed class SegmentUsage
{
    private readonly Dictionary<SegmentId, (long Total, long Live)> _bySegment = new();

    /// <summary>Counts a record written to (or found in) a segment.</summary>
    public void AddRecord(SegmentId segment, long size, bool live)
    {
        _bySegment.TryGetValue(segment, out var u);
        _bySegment[segment] = (u.Total + size, u.Live + (live ? size : 0));
    }

    /// <summary>A record the key directory pointed at is no longer live (overwritten, deleted, expired).</summary>
    public void Kill(SegmentId segment, long size)
    {
        if (_bySegment.TryGetValue(segment, out var u))
        {
            _bySegment[segment] = (u.Total, u.Live - size);
        }
    }

    /// <summary>A record becomes live again in place (a merge relocation landed).</summary>
    public void Revive(SegmentId segment, long size)
    {
        if (_bySegment.TryGetValue(segment, out var u))
        {
            _bySegment[segment] = (u.Total, u.Live + size);
        }
    }

    /// <summary>Sets a segment's totals outright (a merge output, once its relocations are applied).</summary>
    public void Set(SegmentId segment, long total, long live) => _bySegment[segment] = (total, live);

    /// <summary>Forgets a deleted segment.</summary>
    public void Remove(SegmentId segment) => _bySegment.Remove(segment);

    /// <summary>Total and live bytes of one segment.</summary>
    public (long Total, long Live) Of(SegmentId segment) => _bySegment.TryGetValue(segment, out var u) ? u : default;

    /// <summary>Sums total and stale bytes over the segments <paramref name="include"/> accepts.</summary>
    public (long Total, long Stale) Sum(Func<SegmentId, bool> include)
    {
        long total = 0, stale = 0;
        foreach (var (id, u) in _bySegment)
        {
            if (include(id))
            {
                total += u.Total;
                stale += u.Total - u.Live;
            }
        }
        return (total, stale);
    }
}
