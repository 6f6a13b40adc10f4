using System.Text;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Index;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Segments;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;
using static CrabKv.Storage.Tests.TestSupport.CorruptionHelpers;

namespace CrabKv.Storage.Tests;

/// <summary>FORMAT.md section 7, through <see cref="Merger"/> directly and through <see cref="EmbeddedStore.Compact"/>.</summary>
public sealed class MergeTests : IDisposable
{
    private const long Now = 1_000_000;
    private readonly TempDirectory _dir = new();
    private readonly List<Segment> _open = new();

    public void Dispose()
    {
        foreach (var s in _open)
        {
            s.Dispose();
        }
        _dir.Dispose();
    }

    private sealed record Op(string Key, string? Value, long Expiry = 0, RecordFlags Extra = RecordFlags.None);

    private static Op Put(string key, string value, long expiry = 0) => new(key, value, expiry);

    private static Op Del(string key) => new(key, null);

    /// <summary>Writes a sealed segment with the given records; returns it open for reading.</summary>
    private Segment Segment(uint sequence, int sub, params Op[] ops)
    {
        var w = SegmentWriter.Create(FileLayer.Default, _dir.Path, SegmentId.From(sequence, sub), 4096, 0);
        foreach (var op in ops)
        {
            var flags = (op.Value is null ? RecordFlags.Tombstone : RecordFlags.None) | op.Extra;
            w.Append(flags, op.Expiry, Encoding.UTF8.GetBytes(op.Key), op.Value is null ? [] : Encoding.UTF8.GetBytes(op.Value));
        }
        var s = w.Seal();
        _open.Add(s);
        return s;
    }

    private MergeResult Merge(IReadOnlyList<Segment> inputs, bool olderExist, long maxSegmentBytes = 1 << 20, LivenessCheck? isLive = null, LiveRecords? live = null)
    {
        var r = Merger.Run(FileLayer.Default, new MergeRequest(_dir.Path, inputs, olderExist, Now, maxSegmentBytes, isLive, live));
        _open.AddRange(r.Outputs);
        return r;
    }

    private static List<(string Key, string? Value, RecordFlags Flags)> Contents(Segment s)
    {
        var bytes = File.ReadAllBytes(s.Path);
        return ReadRecords(s.Path).Select(r =>
        {
            var value = (r.Flags & RecordFlags.Tombstone) != 0 ? null : Encoding.UTF8.GetString(bytes, (int)r.ValueOffset, r.StoredValueLength);
            return (r.Key, value, r.Flags);
        }).ToList();
    }

    [Fact]
    public void TombstoneIsKeptWhenOlderSegmentsExist()
    {
        Segment(1, 0, Put("a", "old"));
        var s2 = Segment(2, 0, Del("a"), Put("b", "1"));

        var r = Merge([s2], olderExist: true);

        var output = Assert.Single(r.Outputs);
        Assert.Equal([("a", (string?)null, RecordFlags.Tombstone), ("b", "1", RecordFlags.None)], Contents(output));
        Assert.Equal(0, r.RecordsDropped);
        Assert.Equal("b", Encoding.UTF8.GetString(Assert.Single(r.Relocations).Key)); // tombstones are not relocations
    }

    [Fact]
    public void TombstoneIsDroppedWhenNoOlderSegmentExists()
    {
        var s1 = Segment(1, 0, Put("a", "old"), Put("c", "3"));
        var s2 = Segment(2, 0, Del("a"), Put("b", "1"), Del("never-existed"));

        var r = Merge([s1, s2], olderExist: false);

        Assert.Equal([("c", (string?)"3", RecordFlags.None), ("b", "1", RecordFlags.None)], Contents(Assert.Single(r.Outputs)));
        Assert.Equal(3, r.RecordsDropped); // a=old, the tombstone of a, the tombstone of never-existed
    }

    [Fact]
    public void MergeOfOnlyDeadRecordsProducesNoOutput()
    {
        var s1 = Segment(1, 0, Put("a", "1"), Del("a"), Put("e", "x", expiry: Now));

        var r = Merge([s1], olderExist: false);

        Assert.Empty(r.Outputs);
        Assert.Empty(r.Relocations);
        Assert.Equal(3, r.RecordsDropped);
        Assert.Equal(0, r.BytesAfter);
        Assert.Equal(s1.Length, r.BytesBefore);
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.tmp"));
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.hint"));
    }

