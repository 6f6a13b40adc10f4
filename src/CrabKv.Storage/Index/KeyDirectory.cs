using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Text;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage.Index;

/// <summary>
/// The key directory: key → <see cref="KeyLocation"/>, in an open-addressing hash table
/// (linear probing, backward-shift deletion, no tombstones) of 32-byte entries that hold the
/// key's 32-bit hash, its length and its whole location, so a lookup by hash touches one
/// cache line: the entries are aligned on 32 bytes in a pinned array, never split across two
/// lines (and, from 4 MiB, Linux is asked to back it with huge pages). Keys are stored as UTF-8 bytes in 1 MiB arena pages (their references in a parallel
/// array, read only to compare keys) and hashed with XxHash3, so a key costs its own bytes
/// plus 40 bytes per table entry, at a load of at most 3/4. Arena bytes of removed keys are
/// reclaimed by a rebuild once they outweigh the live ones.
/// Not thread safe: one owner (the store, or the partition actor).
/// </summary>
public sealed class KeyDirectory
{
    private const int MaxStackKey = 512;
    private const int EntryBits = 5;            // 32-byte entries
    private const int EntryBytes = 1 << EntryBits;
    private const int Alignment = EntryBytes;   // entries never straddle a 64-byte line
    private const int MinCapacity = 16;
    private const int HugeTableBytes = 4 << 20;
    private const int MaxCapacity = 1 << 30;
    private const int MaxKeys = MaxCapacity - MaxCapacity / 4;

    /// <summary>One table entry: the hot part of a key (hash, length, location). KeyLength 0 = empty.</summary>
    [StructLayout(LayoutKind.Sequential, Size = EntryBytes)]
    private struct Entry
    {
        public uint Hash;
        public ushort KeyLength;
        public byte Flags;        // 1 = tombstone (merge scratch only)
        public byte Unused;
        public uint Offset;
        public uint Size;
        public ulong Segment;
        public long Expiry;
    }

    private Entry[] _table = [];  // pinned, one spare entry; entry i starts _base bytes past element i, aligned on Alignment
    private int _base;
    private long[] _keyRefs = []; // per entry: page << 20 | offset in page
    private int _mask;            // capacity - 1 (capacity a power of two)
    private int _growAt;          // count at which the table doubles (3/4 of capacity)
    private int _count;
    private KeyArena _arena = new();
    private long _liveKeyBytes;
    private long _deadKeyBytes;
    private LocationScan? _scan;  // a BeginLocationsIn under way: told of entries that cross its cursor

    /// <summary>Creates an empty directory sized to hold <paramref name="capacity"/> keys without growing.</summary>
    public KeyDirectory(int capacity = 1024)
    {
        Allocate(CapacityFor(Math.Clamp(capacity, 1, MaxKeys)));
    }

    /// <summary>Number of keys.</summary>
    public int Count => _count;

    /// <summary>Total UTF-8 bytes of the live keys.</summary>
    public long KeyBytes => _liveKeyBytes;

    /// <summary>Approximate memory held, in bytes (table entries, key references and arena pages).</summary>
    public long AllocatedBytes => _table.LongLength * EntryBytes + (long)_keyRefs.Length * sizeof(long) + _arena.AllocatedBytes;

    /// <summary>Encodes a string key as UTF-8 (helper for callers holding strings).</summary>
    public static byte[] Encode(string key) => Encoding.UTF8.GetBytes(key);

    /// <summary>Looks a key up.</summary>
    public bool TryGet(ReadOnlySpan<byte> key, out KeyLocation location)
    {
        var i = Find(key, Hash(key));
        if (i < 0)
        {
            location = default;
            return false;
        }
        location = ToLocation(ref At(i));
        return true;
    }

    /// <summary>
    /// Looks a key up by its hash alone: the location of the first entry in the key's probe
    /// sequence whose 32-bit hash and length equal the key's, without reading the stored key
    /// (the entry is the only memory touched). False means the key is certainly absent. True
    /// means the key is there or another key with the same hash is: the caller must confirm
    /// the key against the record it reads (whose key it checks anyway) and fall back to
    /// <see cref="TryGet(ReadOnlySpan{byte}, out KeyLocation)"/> when the record holds another key.
    /// </summary>
    public bool TryGetByHash(ReadOnlySpan<byte> key, out KeyLocation location)
    {
        var hash = Hash(key);
        var mask = _mask;
        for (var i = (int)(hash & (uint)mask); ; i = (i + 1) & mask)
        {
            ref var e = ref At(i);
            if (e.KeyLength == 0)
            {
                location = default;
                return false;
            }
            if (e.Hash == hash && e.KeyLength == key.Length)
            {
                location = ToLocation(ref e);
                return true;
            }
        }
    }

