using CrabKv.Storage.Compaction;
using CrabKv.Storage.Format;
using CrabKv.Storage.Index;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage.Partition;

/// <summary>
/// Everything a partition knows about where its data is: the key directory (key → newest
/// live record), the byte accounting per segment, and the table of open segments (every
/// sealed one plus a reader of the active one). Recovery builds it, the embedded store and
/// the partition actor own one each, and both change it only through these methods: the
/// one home of "apply a record", "expire on read", "sweep", "what to merge" and "apply a
/// merge". Not thread safe; owns (disposes) the segments in its table.
/// </summary>
public sealed class PartitionIndex : IDisposable
{
    private readonly SortedDictionary<SegmentId, Segment> _segments = new();
    private readonly Dictionary<SegmentId, Segment> _byId = new(); // the same segments, for the get path's lookup by id

    /// <summary>An empty index.</summary>
    public PartitionIndex(KeyDirectory? keys = null)
    {
        Keys = keys ?? new KeyDirectory();
    }

    /// <summary>The key directory (live keys only). Read it; change it through the index.</summary>
    public KeyDirectory Keys { get; }

    /// <summary>Byte accounting per segment.</summary>
    public SegmentUsage Usage { get; } = new();

    /// <summary>The open segments in id order: every sealed one and, once started, the active one.</summary>
    public IReadOnlyDictionary<SegmentId, Segment> Segments => _segments;

    /// <summary>The open segment <paramref name="id"/> (a hashed lookup, for reads); false when it is not in the table.</summary>
    public bool TryGetSegment(SegmentId id, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out Segment segment) => _byId.TryGetValue(id, out segment);

    /// <summary>The active (written) segment; default until one is started.</summary>
    public SegmentId Active { get; private set; }

    /// <summary>Live keys.</summary>
    public int Count => Keys.Count;

    // ------------------------------------------------------------------ records

    /// <summary>
    /// Applies one record (written now, or found by recovery in a record or hint entry): a
    /// tombstone or an already expired put removes the key; a put points the key at
    /// <paramref name="location"/>. The bytes are counted in the record's segment either way.
    /// </summary>
    public void Apply(ReadOnlySpan<byte> key, in KeyLocation location, bool tombstone, long nowMs)
    {
        if (tombstone || location.IsExpiredAt(nowMs))
        {
            Usage.AddRecord(location.Segment, location.Size, live: false);
            Forget(key);
            return;
        }
        Usage.AddRecord(location.Segment, location.Size, live: true);
        if (Keys.Set(key, location, out var prior))
        {
            Usage.Kill(prior.Segment, prior.Size);
        }
    }

    /// <summary>Applies the records of one write unit in order (a batch's later entries win).</summary>
    public void Apply(byte[][] keys, ReadOnlySpan<KeyLocation> locations, long nowMs)
    {
        for (var i = 0; i < keys.Length; i++)
        {
            Apply(keys[i], locations[i], locations[i].Tombstone, nowMs);
        }
    }

    /// <summary>True when a record of the key is on disk and indexed (live or not yet swept): a delete must hide it.</summary>
    public bool HasRecord(ReadOnlySpan<byte> key) => Keys.TryGet(key, out _);

    /// <summary>True when the key has a live record at <paramref name="nowMs"/> (nothing is removed).</summary>
    public bool ContainsLive(ReadOnlySpan<byte> key, long nowMs) => Keys.TryGet(key, out var location) && !location.IsExpiredAt(nowMs);

    /// <summary>
    /// The key's live location at <paramref name="nowMs"/>. A key found expired is removed
    /// on the spot (expire on read) and reported absent.
    /// </summary>
    public bool TryGetLive(ReadOnlySpan<byte> key, long nowMs, out KeyLocation location)
    {
        if (!Keys.TryGet(key, out location))
        {
            return false;
        }
        if (location.IsExpiredAt(nowMs))
        {
            Forget(key);
            return false;
        }
        return true;
    }

