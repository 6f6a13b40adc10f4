using System.Text;
using CrabKv.Storage.Index;
using CrabKv.Storage.Segments;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>The key directory (Index/KeyDirectory.cs): an open-addressing hash table of 32-byte entries with a key arena.</summary>
public sealed class KeyDirectoryTests
{
    private static byte[] K(string s) => Encoding.UTF8.GetBytes(s);

    private static KeyLocation Loc(uint seq, uint offset, uint size = 30, long expiry = 0) => new(SegmentId.From(seq, 0), offset, size, expiry);

    [Fact]
    public void Lookup_by_hash_finds_the_key_reports_absence_and_on_a_collision_gives_the_other_keys_slot()
    {
        var d = new KeyDirectory();
        var (a, b) = CrabKv.Storage.Tests.TestSupport.HashCollisions.Pair;
        Assert.False(d.TryGetByHash(K(a), out _));

        d.Set(K(a), Loc(1, 16), out _);
        Assert.True(d.TryGetByHash(K(a), out var got));
        Assert.Equal(Loc(1, 16), got);
        Assert.False(d.TryGetByHash(K("not-there"), out _));
        // b is absent, but shares a's hash and length: the lookup by hash gives a's slot,
        // which the caller's check against the record's key then rejects.
        Assert.True(d.TryGetByHash(K(b), out got));
        Assert.Equal(Loc(1, 16), got);
        Assert.False(d.TryGet(K(b), out _));

        d.Set(K(b), Loc(2, 32), out _); // probes past a's entry to the next free one
        Assert.True(d.TryGet(K(a), out got));
        Assert.Equal(Loc(1, 16), got);
        Assert.True(d.TryGet(K(b), out got));
        Assert.Equal(Loc(2, 32), got);
        Assert.True(d.TryGetByHash(K(b), out got));
        Assert.Equal(Loc(1, 16), got); // the first entry with the hash in the probe sequence: a's

        d.Remove(K(a), out _); // b's entry shifts back into a's place
        Assert.True(d.TryGetByHash(K(a), out got));
        Assert.Equal(Loc(2, 32), got);
        Assert.True(d.TryGet(K(b), out got));
        Assert.Equal(Loc(2, 32), got);
        Assert.False(d.TryGet(K(a), out _));
        d.Set(K(a), Loc(1, 16), out _);

        d.Remove(K(b), out _);
        Assert.True(d.TryGetByHash(K(a), out got));
        Assert.Equal(Loc(1, 16), got);
        d.Remove(K(a), out _);
        Assert.False(d.TryGetByHash(K(a), out _));
        Assert.False(d.TryGetByHash(K(b), out _));
    }

    [Fact]
    public void SetGetRemoveSemantics()
    {
        var d = new KeyDirectory();
        Assert.False(d.TryGet(K("a"), out _));

        Assert.False(d.Set(K("a"), Loc(1, 16), out _));
        Assert.True(d.TryGet(K("a"), out var got));
        Assert.Equal(Loc(1, 16), got);
        Assert.True(d.TryGet("a", out got));
        Assert.Equal(1, d.Count);
        Assert.Equal(1, d.KeyBytes);

        Assert.True(d.Set(K("a"), Loc(2, 50, 40, 999), out var previous));
        Assert.Equal(Loc(1, 16), previous);
        Assert.True(d.TryGet(K("a"), out got));
        Assert.Equal(Loc(2, 50, 40, 999), got);
        Assert.Equal(1, d.Count);

        Assert.True(d.Remove(K("a"), out previous));
        Assert.Equal(Loc(2, 50, 40, 999), previous);
        Assert.False(d.TryGet(K("a"), out _));
        Assert.False(d.Remove(K("a"), out _));
        Assert.Equal(0, d.Count);
        Assert.Equal(0, d.KeyBytes);
    }

    [Fact]
    public void KeysAreComparedAsBytesNotByHashOrPrefix()
    {
        var d = new KeyDirectory();
        d.Set(K("ab"), Loc(1, 1), out _);
        d.Set(K("abc"), Loc(1, 2), out _);
        d.Set(K("é"), Loc(1, 3), out _);
        Assert.True(d.TryGet(K("ab"), out var l) && l.Offset == 1);
        Assert.True(d.TryGet(K("abc"), out l) && l.Offset == 2);
        Assert.True(d.TryGet("é", out l) && l.Offset == 3);
        Assert.False(d.TryGet(K("a"), out _));
        Assert.False(d.TryGet(K("e"), out _));
        Assert.False(d.TryGet(K("ABC"), out _));
    }