    /// <summary>Looks a string key up.</summary>
    public bool TryGet(string key, out KeyLocation location)
    {
        var max = Encoding.UTF8.GetMaxByteCount(key.Length);
        if (max <= MaxStackKey)
        {
            Span<byte> buf = stackalloc byte[max];
            return TryGet(buf[..Encoding.UTF8.GetBytes(key, buf)], out location);
        }
        return TryGet(Encoding.UTF8.GetBytes(key), out location);
    }

    /// <summary>Sets a key's location; returns the previous one when the key existed.</summary>
    public bool Set(ReadOnlySpan<byte> key, in KeyLocation location, out KeyLocation previous)
    {
        var hash = Hash(key);
        var i = Find(key, hash);
        if (i >= 0)
        {
            ref var e = ref At(i);
            previous = ToLocation(ref e);
            Store(ref e, location);
            return true;
        }
        previous = default;
        Insert(key, hash, location, ~i);
        return false;
    }

    /// <summary>
    /// Moves a key to <paramref name="replacement"/> only if it still points at
    /// <paramref name="expected"/> (merge results are applied this way).
    /// </summary>
    public bool CompareAndSet(ReadOnlySpan<byte> key, in KeyLocation expected, in KeyLocation replacement)
    {
        var i = Find(key, Hash(key));
        if (i < 0)
        {
            return false;
        }
        ref var e = ref At(i);
        if (e.Segment != expected.Segment.Value || e.Offset != expected.Offset)
        {
            return false;
        }
        Store(ref e, replacement);
        return true;
    }

    /// <summary>
    /// <see cref="CompareAndSet"/> that first tries table entry <paramref name="slot"/> (where
    /// <see cref="BeginLocationsIn"/> found the key): when that entry still points at
    /// <paramref name="expected"/> it is the key's (a record has one key), and moves without the
    /// key being hashed or compared. Otherwise (the table changed) the key is looked up.
    /// </summary>
    public bool CompareAndSetAt(int slot, ReadOnlySpan<byte> key, in KeyLocation expected, in KeyLocation replacement)
    {
        if ((uint)slot <= (uint)_mask)
        {
            ref var e = ref At(slot);
            if (e.KeyLength == key.Length && e.Segment == expected.Segment.Value && e.Offset == expected.Offset)
            {
                Store(ref e, replacement);
                return true;
            }
        }
        return CompareAndSet(key, expected, replacement);
    }

    /// <summary>
    /// Asks the CPU to start loading the table entry where <paramref name="key"/>'s probe begins,
    /// and returns at once: a caller with many keys to set (an open) prefetches several ahead,
    /// so their cache misses overlap instead of following one another. Changes nothing.
    /// </summary>
    public void Prefetch(ReadOnlySpan<byte> key) => PrefetchSlot((int)(Hash(key) & (uint)_mask));

    /// <summary>Like <see cref="Prefetch"/>, for table entry <paramref name="slot"/> (a hint from <see cref="BeginLocationsIn"/>); ignores a slot outside the table.</summary>
    public unsafe void PrefetchSlot(int slot)
    {
        if (Sse.IsSupported && (uint)slot <= (uint)_mask)
        {
            Sse.Prefetch0(Unsafe.AsPointer(ref At(slot))); // the table is pinned
        }
    }

    /// <summary>Removes a key; returns its last location when it existed.</summary>
    public bool Remove(ReadOnlySpan<byte> key, out KeyLocation previous)
    {
        var i = Find(key, Hash(key));
        if (i < 0)
        {
            previous = default;
            return false;
        }
        ref var e = ref At(i);
        previous = ToLocation(ref e);
        _liveKeyBytes -= e.KeyLength;
        _deadKeyBytes += e.KeyLength;
        _count--;
        RemoveAt(i);
        MaybeCompactArena();
        return true;
    }

