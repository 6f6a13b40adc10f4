using CrabKv.Storage.Index;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage.Compaction;

/// <summary>
/// The records of a merge's inputs the key directory points at when the merge starts: taken on
/// the directory owner's thread (<see cref="Of"/>, one sequential pass over its table), handed
/// to the merge, which keeps exactly these records (less those expired by then).
/// <para>
/// A merge given this set reads its inputs once and looks nothing up by key: the set is sorted
/// by input and offset, and the inputs are scanned in the same order, so "is this record
/// live?" is a step of a cursor. Without it, a merge first indexes every key of its inputs to
/// find each key's newest record (FORMAT.md section 7). The set is only valid when the key
/// directory has indexed every record of the inputs (sealed segments whose writes were all
/// acknowledged) and when no segment older than the inputs remains: tombstones then have
/// nothing left to hide, so none is kept. A key that moves or goes after the set was taken is
/// sorted out by the compare-and-set of <see cref="Merger.ApplyRelocations"/>, as before.
/// </para>
/// </summary>
public sealed class LiveRecords
{
    // As taken, in table order (the first Count elements); released once sorted.
    private ulong[]? _segments;
    private uint[]? _offsets;
    private int[]? _slots;
    private ulong[]? _sorted; // input ordinal << 32 | offset, ascending; built by the merge
    private int[]? _sortedSlots; // the key directory entry of each, in the same order

    private LiveRecords(IReadOnlyList<SegmentId> inputs, ulong[] segments, uint[] offsets, int[] slots, int count)
    {
        Inputs = inputs;
        _segments = segments;
        _offsets = offsets;
        _slots = slots;
        Count = count;
    }

    /// <summary>The inputs the set was taken for, in id order.</summary>
    public IReadOnlyList<SegmentId> Inputs { get; }

    /// <summary>Number of live records in the inputs.</summary>
    public int Count { get; }

    /// <summary>
    /// The records of <paramref name="inputs"/> (in ascending id order) that
    /// <paramref name="keys"/> points at now. Call on the directory's owner, before the merge.
    /// </summary>
    public static LiveRecords Of(KeyDirectory keys, IReadOnlyList<Segment> inputs)
    {
        var scan = Begin(keys, inputs);
        scan.Step(int.MaxValue);
        return scan.Live;
    }

    /// <summary>
    /// <see cref="Of"/> in steps (<see cref="Scan.Step"/>), for an owner that serves requests
    /// between them and may change the directory meanwhile (<see cref="KeyDirectory.BeginLocationsIn"/>):
    /// no key that points into the inputs when the scan ends is missed. Records overwritten or
    /// deleted after they were taken may be in the set; the merge copies them and its
    /// compare-and-set leaves them dead in the output, counted as stale.
    /// </summary>
    public static Scan Begin(KeyDirectory keys, IReadOnlyList<Segment> inputs)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(inputs);
        var ids = inputs.Select(s => s.Id).ToArray();
        return new Scan(ids, ids.Length == 0 ? null : keys.BeginLocationsIn(ids[0], ids[^1]));
    }

    /// <summary>A <see cref="Begin"/> under way.</summary>
    public sealed class Scan
    {
        private readonly SegmentId[] _inputs;
        private readonly KeyDirectory.LocationScan? _scan;
        private LiveRecords? _result;

        internal Scan(SegmentId[] inputs, KeyDirectory.LocationScan? scan)
        {
            (_inputs, _scan) = (inputs, scan);
            if (scan is null)
            {
                _result = new LiveRecords(inputs, [], [], [], 0);
            }
        }

        /// <summary>Scans up to <paramref name="maxEntries"/> more entries of the key directory; true when done (then <see cref="Live"/>).</summary>
        public bool Step(int maxEntries)
        {
            if (_result is not null)
            {
                return true;
            }
            if (!_scan!.Step(maxEntries))
            {
                return false;
            }
            var (segments, offsets, slots, count) = _scan.Found;
            _result = new LiveRecords(_inputs, segments, offsets, slots, count);
            return true;
        }

        /// <summary>The set, once <see cref="Step"/> returned true.</summary>
        public LiveRecords Live => _result ?? throw new InvalidOperationException("The scan has not finished.");

        /// <summary>Abandons the scan (the key directory then accepts another).</summary>
        public void Cancel() => _scan?.Cancel();
    }

    /// <summary>
    /// Sorts the set by input and offset (on the merge's thread); throws when the inputs are not
    /// the ones it was taken for.
    /// </summary>
    internal Cursor Start(IReadOnlyList<Segment> inputs)
    {
        if (inputs.Count != Inputs.Count || inputs.Select(s => s.Id).Where((id, i) => id != Inputs[i]).Any())
        {
            throw new ArgumentException("The live-record set was taken for other merge inputs.", nameof(inputs));
        }
        if (_sorted is null)
        {
            var ordinal = new Dictionary<ulong, uint>(Inputs.Count);
            for (var i = 0; i < Inputs.Count; i++)
            {
                ordinal[Inputs[i].Value] = (uint)i;
            }
            var (segments, offsets, takenSlots) = (_segments!, _offsets!, _slots!);
            var sorted = new ulong[Count];
            var slots = new int[Count];
            var n = 0;
            for (var i = 0; i < Count; i++)
            {
                // Ids between the first and last input that are not inputs (none in practice): not merged.
                if (ordinal.TryGetValue(segments[i], out var o))
                {
                    sorted[n] = ((ulong)o << 32) | offsets[i];
                    slots[n] = takenSlots[i];
                    n++;
                }
            }
            Array.Sort(sorted, slots, 0, n);
            _sorted = n == sorted.Length ? sorted : sorted[..n];
            _sortedSlots = n == slots.Length ? slots : slots[..n];
            (_segments, _offsets, _slots) = (null, null, null); // a merge of 10M keys holds 160 MB less
        }
        return new Cursor(_sorted, _sortedSlots!);
    }

    /// <summary>Walks the sorted set while the merge scans its inputs in order.</summary>
    internal sealed class Cursor(ulong[] sorted, int[] slots)
    {
        private int _next;

        /// <summary>Number of live records (the most relocations the merge can produce).</summary>
        public int Count => sorted.Length;

        /// <summary>True when the record at <paramref name="offset"/> of input <paramref name="ordinal"/> is live; calls must come in scan order.</summary>
        public bool IsLive(int ordinal, long offset)
        {
            var place = ((ulong)(uint)ordinal << 32) | (uint)offset;
            while (_next < sorted.Length && sorted[_next] < place)
            {
                _next++;
            }
            return _next < sorted.Length && sorted[_next] == place;
        }

        /// <summary>The key directory entry of the record <see cref="IsLive"/> last found live.</summary>
        public int Slot => slots[_next];
    }
}