    [Fact]
    public void CompareAndSetMovesOnlyAKeyStillAtTheExpectedPlace()
    {
        var d = new KeyDirectory();
        d.Set(K("stay"), Loc(1, 100), out _);
        d.Set(K("moved"), Loc(1, 200), out _);
        d.Set(K("removed"), Loc(1, 300), out _);
        d.Set(K("moved"), Loc(5, 16), out _);  // overwritten while a merge ran
        d.Remove(K("removed"), out _);

        Assert.True(d.CompareAndSet(K("stay"), Loc(1, 100), Loc(3, 16)));
        Assert.False(d.CompareAndSet(K("moved"), Loc(1, 200), Loc(3, 46)));
        Assert.False(d.CompareAndSet(K("removed"), Loc(1, 300), Loc(3, 76)));
        Assert.False(d.CompareAndSet(K("never"), Loc(1, 300), Loc(3, 76)));

        Assert.True(d.TryGet(K("stay"), out var l));
        Assert.Equal(Loc(3, 16), l);
        Assert.True(d.TryGet(K("moved"), out l));
        Assert.Equal(Loc(5, 16), l);
        Assert.False(d.TryGet(K("removed"), out _));
        Assert.False(d.TryGet(K("never"), out _));
        Assert.Equal(2, d.Count);
    }

    [Fact]
    public void A_location_scan_in_steps_misses_no_key_still_in_its_range_whatever_changes_between_steps()
    {
        var rng = new Random(2024);
        var (first, last, active) = (SegmentId.From(10, 0), SegmentId.From(12, 0), SegmentId.From(20, 0));
        var restarts = 0;
        var shifted = 0;
        for (var round = 0; round < 300; round++)
        {
            var d = new KeyDirectory(rng.Next(1, 48)); // small tables: growth during the scan
            var names = new List<string>();
            uint offset = 16;
            for (var i = 0; i < rng.Next(0, 200); i++)
            {
                var segment = rng.Next(0, 4) == 0 ? active : SegmentId.From((uint)rng.Next(10, 13), 0);
                d.Set(K("k" + i), new KeyLocation(segment, offset += 40, 40, 0), out _);
                names.Add("k" + i);
            }
            var before = InRange(d, first, last);

            var scan = d.BeginLocationsIn(first, last);
            Assert.Throws<InvalidOperationException>(() => d.BeginLocationsIn(first, last)); // one at a time
            var next = names.Count;
            var done = false;
            while (!done)
            {
                for (var n = rng.Next(0, 6); n > 0; n--)
                {
                    switch (rng.Next(0, 3))
                    {
                        case 0 when names.Count > 0: // delete: shifts later entries of its cluster back
                            var gone = names[rng.Next(names.Count)];
                            d.Remove(K(gone), out _);
                            names.Remove(gone);
                            break;
                        case 1 when names.Count > 0: // overwrite: the new record is in the active segment
                            d.Set(K(names[rng.Next(names.Count)]), new KeyLocation(active, offset += 40, 40, 0), out _);
                            break;
                        default: // a new key (may grow the table)
                            d.Set(K("k" + next), new KeyLocation(active, offset += 40, 40, 0), out _);
                            names.Add("k" + next++);
                            break;
                    }
                }
                done = scan.Step(rng.Next(1, 12));
            }
            restarts += scan.Restarts;

            var (segments, offsets, slots, count) = scan.Found;
            var found = Enumerable.Range(0, count).Select(i => (segments[i], offsets[i])).ToHashSet();
            var after = InRange(d, first, last);
            Assert.Superset(after, found);  // every key still in the range is named
            Assert.Subset(before, found);   // and nothing that was not there at the start
            shifted += count - found.Count + found.Count(f => !after.Contains(f));
            d.BeginLocationsIn(first, last).Cancel(); // the finished scan is forgotten: another may start
        }
        Assert.True(restarts > 0, "no table grew during a scan");
        Assert.True(shifted > 0, "no stale or repeated place was seen");
    }

    private static HashSet<(ulong, uint)> InRange(KeyDirectory d, SegmentId first, SegmentId last) =>
        d.ToDictionary().Values.Where(l => l.Segment.Value >= first.Value && l.Segment.Value <= last.Value).Select(l => (l.Segment.Value, l.Offset)).ToHashSet();