    /// <summary>Removes every key whose expiry is at or before <paramref name="nowMs"/>; returns them.</summary>
    public List<(byte[] Key, KeyLocation Location)> RemoveExpired(long nowMs, int max = int.MaxValue)
    {
        var expired = new List<(byte[], KeyLocation)>();
        for (var i = 0; i <= _mask && expired.Count < max; i++)
        {
            ref var e = ref At(i);
            if (e.KeyLength != 0 && !Expiry.IsLiveAt(e.Expiry, nowMs))
            {
                expired.Add((KeyOf(i).ToArray(), ToLocation(ref e)));
            }
        }
        foreach (var (key, _) in expired)
        {
            Remove(key, out _);
        }
        return expired;
    }

    /// <summary>Calls <paramref name="visitor"/> for every key. Do not mutate the directory meanwhile.</summary>
    public void ForEach(KeyVisitor visitor)
    {
        for (var i = 0; i <= _mask; i++)
        {
            ref var e = ref At(i);
            if (e.KeyLength != 0)
            {
                visitor(KeyOf(i), ToLocation(ref e));
            }
        }
    }

    /// <summary>
    /// Starts a scan for the place of every key whose record lives in a segment with an id from
    /// <paramref name="firstSegment"/> to <paramref name="lastSegment"/>: its segment id and
    /// offset, and the table entry that holds it (a hint for <see cref="CompareAndSetAt"/>). It
    /// is one sequential pass over the table, nothing hashed or compared (about 20–27 ms per
    /// million keys here), taken in steps (<see cref="LocationScan.Step"/>; one step of
    /// <see cref="int.MaxValue"/> entries does it at once), so the owner can serve requests
    /// between them: the directory may change freely meanwhile. An entry
    /// that a deletion shifts from the part not yet scanned into the part already scanned is
    /// reported to the scan, and a growth of the table restarts it, so no key that still points
    /// into the range when the scan ends is missed. The answer may also hold records that were
    /// overwritten or deleted after they were taken, and the same record twice (a shift across
    /// the table's end); a merge drops such records at its compare-and-set. One scan at a time.
    /// </summary>
    /// <exception cref="InvalidOperationException">A scan is already under way (<see cref="LocationScan.Cancel"/> ends one).</exception>
    public LocationScan BeginLocationsIn(SegmentId firstSegment, SegmentId lastSegment)
    {
        if (_scan is not null)
        {
            throw new InvalidOperationException("A location scan of this key directory is already under way.");
        }
        return _scan = new LocationScan(this, firstSegment.Value, lastSegment.Value);
    }

    /// <summary>A <see cref="BeginLocationsIn"/> under way. Not thread safe, like the directory.</summary>
    public sealed class LocationScan
    {
        private readonly KeyDirectory _keys;
        private readonly ulong _first, _last;
        private ulong[] _segments;
        private uint[] _offsets;
        private int[] _slots;
        private int _count;
        private int _cursor;   // entries [0, _cursor) are scanned
        private bool _ended;

        internal LocationScan(KeyDirectory keys, ulong first, ulong last)
        {
            (_keys, _first, _last) = (keys, first, last);
            _segments = GC.AllocateUninitializedArray<ulong>(Math.Max(16, keys._count));
            _offsets = GC.AllocateUninitializedArray<uint>(_segments.Length);
            _slots = GC.AllocateUninitializedArray<int>(_segments.Length);
        }

        /// <summary>Times the scan started over because the table grew.</summary>
        public int Restarts { get; private set; }

        /// <summary>
        /// Scans up to <paramref name="maxEntries"/> more table entries; true when the table is
        /// scanned (then <see cref="Found"/>, and the directory forgets the scan).
        /// </summary>
        public bool Step(int maxEntries)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
            ObjectDisposedException.ThrowIf(_ended, this);
            var keys = _keys;
            var end = (int)Math.Min(keys._mask + 1L, (long)_cursor + maxEntries);
            for (var i = _cursor; i < end; i++)
            {
                ref var e = ref keys.At(i);
                if (e.KeyLength != 0 && e.Segment >= _first && e.Segment <= _last)
                {
                    Add(e.Segment, e.Offset, i);
                }
            }
            _cursor = end;
            if (_cursor <= keys._mask)
            {
                return false;
            }
            _ended = true;
            keys._scan = null;
            return true;
        }