    [Fact]
    public void ExpiredAndOverwrittenRecordsAreDropped()
    {
        var s1 = Segment(1, 0, Put("a", "a1"), Put("b", "b1", expiry: Now - 1), Put("c", "c1"), Put("d", "d1", expiry: Now + 1));
        var s2 = Segment(2, 0, Put("a", "a2"), Put("c", "c2", expiry: Now), Put("a", "a3"));

        var r = Merge([s1, s2], olderExist: false);

        // a: only a3; b expired; c's newest (c2) expired at Now exactly; d not yet expired.
        Assert.Equal([("d", (string?)"d1", RecordFlags.None), ("a", "a3", RecordFlags.None)], Contents(Assert.Single(r.Outputs)));
        Assert.Equal(5, r.RecordsDropped);
        var d = ReadRecords(r.Outputs[0].Path).Single(x => x.Key == "d");
        Assert.Equal(Now + 1, d.Expiry); // the expiry travels with the record
    }

    [Fact]
    public void RecordsTheKeyDirectoryNoLongerPointsAtAreDropped()
    {
        var s1 = Segment(1, 0, Put("live", "1"), Put("gone", "2"), Put("moved", "3"));
        var keys = new KeyDirectory();
        var recs = ReadRecords(s1.Path);
        keys.Set(Encoding.UTF8.GetBytes("live"), new KeyLocation(s1.Id, (uint)recs[0].Offset, (uint)recs[0].Size, 0), out _);
        keys.Set(Encoding.UTF8.GetBytes("moved"), new KeyLocation(SegmentId.From(9, 0), 16, 30, 0), out _);

        var r = Merge([s1], olderExist: false,
            isLive: (ReadOnlySpan<byte> k, in KeyLocation l) => keys.TryGet(k, out var cur) && cur.SameRecord(l));

        Assert.Equal([("live", (string?)"1", RecordFlags.None)], Contents(Assert.Single(r.Outputs)));
        Assert.Equal(2, r.RecordsDropped);
    }

    /// <summary>The key directory a replay of <paramref name="segments"/> builds (what the owner holds once every write is acknowledged).</summary>
    private static KeyDirectory Replay(params Segment[] segments)
    {
        var keys = new KeyDirectory();
        foreach (var s in segments)
        {
            foreach (var r in ReadRecords(s.Path))
            {
                var key = Encoding.UTF8.GetBytes(r.Key);
                if ((r.Flags & RecordFlags.Tombstone) != 0)
                {
                    keys.Remove(key, out _);
                }
                else
                {
                    keys.Set(key, new KeyLocation(s.Id, (uint)r.Offset, (uint)r.Size, r.Expiry), out _);
                }
            }
        }
        return keys;
    }

    [Fact]
    public void WithTheLiveRecordsOneReadKeepsExactlyTheRecordsTheKeyDirectoryPointsAt()
    {
        var s1 = Segment(1, 0, Put("a", "a1"), Put("b", "b1"), Put("c", "c1", expiry: Now - 1), Put("d", "d1"), Put("e", "e1", expiry: Now + 5));
        var s2 = Segment(2, 0, Put("a", "a2"), Del("b"), Put("f", "f1"), Put("d", "d2", expiry: Now));
        var active = Segment(3, 0, Put("f", "f2"));
        var keys = Replay(s1, s2, active);
        var progress = new List<MergeProgress>();

        var r = Merger.Run(FileLayer.Default, new MergeRequest(_dir.Path, [s1, s2], false, Now, 1 << 20, Live: LiveRecords.Of(keys, [s1, s2])),
            new SyncProgress(progress));
        _open.AddRange(r.Outputs);

        // a: a2 (a1 overwritten); b deleted; c expired and gone; d's newest (d2) expired; e live;
        // f's live record is in the active segment, outside the inputs.
        Assert.Equal([("e", (string?)"e1", RecordFlags.None), ("a", "a2", RecordFlags.None)], Contents(Assert.Single(r.Outputs)));
        Assert.Equal(7, r.RecordsDropped);
        Assert.Equal(["a", "e"], r.Relocations.Select(x => Encoding.UTF8.GetString(x.Key)).Order(StringComparer.Ordinal));
        // Expired records the key directory still pointed at (c1, d2): it must forget them.
        Assert.Equal(["c", "d"], r.Expired.Select(x => Encoding.UTF8.GetString(x.Key)));
        Assert.Equal(s1.Length + s2.Length, progress[^1].BytesDone); // one read of the inputs
        Assert.Equal(1.0, progress[^1].Fraction);
    }