    [Fact]
    public void CompareAndSetAt_uses_the_slot_only_while_it_holds_the_expected_record_and_otherwise_looks_the_key_up()
    {
        var d = new KeyDirectory(16);
        for (var i = 0; i < 10; i++)
        {
            d.Set(K($"k{i}"), Loc(1, (uint)(16 + 40 * i)), out _);
        }
        d.Set(K("elsewhere"), Loc(2, 16), out _); // outside the range asked for
        var scan = d.BeginLocationsIn(SegmentId.From(1, 0), SegmentId.From(1, 0));
        Assert.True(scan.Step(int.MaxValue)); // the whole table in one step
        var (segments, offsets, slots, count) = scan.Found;
        Assert.Equal(10, count);
        Assert.All(segments[..count], s => Assert.Equal(SegmentId.From(1, 0).Value, s));
        var slotOf = Enumerable.Range(0, 10).ToDictionary(i => (int)((offsets[i] - 16) / 40), i => slots[i]);
        d.Remove(K("elsewhere"), out _);

        // The hinted entry still holds the record: moved through the slot.
        Assert.True(d.CompareAndSetAt(slotOf[3], K("k3"), Loc(1, 16 + 120), Loc(2, 16)));
        Assert.True(d.TryGet(K("k3"), out var k3) && k3 == Loc(2, 16));

        // A slot that now holds another key's record: the key is looked up instead, and only
        // the right key moves (k5 does not: it points elsewhere; k4's entry is untouched).
        Assert.True(d.CompareAndSetAt(slotOf[4], K("k5"), Loc(1, 16 + 200), Loc(2, 56)));
        Assert.True(d.TryGet(K("k4"), out var k4) && k4 == Loc(1, 16 + 160));
        Assert.True(d.TryGet(K("k5"), out var k5) && k5 == Loc(2, 56));

        // The key moved on since the hint was taken: nothing changes.
        d.Set(K("k6"), Loc(3, 16), out _);
        Assert.False(d.CompareAndSetAt(slotOf[6], K("k6"), Loc(1, 16 + 240), Loc(2, 96)));
        Assert.True(d.TryGet(K("k6"), out var k6) && k6 == Loc(3, 16));

        // The table grew (every entry rehashed) and a key was removed: stale hints fall back to lookups.
        for (var i = 10; i < 200; i++)
        {
            d.Set(K($"k{i}"), Loc(4, (uint)i), out _);
        }
        d.Remove(K("k7"), out _);
        Assert.False(d.CompareAndSetAt(slotOf[7], K("k7"), Loc(1, 16 + 280), Loc(2, 136)));
        Assert.False(d.TryGet(K("k7"), out _));
        Assert.True(d.CompareAndSetAt(slotOf[8], K("k8"), Loc(1, 16 + 320), Loc(2, 176)));
        Assert.True(d.TryGet(K("k8"), out var k8) && k8 == Loc(2, 176));
        Assert.True(d.CompareAndSetAt(-1, K("k9"), Loc(1, 16 + 360), Loc(2, 216)));
        Assert.True(d.TryGet(K("k9"), out var k9) && k9 == Loc(2, 216));
        Assert.Equal(199, d.Count);
    }

    [Fact]
    public void CompareAndSetComparesSegmentAndOffset()
    {
        var d = new KeyDirectory();
        d.Set(K("k"), Loc(2, 100), out _);
        Assert.False(d.CompareAndSet(K("k"), Loc(1, 100), Loc(9, 16))); // same offset, other segment
        Assert.False(d.CompareAndSet(K("k"), Loc(2, 101), Loc(9, 16))); // same segment, other offset
        Assert.True(d.TryGet(K("k"), out var l));
        Assert.Equal(Loc(2, 100), l);
        Assert.True(d.CompareAndSet(K("k"), Loc(2, 100, size: 1, expiry: 5), Loc(9, 16))); // size/expiry are not identity
        Assert.True(d.TryGet(K("k"), out l));
        Assert.Equal(Loc(9, 16), l);
    }

    [Fact]
    public void GrowsPastManyResizesAndEveryKeyIsFound()
    {
        const int n = 200_000;
        var d = new KeyDirectory(capacity: 4);
        for (var i = 0; i < n; i++)
        {
            Assert.False(d.Set(K($"key:{i}"), Loc((uint)(i % 7 + 1), (uint)i), out _));
        }
        Assert.Equal(n, d.Count);
        for (var i = 0; i < n; i++)
        {
            Assert.True(d.TryGet(K($"key:{i}"), out var l), $"key:{i}");
            Assert.Equal(Loc((uint)(i % 7 + 1), (uint)i), l);
        }
        Assert.False(d.TryGet(K($"key:{n}"), out _));
    }

