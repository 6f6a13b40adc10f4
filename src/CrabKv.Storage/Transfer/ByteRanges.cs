namespace CrabKv.Storage.Transfer;

/// <summary>
/// The byte ranges of one file already received: sorted, disjoint, merged [start, end)
/// intervals. Internal bookkeeping of <see cref="PartitionImport"/>; public for its tests.
/// </summary>
public sealed class ByteRanges
{
    private readonly List<(long Start, long End)> _ranges = new();

    /// <summary>Bytes covered.</summary>
    public long Count { get; private set; }

    /// <summary>The ranges, in order.</summary>
    public IReadOnlyList<(long Start, long End)> Ranges => _ranges;

    /// <summary>Marks [<paramref name="start"/>, <paramref name="end"/>) as present.</summary>
    public void Add(long start, long end)
    {
        if (end <= start)
        {
            return;
        }
        var i = 0;
        while (i < _ranges.Count && _ranges[i].End < start)
        {
            i++;
        }
        var s = start;
        var e = end;
        while (i < _ranges.Count && _ranges[i].Start <= end)
        {
            s = Math.Min(s, _ranges[i].Start);
            e = Math.Max(e, _ranges[i].End);
            Count -= _ranges[i].End - _ranges[i].Start;
            _ranges.RemoveAt(i);
        }
        _ranges.Insert(i, (s, e));
        Count += e - s;
    }

    /// <summary>The parts of [<paramref name="start"/>, <paramref name="end"/>) already present.</summary>
    public IEnumerable<(long Start, long End)> Overlaps(long start, long end)
    {
        foreach (var (s, e) in _ranges)
        {
            if (e <= start)
            {
                continue;
            }
            if (s >= end)
            {
                yield break;
            }
            yield return (Math.Max(s, start), Math.Min(e, end));
        }
    }

    /// <summary>The gaps of [0, <paramref name="length"/>) not present yet.</summary>
    public IEnumerable<(long Start, long End)> Missing(long length)
    {
        long at = 0;
        foreach (var (s, e) in _ranges)
        {
            if (s > at)
            {
                yield return (at, Math.Min(s, length));
            }
            at = Math.Max(at, e);
        }
        if (at < length)
        {
            yield return (at, length);
        }
    }
}