    [Fact]
    public void TheLiveRecordsAgreeWithTheTwoPassMergeOnRandomSegments()
    {
        var rng = new Random(4242);
        for (var round = 0; round < 60; round++)
        {
            var segments = RandomSegments(rng, round, maxSegments: 4, minOps: 0);
            var keys = Replay([.. segments]);
            LivenessCheck isLive = (ReadOnlySpan<byte> k, in KeyLocation l) => keys.TryGet(k, out var cur) && cur.SameRecord(l);

            var twoPass = Outcome(Merger.Run(FileLayer.Default, new MergeRequest(_dir.Path, segments, false, Now, 600, isLive)));
            var onePass = Outcome(Merger.Run(FileLayer.Default, new MergeRequest(_dir.Path, segments, false, Now, 600, Live: LiveRecords.Of(keys, segments))));

            Assert.Equal(twoPass.Contents, onePass.Contents);
            Assert.Equal(twoPass.Relocations, onePass.Relocations);
            Assert.Equal(twoPass.Expired, onePass.Expired);
            Assert.Equal(twoPass.Dropped, onePass.Dropped);
        }
    }

    /// <summary>1 to <paramref name="maxSegments"/> sealed segments of random puts, expiring puts and deletes over keys k0 … k24 (numbered after <paramref name="round"/>).</summary>
    private List<Segment> RandomSegments(Random rng, int round, int maxSegments, int minOps)
    {
        var segments = new List<Segment>();
        var count = rng.Next(1, maxSegments + 1);
        for (var s = 0; s < count; s++)
        {
            var ops = Enumerable.Range(0, rng.Next(minOps, 40)).Select(_ =>
            {
                var key = "k" + rng.Next(0, 25);
                return rng.Next(0, 6) switch
                {
                    0 => Del(key),
                    1 => Put(key, "v" + rng.Next(), expiry: Now + rng.Next(-3, 4)),
                    _ => Put(key, "v" + rng.Next()),
                };
            }).ToArray();
            segments.Add(Segment((uint)(round * 10 + s + 1), 0, ops));
        }
        return segments;
    }

    /// <summary>What a merge produced, as comparable text; its outputs are deleted so the next merge of the same inputs can take their names.</summary>
    private static (string Contents, string Relocations, string Expired, long Dropped) Outcome(MergeResult r)
    {
        var contents = string.Join("|", r.Outputs.Select(o => o.Id + ":" + string.Join(",", Contents(o).Select(c => $"{c.Key}={c.Value}/{c.Flags}"))));
        var relocations = string.Join("|", r.Relocations.Select(x => $"{Encoding.UTF8.GetString(x.Key)}:{x.From}->{x.To}"));
        var expired = string.Join("|", r.Expired.Select(x => $"{Encoding.UTF8.GetString(x.Key)}:{x.Location}"));
        foreach (var o in r.Outputs)
        {
            o.Dispose();
            File.Delete(o.Path);
            File.Delete(Path.Combine(Path.GetDirectoryName(o.Path)!, o.Id.HintFileName));
        }
        return (contents, relocations, expired, r.RecordsDropped);
    }

    [Fact]
    public void LiveRecordsTakenForOtherInputsAreRefused()
    {
        var s1 = Segment(1, 0, Put("a", "1"));
        var s2 = Segment(2, 0, Put("b", "2"));
        var keys = Replay(s1, s2);

        var e = Assert.Throws<ArgumentException>(() =>
            Merger.Run(FileLayer.Default, new MergeRequest(_dir.Path, [s1, s2], false, Now, 1 << 20, Live: LiveRecords.Of(keys, [s2]))));
        Assert.Contains("other merge inputs", e.Message);
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.tmp"));
    }

    [Fact]
    public void WithOlderSegmentsLeftTheLiveRecordsAreSetAsideAndTombstonesKept()
    {
        Segment(1, 0, Put("a", "old"));
        var s2 = Segment(2, 0, Del("a"), Put("b", "1"));
        var keys = Replay(s2);

        var r = Merge([s2], olderExist: true, live: LiveRecords.Of(keys, [s2]));

        Assert.Equal([("a", (string?)null, RecordFlags.Tombstone), ("b", "1", RecordFlags.None)], Contents(Assert.Single(r.Outputs)));
    }