    [Fact]
    public void RemovalsThenReinsertsReuseSlotsCorrectly()
    {
        const int n = 50_000;
        var d = new KeyDirectory();
        for (var i = 0; i < n; i++)
        {
            d.Set(K($"k{i}"), Loc(1, (uint)i), out _);
        }
        for (var i = 0; i < n; i += 2)
        {
            Assert.True(d.Remove(K($"k{i}"), out var prev));
            Assert.Equal((uint)i, prev.Offset);
        }
        Assert.Equal(n / 2, d.Count);
        var allocated = d.AllocatedBytes;
        for (var i = 0; i < n; i += 2)
        {
            Assert.False(d.Set(K($"new{i}"), Loc(2, (uint)i), out _));
        }
        Assert.Equal(n, d.Count);
        Assert.Equal(allocated, d.AllocatedBytes); // freed slots were reused: no growth
        for (var i = 0; i < n; i++)
        {
            Assert.Equal(i % 2 == 1, d.TryGet(K($"k{i}"), out var l));
            if (i % 2 == 1)
            {
                Assert.Equal(Loc(1, (uint)i), l);
            }
            else
            {
                Assert.True(d.TryGet(K($"new{i}"), out l));
                Assert.Equal(Loc(2, (uint)i), l);
            }
        }
    }

    [Fact]
    public void RemoveExpiredRemovesExactlyKeysExpiredAtNow()
    {
        var d = new KeyDirectory();
        d.Set(K("never"), Loc(1, 1, expiry: 0), out _);
        d.Set(K("past"), Loc(1, 2, expiry: 500), out _);
        d.Set(K("now"), Loc(1, 3, expiry: 1000), out _);
        d.Set(K("future"), Loc(1, 4, expiry: 1001), out _);

        var expired = d.RemoveExpired(1000);

        Assert.Equal(["now", "past"], expired.Select(e => Encoding.UTF8.GetString(e.Key)).Order());
        Assert.Equal(1000, expired.Single(e => e.Key.SequenceEqual(K("now"))).Location.Expiry);
        Assert.Equal(["future", "never"], d.ToDictionary().Keys.Order());
        Assert.Empty(d.RemoveExpired(1000));
        Assert.Single(d.RemoveExpired(1001));
        Assert.Equal(1, d.Count);
    }

    [Fact]
    public void RemoveExpiredHonoursItsMaximum()
    {
        var d = new KeyDirectory();
        for (var i = 0; i < 10; i++)
        {
            d.Set(K($"k{i}"), Loc(1, (uint)i, expiry: 10), out _);
        }
        Assert.Equal(3, d.RemoveExpired(100, max: 3).Count);
        Assert.Equal(7, d.Count);
        Assert.Equal(7, d.RemoveExpired(100).Count);
        Assert.Equal(0, d.Count);
    }

    [Fact]
    public void ToDictionaryAndForEachListEveryLiveKeyOnce()
    {
        var d = new KeyDirectory();
        var expected = new Dictionary<string, KeyLocation>();
        for (var i = 0; i < 1000; i++)
        {
            d.Set(K($"k{i}"), expected[$"k{i}"] = Loc(1, (uint)i), out _);
        }
        for (var i = 0; i < 1000; i += 3)
        {
            d.Remove(K($"k{i}"), out _);
            expected.Remove($"k{i}");
        }
        d.Set(K("k1"), expected["k1"] = Loc(9, 9), out _);

        Assert.Equal(expected, d.ToDictionary());
        var visits = 0;
        d.ForEach((key, loc) =>
        {
            visits++;
            Assert.Equal(expected[Encoding.UTF8.GetString(key)], loc);
        });
        Assert.Equal(expected.Count, visits);
    }

    [Theory]
    [InlineData(1000)]
    [InlineData(4096)]
    [InlineData(65535)]
    public void LongKeysAreStoredAndFound(int length)
    {
        var d = new KeyDirectory();
        var keys = Enumerable.Range(0, 20).Select(i => $"{i:D4}" + new string((char)('a' + i), length - 4)).ToList();
        for (var i = 0; i < keys.Count; i++)
        {
            d.Set(K(keys[i]), Loc(1, (uint)i), out _);
        }
        for (var i = 0; i < keys.Count; i++)
        {
            Assert.True(d.TryGet(keys[i], out var l)); // string overload: the heap path beyond 512 bytes
            Assert.Equal((uint)i, l.Offset);
            Assert.True(d.TryGet(K(keys[i]), out _));
        }
        Assert.Equal(20L * length, d.KeyBytes);
        // Same long prefix, different last byte: not equal.
        Assert.False(d.TryGet(keys[0][..^1] + "#", out _));
    }

    [Fact]
    public void KeysOutsideOneTo65535BytesAreRejected()
    {
        var d = new KeyDirectory();
        Assert.Throws<ArgumentException>(() => d.Set([], Loc(1, 1), out _));
        Assert.Throws<ArgumentException>(() => d.Set(new byte[65536], Loc(1, 1), out _));
        Assert.Equal(0, d.Count);
    }