    /// <summary>
    /// <see cref="TryGetLive"/> for a get, found by hash alone when it can be
    /// (<see cref="KeyDirectory.TryGetByHash"/>: the stored key is not read). When
    /// <paramref name="keyChecked"/> is false the location may belong to another key with the
    /// same hash: the caller confirms the key against the record it reads and, when the record
    /// holds another key, asks <see cref="TryGetLive"/>. A location found expired always goes
    /// through <see cref="TryGetLive"/> (which removes the key, and only the key).
    /// </summary>
    public bool TryGetLiveByHash(ReadOnlySpan<byte> key, long nowMs, out KeyLocation location, out bool keyChecked)
    {
        keyChecked = false;
        if (!Keys.TryGetByHash(key, out location))
        {
            return false;
        }
        if (!location.IsExpiredAt(nowMs))
        {
            return true;
        }
        keyChecked = true;
        return TryGetLive(key, nowMs, out location);
    }

    /// <summary>
    /// <see cref="TryGetLiveByHash(ReadOnlySpan{byte}, long, out KeyLocation, out bool)"/> that
    /// reads <paramref name="clock"/> only for a key with a TTL: a key without one is live
    /// whatever the time, and a get of it costs no clock read.
    /// </summary>
    public bool TryGetLiveByHash(ReadOnlySpan<byte> key, TimeProvider clock, out KeyLocation location, out bool keyChecked)
    {
        keyChecked = false;
        if (!Keys.TryGetByHash(key, out location))
        {
            return false;
        }
        return location.Expiry == 0 || TryGetLiveByHash(key, clock.GetUtcNow().ToUnixTimeMilliseconds(), out location, out keyChecked);
    }

    /// <summary><see cref="TryGetLiveByHash(ReadOnlySpan{byte}, long, out KeyLocation, out bool)"/> plus the open segment holding the record.</summary>
    public bool TryLocateByHash(ReadOnlySpan<byte> key, long nowMs, out KeyLocation location, out Segment segment, out bool keyChecked)
    {
        segment = null!;
        return TryGetLiveByHash(key, nowMs, out location, out keyChecked) && _byId.TryGetValue(location.Segment, out segment!);
    }

    /// <summary><see cref="TryGetLive"/> plus the open segment holding the record.</summary>
    public bool TryLocate(ReadOnlySpan<byte> key, long nowMs, out KeyLocation location, out Segment segment)
    {
        segment = null!;
        return TryGetLive(key, nowMs, out location) && _byId.TryGetValue(location.Segment, out segment!);
    }

    /// <summary>
    /// The active TTL sweep: removes up to <paramref name="max"/> expired keys from memory so
    /// their bytes count as stale; returns the keys removed (UTF-8).
    /// </summary>
    public List<byte[]> SweepExpired(long nowMs, int max = int.MaxValue)
    {
        var expired = Keys.RemoveExpired(nowMs, max);
        var keys = new List<byte[]>(expired.Count);
        foreach (var (key, location) in expired)
        {
            Usage.Kill(location.Segment, location.Size);
            keys.Add(key);
        }
        return keys;
    }

    private void Forget(ReadOnlySpan<byte> key)
    {
        if (Keys.Remove(key, out var previous))
        {
            Usage.Kill(previous.Segment, previous.Size);
        }
    }

    // ------------------------------------------------------------------ segments

    /// <summary>Adds an open sealed segment (recovery, merge outputs).</summary>
    public void AddSealed(Segment segment) => Put(segment);

    /// <summary>A new active segment: <paramref name="reader"/> serves its reads.</summary>
    public void StartActive(Segment reader)
    {
        Put(reader);
        Active = reader.Id;
    }

    /// <summary>
    /// A segment was sealed at <paramref name="length"/> bytes. Length 0 means the writer
    /// deleted it because it held no record (<see cref="ActiveLog"/>): its reader is closed
    /// and forgotten. Returns true when a sealed segment remains.
    /// </summary>
    public bool Sealed(SegmentId id, long length)
    {
        if (!_segments.TryGetValue(id, out var reader))
        {
            return false;
        }
        if (length == 0)
        {
            Drop(id);
            reader.Dispose();
            return false;
        }
        reader.UpdateLength(length);
        return true;
    }

    // ------------------------------------------------------------------ compaction

    /// <summary>Total and stale bytes of the sealed segments (what the compaction heuristic reads).</summary>
    public (long Total, long Stale) SealedUsage()
    {
        var active = Active;
        return Usage.Sum(id => id != active && _segments.ContainsKey(id));
    }