    [Fact]
    public void RelocationsAppliedWithCompareAndSetOnlyMoveKeysStillAtTheOldPlace()
    {
        var s1 = Segment(1, 0, Put("stay", "s"), Put("overwritten", "o"), Put("deleted", "d"));
        var recs = ReadRecords(s1.Path).ToDictionary(x => x.Key);
        var keys = new KeyDirectory();
        foreach (var (k, rec) in recs)
        {
            keys.Set(Encoding.UTF8.GetBytes(k), new KeyLocation(s1.Id, (uint)rec.Offset, (uint)rec.Size, 0), out _);
        }

        var r = Merge([s1], olderExist: false); // no liveness check: every newest record is copied

        // Meanwhile (the merge runs off the owner's thread) the owner overwrote and deleted keys.
        var newer = new KeyLocation(SegmentId.From(2, 0), 16, 40, 0);
        keys.Set("overwritten"u8, newer, out _);
        keys.Remove("deleted"u8, out _);

        Assert.Equal(3, r.Relocations.Count);
        var applied = r.Relocations.Count(x => keys.CompareAndSet(x.Key, x.From, x.To));
        Assert.Equal(1, applied);

        Assert.True(keys.TryGet("stay"u8, out var stay));
        Assert.Equal(r.Outputs[0].Id, stay.Segment);
        Assert.True(keys.TryGet("overwritten"u8, out var ow));
        Assert.Equal(newer, ow);
        Assert.False(keys.TryGet("deleted"u8, out _));

        // The relocation points at the very record, byte for byte.
        var buffer = new byte[stay.Size];
        Assert.Equal((int)stay.Size, r.Outputs[0].ReadAt(buffer, stay.Offset));
        Assert.True(RecordCodec.TryReadHeader(buffer, out var h) && RecordCodec.Verify(buffer, h));
        Assert.Equal("stay"u8.ToArray(), RecordCodec.KeyOf(buffer, h).ToArray());
        Assert.Equal("s"u8.ToArray(), RecordCodec.DecodeValue(buffer, h));
    }

    [Fact]
    public void OutputsAreNamedAfterLastInputSequenceWithSubsAndHaveHints()
    {
        var value = new string('v', 100);
        var s1 = Segment(1, 0, Enumerable.Range(0, 10).Select(i => Put($"a{i}", value)).ToArray());
        var s2 = Segment(2, 0, Enumerable.Range(0, 10).Select(i => Put($"b{i}", value)).ToArray());
        var s3 = Segment(3, 0, Enumerable.Range(0, 10).Select(i => Put($"c{i}", value)).ToArray());

        var r = Merge([s1, s2, s3], olderExist: false, maxSegmentBytes: 1024);

        Assert.True(r.Outputs.Count >= 3);
        Assert.Equal(Enumerable.Range(1, r.Outputs.Count).Select(sub => SegmentId.From(3, sub)), r.Outputs.Select(o => o.Id));
        Assert.All(r.Outputs, o =>
        {
            Assert.True(o.Id.CompareTo(s3.Id) > 0 && o.Id.CompareTo(SegmentId.From(4, 0)) < 0);
            Assert.Equal(Path.Combine(_dir.Path, o.Id.DataFileName), o.Path);
            Assert.True(File.Exists(o.Path));
            Assert.True(o.Length <= 1024);
            Assert.Equal(new FileInfo(o.Path).Length, o.Length);
            var hint = Path.Combine(_dir.Path, o.Id.HintFileName);
            var entries = new List<(string, uint, uint)>();
            Assert.True(HintFile.TryLoad(FileLayer.Default, hint, o.Id, o.Length, (in HintEntry e) => entries.Add((Encoding.UTF8.GetString(e.Key), e.Offset, e.Size)), out var why), why);
            Assert.Equal(ReadRecords(o.Path).Select(x => (x.Key, (uint)x.Offset, (uint)x.Size)), entries);
        });
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.tmp"));
        Assert.Equal(30, r.Outputs.Sum(o => ReadRecords(o.Path).Count));
        Assert.Equal(r.Outputs.Sum(o => o.Length), r.BytesAfter);
        Assert.Equal(s1.Length + s2.Length + s3.Length, r.BytesBefore);
    }