    [Fact]
    public void ArenaIsCompactedAfterManyRemovalsAndEveryKeyStaysCorrect()
    {
        const int n = 300_000;
        static string Key(int i) => $"user:{i:D9}:profile-settings-abcdefgh"; // 40 bytes
        Assert.Equal(40, Key(0).Length);
        var d = new KeyDirectory();
        for (var i = 0; i < n; i++)
        {
            d.Set(K(Key(i)), Loc(1, (uint)i), out _);
        }
        var before = d.AllocatedBytes;

        for (var i = 0; i < n; i++)
        {
            if (i % 10 != 0)
            {
                Assert.True(d.Remove(K(Key(i)), out _));
            }
        }

        // 12 MB of keys, 90% dead: the arena was rebuilt (pages are 1 MiB; slots do not shrink).
        Assert.Equal(n / 10, d.Count);
        Assert.Equal(n / 10 * 40L, d.KeyBytes);
        Assert.True(before - d.AllocatedBytes >= 8L << 20, $"allocated {before} before, {d.AllocatedBytes} after");
        for (var i = 0; i < n; i += 10)
        {
            Assert.True(d.TryGet(K(Key(i)), out var l), Key(i));
            Assert.Equal((uint)i, l.Offset);
        }

        for (var i = 0; i < n; i++)
        {
            if (i % 10 != 0)
            {
                Assert.False(d.Set(K(Key(i)), Loc(2, (uint)i), out _));
            }
        }
        Assert.Equal(n, d.Count);
        for (var i = 0; i < n; i++)
        {
            Assert.True(d.TryGet(K(Key(i)), out var l), Key(i));
            Assert.Equal(i % 10 == 0 ? Loc(1, (uint)i) : Loc(2, (uint)i), l);
        }
        Assert.False(d.TryGet(K(Key(n)), out _));
    }

    [Fact]
    public void Random_sets_and_removes_agree_with_a_dictionary_through_wrapped_clusters_and_growth()
    {
        // A small key space over a table that starts at 16 entries: probe clusters wrap around
        // the table's end and removals shift entries back, thousands of times.
        var random = new Random(1234);
        var d = new KeyDirectory(capacity: 1);
        var model = new Dictionary<string, KeyLocation>();
        for (var step = 0; step < 40_000; step++)
        {
            var key = $"k{random.Next(step < 20_000 ? 300 : 3_000)}";
            if (random.Next(3) == 0)
            {
                Assert.Equal(model.Remove(key, out var was), d.Remove(K(key), out var removed));
                if (was != default)
                {
                    Assert.Equal(was, removed);
                }
            }
            else
            {
                var location = Loc((uint)random.Next(1, 9), (uint)step);
                Assert.Equal(model.ContainsKey(key), d.Set(K(key), location, out _));
                model[key] = location;
            }
            if (step % 5_000 == 0 || step == 39_999)
            {
                Assert.Equal(model.Count, d.Count);
                Assert.Equal(model, d.ToDictionary());
                foreach (var (k, l) in model)
                {
                    Assert.True(d.TryGet(K(k), out var got), k);
                    Assert.Equal(l, got);
                    Assert.True(d.TryGetByHash(K(k), out _), k);
                }
            }
        }
        Assert.Equal(model.Keys.Sum(k => (long)k.Length), d.KeyBytes);
    }

    [Fact]
    public void A_directory_presized_for_n_keys_takes_n_keys_without_growing()
    {
        var d = new KeyDirectory(capacity: 10_000);
        d.Set(K("0"), Loc(1, 0), out _); // the arena's first page comes with the first key
        var allocated = d.AllocatedBytes;
        for (var i = 1; i < 10_000; i++)
        {
            d.Set(K($"{i}"), Loc(1, (uint)i), out _); // short keys: the arena's first page suffices
        }
        Assert.Equal(allocated, d.AllocatedBytes);
        // The table (16,384 entries for 10,000 keys at a load of at most 3/4) doubles at 12,288 keys.
        var grewAt = -1;
        for (var i = 10_000; i < 20_000 && grewAt < 0; i++)
        {
            d.Set(K($"{i}"), Loc(1, (uint)i), out _);
            grewAt = d.AllocatedBytes > allocated ? d.Count : -1;
        }
        Assert.Equal(12_289, grewAt);
        for (var i = 0; i < grewAt; i++)
        {
            Assert.True(d.TryGet(K($"{i}"), out var l));
            Assert.Equal((uint)i, l.Offset);
        }
    }
}
