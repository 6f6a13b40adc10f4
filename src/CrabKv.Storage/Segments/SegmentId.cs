using System.Globalization;

namespace CrabKv.Storage.Segments;

/// <summary>
/// A segment's 64-bit id, <c>sequence &lt;&lt; 20 | sub</c> (FORMAT.md section 1). Ids order
/// segments in time: a record in a higher id is newer.
/// </summary>
public readonly record struct SegmentId(ulong Value) : IComparable<SegmentId>
{
    /// <summary>Builds an id from its parts.</summary>
    public static SegmentId From(uint sequence, int sub)
    {
        if (sequence > Format.FormatConstants.MaxSequence || sub < 0 || sub > Format.FormatConstants.MaxSub)
        {
            throw new InvalidOperationException($"Segment id {sequence}/{sub} does not fit the file name (sequence ≤ {Format.FormatConstants.MaxSequence}, sub ≤ {Format.FormatConstants.MaxSub}).");
        }
        return new(((ulong)sequence << Format.FormatConstants.SubBits) | (uint)sub);
    }

    /// <summary>The writer's sequence number.</summary>
    public uint Sequence => (uint)(Value >> Format.FormatConstants.SubBits);

    /// <summary>0 for a writer's segment, 1.. for merge outputs.</summary>
    public int Sub => (int)(Value & Format.FormatConstants.MaxSub);

    /// <summary>File name of the data segment.</summary>
    public string DataFileName => $"seg-{Sequence:D8}-{Sub:D6}.data";

    /// <summary>File name of the hint file.</summary>
    public string HintFileName => $"seg-{Sequence:D8}-{Sub:D6}.hint";

    /// <inheritdoc/>
    public int CompareTo(SegmentId other) => Value.CompareTo(other.Value);

    /// <inheritdoc/>
    public override string ToString() => $"{Sequence}/{Sub}";

    /// <summary>Parses <c>seg-SSSSSSSS-BBBBBB.data</c> or <c>.hint</c>; false for any other name.</summary>
    public static bool TryParseFileName(string fileName, out SegmentId id, out bool isHint)
    {
        id = default;
        isHint = fileName.EndsWith(".hint", StringComparison.Ordinal);
        if (!(isHint || fileName.EndsWith(".data", StringComparison.Ordinal)) || fileName.Length != 4 + 8 + 1 + 6 + 5
            || !fileName.StartsWith("seg-", StringComparison.Ordinal) || fileName[12] != '-')
        {
            return false;
        }
        if (!uint.TryParse(fileName.AsSpan(4, 8), NumberStyles.None, CultureInfo.InvariantCulture, out var seq)
            || !int.TryParse(fileName.AsSpan(13, 6), NumberStyles.None, CultureInfo.InvariantCulture, out var sub)
            || sub > Format.FormatConstants.MaxSub || seq > (uint.MaxValue >> 0))
        {
            return false;
        }
        id = From(seq, sub);
        return true;
    }
}