    [Fact]
    public void MergeEndingAtAMergeOutputContinuesItsSubNumbers()
    {
        var s = Segment(3, 2, Put("a", "1"));

        var r = Merge([s], olderExist: false);

        Assert.Equal(SegmentId.From(3, 3), Assert.Single(r.Outputs).Id);
    }

    [Fact]
    public void MergeWhoseOutputIdIsTakenChangesNothing()
    {
        // A previous merge left 3/1 and 3/2 (8 equal records each, each with its hint). A run of
        // [3/1] alone would need an id after 3/1 and before 3/2: there is none, and 3/2 and its
        // hint must not be touched.
        var first = Merge([Segment(3, 0, Enumerable.Range(0, 16).Select(i => Put($"k{i:D2}", new string('v', 100))).ToArray())], olderExist: false, maxSegmentBytes: 1024);
        Assert.Equal([SegmentId.From(3, 1), SegmentId.From(3, 2)], first.Outputs.Select(o => o.Id));
        Assert.Equal(first.Outputs[0].Length, first.Outputs[1].Length);
        var s30 = _open.Single(s => s.Id == SegmentId.From(3, 0));
        _open.Remove(s30);
        Merger.DeleteInputs(FileLayer.Default, _dir.Path, [s30]);
        var before = Snapshot(_dir.Path);

        Assert.ThrowsAny<Exception>(() => Merge([first.Outputs[0]], olderExist: false));

        AssertUnchanged(before, Snapshot(_dir.Path));
        foreach (var s in _open)
        {
            s.Dispose();
        }
        _open.Clear();
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        for (var i = 0; i < 16; i++)
        {
            Assert.Equal(new string('v', 100), store.GetString($"k{i:D2}"));
        }
    }

    [Fact]
    public void BatchFramingIsDroppedFromCopiedRecords()
    {
        var s1 = Segment(1, 0,
            new Op("x", "1", 0, RecordFlags.InBatch), new Op("y", "2", 0, RecordFlags.InBatch), new Op("z", "3", 0, RecordFlags.InBatch | RecordFlags.BatchEnd));
        var s2 = Segment(2, 0, Put("y", "new"));

        var r = Merge([s1, s2], olderExist: false);

        // Only x and z survive from the batch: written as plain records, not a broken batch.
        Assert.Equal([("x", (string?)"1", RecordFlags.None), ("z", "3", RecordFlags.None), ("y", "new", RecordFlags.None)], Contents(Assert.Single(r.Outputs)));
    }

    [Fact]
    public void InputsMustBeInAscendingIdOrder()
    {
        var s1 = Segment(1, 0, Put("a", "1"));
        var s2 = Segment(2, 0, Put("b", "1"));

        Assert.Throws<ArgumentException>(() => Merge([s2, s1], olderExist: false));
        Assert.Throws<ArgumentException>(() => Merge([s1, s1], olderExist: false));
        Assert.Empty(Merge([], olderExist: false).Outputs);
    }

