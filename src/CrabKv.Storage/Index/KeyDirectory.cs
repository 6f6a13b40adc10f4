using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage.Index;

/// <summary>
/// The key directory: key → <see cref="KeyLocation"/>, in a chained hash table over struct
/// arrays (no object per key). Keys are stored as UTF-8 bytes in 1 MiB arena pages and
/// hashed with XxHash3, so a key costs its own bytes plus a 48-byte slot and a 4-byte bucket.
/// Arena bytes of removed keys are reclaimed by a rebuild once they outweigh the live ones.
/// Not thread safe: one owner (the store, or the partition actor).
/// </summary>
public sealed class KeyDirectory
{
    private const int PageBits = 20;
    private const int PageSize = 1 << PageBits;
    private const int MaxStackKey = 512;

    [StructLayout(LayoutKind.Sequential)]
    private struct Slot
    {
        public long KeyRef;       // page << 20 | offset in page
        public ulong Segment;
        public long Expiry;
        public uint Offset;
        public uint Size;
        public uint Hash;
        public int Next;          // chain link (index + 1; 0 = end), or free-list link
        public ushort KeyLength;  // 0 = free slot
        public byte Flags;        // 1 = tombstone (merge scratch only)
    }

    private int[] _buckets;       // slot index + 1; 0 = empty
    private Slot[] _slots;
    private int _used;            // slots ever handed out (high-water mark)
    private int _freeList = -1;
    private int _count;
    private readonly List<byte[]> _pages = new();
    private int _pageUsed = PageSize; // forces a first page
    private long _liveKeyBytes;
    private long _deadKeyBytes;