    /// <summary>True when the heuristic says the sealed segments are worth merging.</summary>
    public bool ShouldCompact(CompactionThresholds thresholds)
    {
        var (total, stale) = SealedUsage();
        return CompactionPolicy.ShouldCompact(thresholds, total, stale);
    }

    /// <summary>
    /// The inputs of a merge of every sealed segment that holds records, or null when there
    /// is nothing to gain: no input, or one clean merge output and no older leftovers (merging
    /// it again would only burn a segment id).
    /// </summary>
    public List<Segment>? PlanMerge(bool olderSegmentsExist)
    {
        var active = Active;
        var inputs = _segments.Where(kv => kv.Key != active && kv.Value.Length > FormatConstants.FileHeaderSize).Select(kv => kv.Value).ToList();
        if (inputs.Count == 0)
        {
            return null;
        }
        if (inputs.Count == 1 && inputs[0].Id.Sub > 0 && !olderSegmentsExist && Usage.Of(inputs[0].Id) is var u && u.Total == u.Live)
        {
            return null;
        }
        return inputs;
    }

    /// <summary>
    /// Installs a merge: relocations compare-and-set (a key moves only if it still points at
    /// the old place), accounting of the inputs replaced by the outputs', outputs added to
    /// the table and inputs taken out of it (not disposed: reads may still use them until the
    /// caller deletes them). In one go; <see cref="BeginMerge"/> does it in steps.
    /// </summary>
    public void ApplyMerge(IReadOnlyList<Segment> inputs, MergeResult result)
    {
        var install = BeginMerge(inputs, result);
        install.Step(int.MaxValue);
        CompleteMerge(install);
    }

    /// <summary>
    /// Starts installing a merge in steps (<see cref="Merger.MergeInstall.Step"/>), so that the
    /// owner serves requests between them instead of pausing for the whole merge: the outputs
    /// join the table now (a moved key is read from them at once), the inputs stay in it until
    /// <see cref="CompleteMerge"/>. Writes, deletes and expiry between steps are safe: each
    /// relocation is compare-and-set, and usage follows the record a key points at.
    /// </summary>
    public PendingMerge BeginMerge(IReadOnlyList<Segment> inputs, MergeResult result)
    {
        foreach (var o in result.Outputs)
        {
            Put(o);
        }
        return new PendingMerge(inputs, Merger.BeginInstall(Keys, Usage, inputs.Select(s => s.Id), result));
    }

    /// <summary>Finishes an install whose relocations are all applied: expired keys forgotten, the inputs taken out of the table and its accounting.</summary>
    public void CompleteMerge(PendingMerge merge)
    {
        merge.Install.Complete();
        foreach (var s in merge.Inputs)
        {
            Drop(s.Id);
        }
    }

    // ------------------------------------------------------------------ stats

    /// <summary>The index's part of a partition's stats.</summary>
    public PartitionStats Describe(int partition)
    {
        var (total, stale) = Usage.Sum(_ => true);
        return new PartitionStats
        {
            Partition = partition,
            Keys = Keys.Count,
            Segments = _segments.Count,
            TotalBytes = total,
            StaleBytes = stale,
            KeyDirectoryBytes = Keys.AllocatedBytes,
            ActiveSegment = Active,
        };
    }

    /// <summary>Closes every segment in the table.</summary>
    public void Dispose()
    {
        foreach (var s in _segments.Values)
        {
            s.Dispose();
        }
        _segments.Clear();
        _byId.Clear();
    }

    private void Put(Segment segment)
    {
        _segments[segment.Id] = segment;
        _byId[segment.Id] = segment;
    }

    private void Drop(SegmentId id)
    {
        _segments.Remove(id);
        _byId.Remove(id);
    }
}

/// <summary>A merge being installed in a <see cref="PartitionIndex"/> (<see cref="PartitionIndex.BeginMerge"/>).</summary>
/// <param name="Inputs">The merged segments, still in the table.</param>
/// <param name="Install">The relocations' progress.</param>
public sealed record PendingMerge(IReadOnlyList<Segment> Inputs, Merger.MergeInstall Install)
{
    /// <summary>Applies up to <paramref name="maxRelocations"/> more relocations; true when none is left (then <see cref="PartitionIndex.CompleteMerge"/>).</summary>
    public bool Step(int maxRelocations) => Install.Step(maxRelocations);
}