    [Fact]
    public void CorruptInputAbortsTheMergeAndLeavesNoOutputs()
    {
        var s1 = Segment(1, 0, Enumerable.Range(0, 20).Select(i => Put($"a{i}", new string('v', 100))).ToArray());
        var s2 = Segment(2, 0, Put("b", "1"), Put("c", "2"));
        var bad = ReadRecords(s2.Path).Single(x => x.Key == "c");
        FlipByte(s2.Path, bad.ValueOffset);
        var before = Snapshot(_dir.Path);

        var e = Assert.Throws<CorruptSegmentException>(() => Merge([s1, s2], olderExist: false, maxSegmentBytes: 1024));

        Assert.Equal(s2.Path, e.Path);
        Assert.Equal(bad.Offset, e.Offset);
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    [Fact]
    public void ProgressReachesTheEnd()
    {
        var s1 = Segment(1, 0, Put("a", "1"));
        var s2 = Segment(2, 0, Put("b", "2"));
        var reports = new List<MergeProgress>();

        Merger.Run(FileLayer.Default, new MergeRequest(_dir.Path, [s1, s2], false, Now, 1 << 20), new SyncProgress(reports)).Outputs.ForEach(_open.Add);

        Assert.Equal(4, reports.Count);
        Assert.Equal(1.0, reports[^1].Fraction);
        Assert.True(reports.Zip(reports.Skip(1)).All(p => p.First.BytesDone < p.Second.BytesDone));
    }

    private sealed class SyncProgress(List<MergeProgress> into) : IProgress<MergeProgress>
    {
        public void Report(MergeProgress value) => into.Add(value);
    }

    [Fact]
    public void MergedDirectoryReplaysToTheSameState()
    {
        var s1 = Segment(1, 0, Put("a", "1"), Put("b", "1"), Put("c", "1"));
        var s2 = Segment(2, 0, Put("a", "2"), Del("b"), Put("d", "2"));
        var s3 = Segment(3, 0, Put("e", "3"));

        var r = Merge([s1, s2], olderExist: false);
        Merger.DeleteInputs(FileLayer.Default, _dir.Path, [s2, s1]);
        _open.Remove(s1);
        _open.Remove(s2);
        _open.Remove(s3);
        s3.Dispose();
        foreach (var o in r.Outputs)
        {
            _open.Remove(o);
            o.Dispose();
        }

        Assert.Equal(["seg-00000002-000001.data", "seg-00000002-000001.hint", "seg-00000003-000000.data"],
            Directory.GetFiles(_dir.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal(1, store.LastRecovery.SegmentsFromHints);
        Assert.Equal("2", store.GetString("a"));
        Assert.Null(store.Get("b"));
        Assert.Equal("1", store.GetString("c"));
        Assert.Equal("2", store.GetString("d"));
        Assert.Equal("3", store.GetString("e"));
        Assert.Equal(4, store.Count);
    }

    [Fact]
    public void ExpiredPutIsNotDroppedWhileAnOlderSegmentCouldResurrectTheKey()
    {
        Segment(1, 0, Put("k", "old"));
        var s2 = Segment(2, 0, Put("k", "new", expiry: 1)); // expired long ago
        Segment(3, 0, Put("other", "x"));

        var r = Merge([s2], olderExist: true);
        Merger.DeleteInputs(FileLayer.Default, _dir.Path, [s2]);
        _open.Remove(s2);
        foreach (var s in _open)
        {
            s.Dispose();
        }
        _open.Clear();

        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Null(store.GetString("k")); // before the merge k was absent (its newest record expired)
        Assert.NotNull(r);
    }

    [Fact]
    public void ExpiredNewestPutIsDroppedWithoutOlderSegmentsAndHiddenByATombstoneWithThem()
    {
        Segment(1, 0, Put("k", "old"));
        var s2 = Segment(2, 0, Put("k", "new", expiry: Now - 10), Put("live", "x"));

        var without = Merge([s2], olderExist: false);
        Assert.Equal([("live", (string?)"x", RecordFlags.None)], Contents(Assert.Single(without.Outputs)));

        foreach (var o in without.Outputs)
        {
            _open.Remove(o);
            o.Dispose();
            File.Delete(o.Path);
            File.Delete(Path.Combine(_dir.Path, o.Id.HintFileName));
        }
        var with = Merge([s2], olderExist: true);
        var contents = Contents(Assert.Single(with.Outputs));
        Assert.Equal([("k", (string?)null, RecordFlags.Tombstone), ("live", "x", RecordFlags.None)], contents);
        Assert.Equal("k", Encoding.UTF8.GetString(Assert.Single(with.Expired).Key));
        Assert.DoesNotContain(with.Relocations, r => r.Key.SequenceEqual("k"u8.ToArray()));
    }

    [Fact]
    public void ApplyRelocationsMovesOnlyKeysStillAtTheirOldPlaceAndForgetsExpiredOnes()
    {
        var s1 = Segment(1, 0, Put("stay", "s"), Put("overwritten", "o"), Put("expired", "e", expiry: Now - 1));
        var recs = ReadRecords(s1.Path).ToDictionary(x => x.Key);
        var keys = new KeyDirectory();
        var usage = new SegmentUsage();
        foreach (var (k, rec) in recs)
        {
            keys.Set(Encoding.UTF8.GetBytes(k), new KeyLocation(s1.Id, (uint)rec.Offset, (uint)rec.Size, rec.Expiry), out _);
            usage.AddRecord(s1.Id, rec.Size, live: true);
        }
        var r = Merge([s1], olderExist: false);
        var newer = new KeyLocation(SegmentId.From(2, 0), 16, 40, 0);
        keys.Set("overwritten"u8, newer, out _);

        var moved = Merger.ApplyRelocations(keys, usage, [s1.Id], r);

        Assert.Equal(1, moved);
        var output = Assert.Single(r.Outputs);
        Assert.True(keys.TryGet("stay"u8, out var stay));
        Assert.Equal(output.Id, stay.Segment);
        Assert.True(keys.TryGet("overwritten"u8, out var ow));
        Assert.Equal(newer, ow);
        Assert.False(keys.TryGet("expired"u8, out _)); // it must not point into a deleted input
        Assert.Equal(default, usage.Of(s1.Id));
        Assert.Equal((output.Length - FormatConstants.FileHeaderSize, (long)stay.Size), usage.Of(output.Id));
    }

    /// <summary>
    /// An index holding <paramref name="segments"/> and their records, replayed with the
    /// partition's own rules (usage included). Not to be disposed: the segments are the test's.
    /// </summary>
    private static PartitionIndex Index(IReadOnlyList<Segment> segments)
    {
        var index = new PartitionIndex();
        foreach (var s in segments)
        {
            index.AddSealed(s);
            foreach (var r in ReadRecords(s.Path))
            {
                index.Apply(Encoding.UTF8.GetBytes(r.Key), new KeyLocation(s.Id, (uint)r.Offset, (uint)r.Size, r.Expiry),
                    (r.Flags & RecordFlags.Tombstone) != 0, Now);
            }
        }
        return index;
    }

    [Fact]
    public void A_merge_installed_in_steps_with_writes_between_them_ends_as_one_installed_at_once_followed_by_those_writes()
    {
        var rng = new Random(777);
        var active = SegmentId.From(900, 0);
        for (var round = 0; round < 40; round++)
        {
            var segments = RandomSegments(rng, round, maxSegments: 3, minOps: 1);
            var atOnce = Index(segments);
            var inSteps = Index(segments);
            var r = Merge(segments, olderExist: false, maxSegmentBytes: 300, live: LiveRecords.Of(atOnce.Keys, segments));
            // Writes that arrive while the merge is installed: puts into the active segment, deletes.
            var writes = Enumerable.Range(0, rng.Next(0, 30)).Select(i =>
                (Key: Encoding.UTF8.GetBytes("k" + rng.Next(0, 25)), Location: new KeyLocation(active, (uint)(16 + i * 40), 40, 0), Tombstone: rng.Next(0, 4) == 0)).ToList();

            atOnce.ApplyMerge(segments, r);
            foreach (var w in writes)
            {
                atOnce.Apply(w.Key, w.Location, w.Tombstone, Now);
            }

            var pending = inSteps.BeginMerge(segments, r);
            Assert.All(r.Outputs, o => Assert.True(inSteps.Segments.ContainsKey(o.Id))); // readable from the first step
            var next = 0;
            var done = false;
            while (!done)
            {
                for (var n = rng.Next(0, 4); n > 0 && next < writes.Count; n--, next++)
                {
                    inSteps.Apply(writes[next].Key, writes[next].Location, writes[next].Tombstone, Now);
                }
                Assert.All(segments, i => Assert.True(inSteps.Segments.ContainsKey(i.Id))); // the inputs stay readable until complete
                done = pending.Step(rng.Next(1, 4));
                // Between steps every segment's live bytes are those of the records the keys point at (stats stay exact).
                foreach (var id in segments.Select(i => i.Id).Concat(r.Outputs.Select(o => o.Id)))
                {
                    Assert.Equal(LiveBytesIn(inSteps, id), inSteps.Usage.Of(id).Live);
                }
            }
            for (; next < writes.Count; next++)
            {
                inSteps.Apply(writes[next].Key, writes[next].Location, writes[next].Tombstone, Now);
            }
            inSteps.CompleteMerge(pending);

            for (var k = 0; k < 25; k++)
            {
                var key = Encoding.UTF8.GetBytes("k" + k);
                Assert.Equal(atOnce.Keys.TryGet(key, out var a) ? a : (KeyLocation?)null, inSteps.Keys.TryGet(key, out var b) ? b : (KeyLocation?)null);
            }
            foreach (var id in r.Outputs.Select(o => o.Id).Concat(segments.Select(i => i.Id)).Append(active))
            {
                Assert.Equal(atOnce.Usage.Of(id), inSteps.Usage.Of(id));
                Assert.Equal(atOnce.Segments.ContainsKey(id), inSteps.Segments.ContainsKey(id));
            }
            // Live bytes are exactly those of the records the keys point at.
            foreach (var o in r.Outputs)
            {
                Assert.Equal(LiveBytesIn(inSteps, o.Id), inSteps.Usage.Of(o.Id).Live);
            }
        }
    }

    /// <summary>Bytes of the records in <paramref name="segment"/> that keys k0 … k24 of <paramref name="index"/> point at.</summary>
    private static long LiveBytesIn(PartitionIndex index, SegmentId segment)
    {
        long live = 0;
        for (var k = 0; k < 25; k++)
        {
            if (index.Keys.TryGet(Encoding.UTF8.GetBytes("k" + k), out var l) && l.Segment == segment)
            {
                live += l.Size;
            }
        }
        return live;
    }

    [Fact]
    public void An_install_completes_only_after_its_last_step_and_only_once()
    {
        var s1 = Segment(1, 0, Put("a", "1"), Put("b", "2"), Put("c", "3"));
        var index = Index([s1]);
        var r = Merge([s1], olderExist: false, live: LiveRecords.Of(index.Keys, [s1]));
        var pending = index.BeginMerge([s1], r);

        Assert.Throws<InvalidOperationException>(() => index.CompleteMerge(pending));
        Assert.False(pending.Step(2));
        Assert.True(pending.Step(2));
        index.CompleteMerge(pending);

        Assert.Equal(3, pending.Install.Moved);
        Assert.Throws<ObjectDisposedException>(() => pending.Step(1));
        Assert.Throws<ObjectDisposedException>(() => index.CompleteMerge(pending));
        Assert.False(index.Segments.ContainsKey(s1.Id));
    }

    // ------------------------------------------------------------------ through the store

    [Fact]
    public void StoreCompactReducesTotalBytesAndKeepsEveryValue()
    {
        var rng = new Random(31);
        var model = new Dictionary<string, string>();
        for (var session = 0; session < 4; session++)
        {
            Session(_dir.Path, s =>
            {
                for (var i = 0; i < 300; i++)
                {
                    var k = $"key{rng.Next(120)}";
                    if (rng.Next(6) == 0)
                    {
                        s.Delete(k);
                        model.Remove(k);
                    }
                    else
                    {
                        s.Put(k, model[k] = $"{k}@{session}.{i}:" + new string('x', rng.Next(50)));
                    }
                }
            }, Small() with { AutoCompact = false });
        }

        using (var store = EmbeddedStore.Open(_dir.Path, Small() with { AutoCompact = false }))
        {
            var before = store.GetStats();
            Assert.True(before.StaleBytes > 0);

            var outcome = store.Compact();

            var after = store.GetStats();
            Assert.True(after.TotalBytes < before.TotalBytes, $"{after.TotalBytes} !< {before.TotalBytes}");
            Assert.Equal(0, after.StaleBytes);
            Assert.Equal(1, after.Compactions);
            Assert.Equal(4, outcome.SegmentsMerged);
            Assert.True(outcome.RecordsDropped > 0);
            Assert.True(outcome.BytesAfter < outcome.BytesBefore);
            Assert.Equal(model.Count, store.Count);
            foreach (var (k, v) in model)
            {
                Assert.Equal(v, store.GetString(k));
            }
            for (var i = 0; i < 120; i++)
            {
                Assert.Equal(model.ContainsKey($"key{i}"), store.Get($"key{i}") is not null);
            }
            // Writes after the compaction land in a later segment and win.
            store.Put("key0", model["key0"] = "after");
        }

        Assert.Contains(SegmentFiles(_dir.Path), f => f.EndsWith("seg-00000004-000001.data", StringComparison.Ordinal));
        Assert.Single(Directory.GetFiles(_dir.Path, "seg-*.hint"));
        using var reopened = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal(1, reopened.LastRecovery.SegmentsFromHints);
        Assert.Equal(model.Count, reopened.Count);
        foreach (var (k, v) in model)
        {
            Assert.Equal(v, reopened.GetString(k));
        }
    }

    [Fact]
    public void StoreCompactWithNothingSealedIsANoOp()
    {
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        var outcome = store.Compact();
        Assert.Equal(0, outcome.SegmentsMerged);
        Assert.Equal(0, outcome.SegmentsWritten);
    }
}
