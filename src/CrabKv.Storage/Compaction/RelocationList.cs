using System.Collections;
using CrabKv.Storage.Index;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage.Compaction;

/// <summary>
/// A merge's relocations, stored compactly: 48 bytes per relocation plus its key's bytes in
/// shared 1 MiB pages (<see cref="KeyArena"/>), against about 120 bytes for a <see cref="Relocation"/> with its own key
/// array (at 10M live keys, about 0.6 GB instead of 1.2 GB while a merge result waits to be
/// applied). The segment ids are indices into the merge's inputs and outputs. Read as
/// <see cref="Relocation"/>s through the list interface (each read allocates its key);
/// <see cref="Merger.ApplyRelocations"/> reads the parts without allocating.
/// </summary>
public sealed class RelocationList : IReadOnlyList<Relocation>
{
    private struct Entry
    {
        public long KeyRef;      // in the key arena
        public int Slot;
        public uint FromOffset;
        public uint ToOffset;
        public uint Size;
        public long Expiry;
        public ushort KeyLength;
        public int FromInput;     // index into the merge's inputs
        public int ToOutput;      // index into the output ids, in the order they were started
    }

    private readonly SegmentId[] _inputs;
    private readonly List<SegmentId> _outputs = new();
    private readonly KeyArena _keys = new();
    private Entry[] _items;
    private int _count;

    internal RelocationList(IReadOnlyList<Segment> inputs, int capacity)
    {
        _inputs = inputs.Select(s => s.Id).ToArray();
        _items = new Entry[Math.Max(capacity, 16)];
    }

    /// <inheritdoc />
    public int Count => _count;

    /// <inheritdoc />
    public Relocation this[int index] => new(Key(index).ToArray(), From(index), To(index), Slot(index));

    /// <summary>Registers the next output segment; later relocations into <paramref name="id"/> use it.</summary>
    internal void StartOutput(SegmentId id) => _outputs.Add(id);

    /// <summary>Adds the move of <paramref name="key"/> from <paramref name="from"/> (in input <paramref name="fromInput"/>) to the current output.</summary>
    internal void Add(ReadOnlySpan<byte> key, int fromInput, in KeyLocation from, uint toOffset, int slot)
    {
        if (_count == _items.Length)
        {
            Array.Resize(ref _items, _items.Length * 2);
        }
        var keyRef = _keys.Add(key);
        _items[_count++] = new Entry
        {
            KeyRef = keyRef,
            KeyLength = (ushort)key.Length,
            Slot = slot,
            FromInput = fromInput,
            FromOffset = from.Offset,
            Size = from.Size,
            Expiry = from.Expiry,
            ToOutput = _outputs.Count - 1,
            ToOffset = toOffset,
        };
    }

    /// <summary>The key of relocation <paramref name="index"/> (valid while the list lives).</summary>
    public ReadOnlySpan<byte> Key(int index)
    {
        ref readonly var item = ref ItemAt(index);
        return _keys.Get(item.KeyRef, item.KeyLength);
    }

    /// <summary>Where relocation <paramref name="index"/>'s record was.</summary>
    public KeyLocation From(int index)
    {
        ref readonly var item = ref ItemAt(index);
        return new KeyLocation(_inputs[item.FromInput], item.FromOffset, item.Size, item.Expiry);
    }

    /// <summary>Where relocation <paramref name="index"/>'s record is in the merge's output.</summary>
    public KeyLocation To(int index)
    {
        ref readonly var item = ref ItemAt(index);
        return new KeyLocation(_outputs[item.ToOutput], item.ToOffset, item.Size, item.Expiry);
    }

    /// <summary>The key directory entry that held relocation <paramref name="index"/>'s key when the merge was planned, or -1.</summary>
    public int Slot(int index) => ItemAt(index).Slot;

    /// <inheritdoc />
    public IEnumerator<Relocation> GetEnumerator()
    {
        for (var i = 0; i < _count; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private ref readonly Entry ItemAt(int index)
    {
        if ((uint)index >= (uint)_count)
        {
            throw new ArgumentOutOfRangeException(nameof(index));
        }
        return ref _items[index];
    }
}