        /// <summary>The places found, in the first <c>Count</c> elements of the arrays (after the last <see cref="Step"/>).</summary>
        public (ulong[] Segments, uint[] Offsets, int[] Slots, int Count) Found =>
            _ended && _cursor > 0 ? (_segments, _offsets, _slots, _count) : throw new InvalidOperationException("The scan has not finished.");

        /// <summary>Abandons the scan; the directory forgets it.</summary>
        public void Cancel()
        {
            if (!_ended)
            {
                _ended = true;
                _cursor = 0;
                _keys._scan = null;
            }
        }

        /// <summary>The entry now at <paramref name="to"/> was shifted there from <paramref name="from"/> by a deletion.</summary>
        internal void Shifted(int from, int to, ulong segment, uint offset)
        {
            // From the unscanned part into the scanned one: the step that would have seen it is past.
            if (from >= _cursor && to < _cursor && segment >= _first && segment <= _last)
            {
                Add(segment, offset, to);
            }
        }

        /// <summary>The table was rebuilt (grown): every entry moved, so the scan starts over.</summary>
        internal void Restart()
        {
            _cursor = 0;
            _count = 0;
            Restarts++;
        }

        private void Add(ulong segment, uint offset, int slot)
        {
            if (_count == _segments.Length)
            {
                var size = _segments.Length * 2;
                Array.Resize(ref _segments, size);
                Array.Resize(ref _offsets, size);
                Array.Resize(ref _slots, size);
            }
            _segments[_count] = segment;
            _offsets[_count] = offset;
            _slots[_count] = slot;
            _count++;
        }
    }

    /// <summary>Every key and location, as strings (tests and tools; allocates).</summary>
    public Dictionary<string, KeyLocation> ToDictionary()
    {
        var d = new Dictionary<string, KeyLocation>(_count);
        ForEach((k, l) => d[Encoding.UTF8.GetString(k)] = l);
        return d;
    }

    private static uint Hash(ReadOnlySpan<byte> key)
    {
        var h = XxHash3.HashToUInt64(key);
        return (uint)(h ^ (h >> 32));
    }

    /// <summary>Table size (a power of two) that holds <paramref name="keys"/> at a load of at most 3/4.</summary>
    private static int CapacityFor(long keys)
    {
        var needed = keys + (keys + 2) / 3; // keys / (3/4), rounded up
        return (int)Math.Max(MinCapacity, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)needed));
    }

    private unsafe void Allocate(int capacity)
    {
        // An Entry[] rather than bytes: more than 2 GiB of entries stay addressable. Both arrays
        // are allocated before any field changes: an allocation that fails (out of memory)
        // leaves the directory as it was.
        var table = GC.AllocateArray<Entry>(capacity + 1, pinned: true);
        var keyRefs = GC.AllocateArray<long>(capacity, pinned: true);
        int baseBytes;
        fixed (Entry* p = table)
        {
            baseBytes = (int)((Alignment - ((nint)p & (Alignment - 1))) & (Alignment - 1));
            var bytes = table.LongLength * EntryBytes;
            if (bytes >= HugeTableBytes)
            {
                // Gets touch one random entry each, and its key reference: huge pages spare
                // most of their TLB misses.
                Files.NativeFile.AdviseHugePages((nint)p, bytes);
                fixed (long* r = keyRefs)
                {
                    Files.NativeFile.AdviseHugePages((nint)r, keyRefs.LongLength * sizeof(long));
                }
            }
        }
        (_table, _base, _keyRefs) = (table, baseBytes, keyRefs);
        _mask = capacity - 1;
        _growAt = capacity - capacity / 4;
    }

    private ref Entry At(int i) => ref EntryIn(_table, _base, i);

    private static ref Entry EntryIn(Entry[] table, int baseBytes, int i) =>
        ref Unsafe.As<byte, Entry>(ref Unsafe.AddByteOffset(ref Unsafe.As<Entry, byte>(ref MemoryMarshal.GetArrayDataReference(table)), baseBytes + ((nint)i << EntryBits)));

    /// <summary>The entry holding <paramref name="key"/>, or (negative) the complement of the empty entry where its probe ended.</summary>
    private int Find(ReadOnlySpan<byte> key, uint hash)
    {
        var mask = _mask;
        for (var i = (int)(hash & (uint)mask); ; i = (i + 1) & mask)
        {
            ref var e = ref At(i);
            if (e.KeyLength == 0)
            {
                return ~i; // absent: the complement of the empty entry that ends its probe
            }
            if (e.Hash == hash && e.KeyLength == key.Length && KeyOf(i).SequenceEqual(key))
            {
                return i;
            }
        }
    }

    /// <summary>The first empty entry of <paramref name="hash"/>'s probe sequence.</summary>
    private int FreeFor(uint hash)
    {
        var mask = _mask;
        var i = (int)(hash & (uint)mask);
        while (At(i).KeyLength != 0)
        {
            i = (i + 1) & mask;
        }
        return i;
    }

    /// <summary>Inserts an absent key at <paramref name="free"/> (where its probe stopped), or where it lands after a growth.</summary>
    private void Insert(ReadOnlySpan<byte> key, uint hash, in KeyLocation location, int free)
    {
        if (key.Length == 0 || key.Length > ushort.MaxValue)
        {
            throw new ArgumentException("Key length must be 1..65535 bytes.", nameof(key));
        }
        var i = free;
        if (_count >= _growAt)
        {
            Grow();
            i = FreeFor(hash);
        }
        var keyRef = _arena.Add(key); // may allocate an arena page: before the entry is taken
        ref var e = ref At(i);
        e.Hash = hash;
        e.KeyLength = (ushort)key.Length;
        Store(ref e, location);
        _keyRefs[i] = keyRef;
        _count++;
        _liveKeyBytes += key.Length;
    }

    /// <summary>
    /// Empties entry <paramref name="i"/> and shifts later entries of the same cluster back
    /// into the hole when that does not move them before their home, so every probe sequence
    /// stays unbroken without tombstones.
    /// </summary>
    private void RemoveAt(int i)
    {
        var mask = _mask;
        var j = i;
        while (true)
        {
            j = (j + 1) & mask;
            ref var next = ref At(j);
            if (next.KeyLength == 0)
            {
                break;
            }
            var home = (int)(next.Hash & (uint)mask);
            // next may move back to i only if its home is not in (i, j] (cyclically).
            var homeInRange = i <= j ? home > i && home <= j : home > i || home <= j;
            if (homeInRange)
            {
                continue;
            }
            At(i) = next;
            _keyRefs[i] = _keyRefs[j];
            _scan?.Shifted(j, i, next.Segment, next.Offset);
            i = j;
        }
        At(i) = default;
        _keyRefs[i] = 0;
    }

    private void Grow()
    {
        var oldTable = _table;
        var oldBase = _base;
        var oldRefs = _keyRefs;
        var oldCapacity = _mask + 1;
        if (oldCapacity == MaxCapacity)
        {
            throw new InvalidOperationException($"The key directory is full: one partition holds at most {MaxKeys:N0} keys.");
        }
        Allocate(oldCapacity * 2);
        for (var i = 0; i < oldCapacity; i++)
        {
            ref var e = ref EntryIn(oldTable, oldBase, i);
            if (e.KeyLength == 0)
            {
                continue;
            }
            var j = FreeFor(e.Hash);
            At(j) = e;
            _keyRefs[j] = oldRefs[i];
        }
        _scan?.Restart();
    }

    private void MaybeCompactArena()
    {
        if (_deadKeyBytes < 4 * KeyArena.PageSize || _deadKeyBytes < _liveKeyBytes)
        {
            return;
        }
        var old = _arena;
        _arena = new KeyArena();
        for (var i = 0; i <= _mask; i++)
        {
            ref var e = ref At(i);
            if (e.KeyLength != 0)
            {
                _keyRefs[i] = _arena.Add(old.Get(_keyRefs[i], e.KeyLength));
            }
        }
        _deadKeyBytes = 0;
    }

    private ReadOnlySpan<byte> KeyOf(int i) => _arena.Get(_keyRefs[i], At(i).KeyLength);

    private static void Store(ref Entry e, in KeyLocation location)
    {
        e.Segment = location.Segment.Value;
        e.Offset = location.Offset;
        e.Size = location.Size;
        e.Expiry = location.Expiry;
        e.Flags = location.Tombstone ? (byte)1 : (byte)0;
    }

    private static KeyLocation ToLocation(ref Entry e) =>
        new(new SegmentId(e.Segment), e.Offset, e.Size, e.Expiry, e.Flags == 1);
}

/// <summary>Receives one key of a <see cref="KeyDirectory"/> walk.</summary>
public delegate void KeyVisitor(ReadOnlySpan<byte> key, KeyLocation location);