    /// <summary>Creates an empty directory sized for <paramref name="capacity"/> keys.</summary>
    public KeyDirectory(int capacity = 1024)
    {
        var size = (int)Math.Max(16, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(capacity, 1)));
        _buckets = new int[size];
        _slots = new Slot[size];
    }

    /// <summary>Number of keys.</summary>
    public int Count => _count;

    /// <summary>Total UTF-8 bytes of the live keys.</summary>
    public long KeyBytes => _liveKeyBytes;

    /// <summary>Approximate memory held, in bytes (slots, buckets and arena pages).</summary>
    public long AllocatedBytes => (long)_slots.Length * Marshal.SizeOf<Slot>() + (long)_buckets.Length * sizeof(int) + (long)_pages.Count * PageSize;

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
        location = ToLocation(ref _slots[i]);
        return true;
    }

    /// <summary>
    /// Looks a key up by its hash alone: the location of the first slot in the key's chain
    /// whose 32-bit hash equals the key's, without reading the stored key (one dependent cache
    /// miss fewer than <see cref="TryGet(ReadOnlySpan{byte}, out KeyLocation)"/>). False means
    /// the key is certainly absent. True means the key is there or another key with the same
    /// hash is: the caller must confirm the key against the record it reads (whose key it
    /// checks anyway) and fall back to <see cref="TryGet(ReadOnlySpan{byte}, out KeyLocation)"/>
    /// when the record holds another key.
    /// </summary>
    public bool TryGetByHash(ReadOnlySpan<byte> key, out KeyLocation location)
    {
        var hash = Hash(key);
        var i = _buckets[(int)(hash & (uint)(_buckets.Length - 1))] - 1;
        while (i >= 0)
        {
            ref var slot = ref _slots[i];
            if (slot.Hash == hash && slot.KeyLength == key.Length)
            {
                location = ToLocation(ref slot);
                return true;
            }
            i = slot.Next - 1;
        }
        location = default;
        return false;
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
            ref var slot = ref _slots[i];
            previous = ToLocation(ref slot);
            Store(ref slot, location);
            return true;
        }
        previous = default;
        Insert(key, hash, location);
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
        ref var slot = ref _slots[i];
        if (slot.Segment != expected.Segment.Value || slot.Offset != expected.Offset)
        {
            return false;
        }
        Store(ref slot, replacement);
        return true;
    }

    /// <summary>Removes a key; returns its last location when it existed.</summary>
    public bool Remove(ReadOnlySpan<byte> key, out KeyLocation previous)
    {
        var hash = Hash(key);
        ref var bucket = ref _buckets[(int)(hash & (uint)(_buckets.Length - 1))];
        var prev = -1;
        var i = bucket - 1;
        while (i >= 0)
        {
            ref var slot = ref _slots[i];
            if (slot.Hash == hash && KeyEquals(ref slot, key))
            {
                previous = ToLocation(ref slot);
                if (prev < 0)
                {
                    bucket = slot.Next;
                }
                else
                {
                    _slots[prev].Next = slot.Next;
                }
                _liveKeyBytes -= slot.KeyLength;
                _deadKeyBytes += slot.KeyLength;
                slot = default;
                slot.Next = _freeList;
                _freeList = i;
                _count--;
                MaybeCompactArena();
                return true;
            }
            prev = i;
            i = slot.Next - 1;
        }
        previous = default;
        return false;
    }

    /// <summary>Removes every key whose expiry is at or before <paramref name="nowMs"/>; returns them.</summary>
    public List<(byte[] Key, KeyLocation Location)> RemoveExpired(long nowMs, int max = int.MaxValue)
    {
        var expired = new List<(byte[], KeyLocation)>();
        for (var i = 0; i < _used && expired.Count < max; i++)
        {
            ref var slot = ref _slots[i];
            if (slot.KeyLength != 0 && !Expiry.IsLiveAt(slot.Expiry, nowMs))
            {
                expired.Add((KeyOf(ref slot).ToArray(), ToLocation(ref slot)));
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
        for (var i = 0; i < _used; i++)
        {
            ref var slot = ref _slots[i];
            if (slot.KeyLength != 0)
            {
                visitor(KeyOf(ref slot), ToLocation(ref slot));
            }
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

    private int Find(ReadOnlySpan<byte> key, uint hash)
    {
        var i = _buckets[(int)(hash & (uint)(_buckets.Length - 1))] - 1;
        while (i >= 0)
        {
            ref var slot = ref _slots[i];
            if (slot.Hash == hash && KeyEquals(ref slot, key))
            {
                return i;
            }
            i = slot.Next - 1;
        }
        return -1;
    }

    private void Insert(ReadOnlySpan<byte> key, uint hash, in KeyLocation location)
    {
        if (key.Length == 0 || key.Length > ushort.MaxValue)
        {
            throw new ArgumentException("Key length must be 1..65535 bytes.", nameof(key));
        }
        int i;
        if (_freeList >= 0)
        {
            i = _freeList;
            _freeList = _slots[i].Next;
        }
        else
        {
            if (_used == _slots.Length)
            {
                Grow();
            }
            i = _used++;
        }
        ref var slot = ref _slots[i];
        slot.KeyRef = AllocateKey(key);
        slot.KeyLength = (ushort)key.Length;
        slot.Hash = hash;
        Store(ref slot, location);
        ref var bucket = ref _buckets[(int)(hash & (uint)(_buckets.Length - 1))];
        slot.Next = bucket;
        bucket = i + 1;
        _count++;
        _liveKeyBytes += key.Length;
    }

    private void Grow()
    {
        var size = _slots.Length * 2;
        Array.Resize(ref _slots, size);
        _buckets = new int[size];
        for (var i = 0; i < _used; i++)
        {
            ref var slot = ref _slots[i];
            if (slot.KeyLength == 0)
            {
                continue;
            }
            ref var bucket = ref _buckets[(int)(slot.Hash & (uint)(size - 1))];
            slot.Next = bucket;
            bucket = i + 1;
        }
    }

    private long AllocateKey(ReadOnlySpan<byte> key)
    {
        if (PageSize - _pageUsed < key.Length)
        {
            _pages.Add(new byte[PageSize]);
            _pageUsed = 0;
        }
        var page = _pages.Count - 1;
        key.CopyTo(_pages[page].AsSpan(_pageUsed));
        var keyRef = ((long)page << PageBits) | (uint)_pageUsed;
        _pageUsed += key.Length;
        return keyRef;
    }

    private void MaybeCompactArena()
    {
        if (_deadKeyBytes < 4 * PageSize || _deadKeyBytes < _liveKeyBytes)
        {
            return;
        }
        var oldPages = _pages.ToArray();
        _pages.Clear();
        _pageUsed = PageSize;
        for (var i = 0; i < _used; i++)
        {
            ref var slot = ref _slots[i];
            if (slot.KeyLength != 0)
            {
                var page = oldPages[slot.KeyRef >> PageBits];
                slot.KeyRef = AllocateKey(page.AsSpan((int)(slot.KeyRef & (PageSize - 1)), slot.KeyLength));
            }
        }
        _deadKeyBytes = 0;
    }

    private ReadOnlySpan<byte> KeyOf(ref Slot slot) =>
        _pages[(int)(slot.KeyRef >> PageBits)].AsSpan((int)(slot.KeyRef & (PageSize - 1)), slot.KeyLength);

    private bool KeyEquals(ref Slot slot, ReadOnlySpan<byte> key) =>
        slot.KeyLength == key.Length && KeyOf(ref slot).SequenceEqual(key);

    private static void Store(ref Slot slot, in KeyLocation location)
    {
        slot.Segment = location.Segment.Value;
        slot.Offset = location.Offset;
        slot.Size = location.Size;
        slot.Expiry = location.Expiry;
        slot.Flags = location.Tombstone ? (byte)1 : (byte)0;
    }

    private static KeyLocation ToLocation(ref Slot slot) =>
        new(new SegmentId(slot.Segment), slot.Offset, slot.Size, slot.Expiry, slot.Flags == 1);
}

/// <summary>Receives one key of a <see cref="KeyDirectory"/> walk.</summary>
public delegate void KeyVisitor(ReadOnlySpan<byte> key, KeyLocation location);
