using System.Text;
using CrabKv.Storage.Index;
using CrabKv.Storage.Partition;
using CrabKv.Storage.Recovery;
using CrabKv.Storage.Segments;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>
/// The open's apply queue (Recovery/ApplyQueue.cs): records applied a few behind the reader,
/// with their key-directory entries prefetched, must leave exactly the index that applying each
/// record at once leaves.
/// </summary>
public sealed class ApplyQueueTests
{
    [Fact]
    public void Queued_records_leave_the_same_index_as_records_applied_at_once()
    {
        var rng = new Random(77);
        const long now = 1_000_000;
        for (var round = 0; round < 20; round++)
        {
            var direct = new PartitionIndex();
            var queued = new PartitionIndex();
            var queue = new ApplyQueue(queued, now);
            // Few keys and many records: the same key is often several times in the queue at
            // once, so the order of application decides the result. Some keys are long (the
            // queue's key buffers grow), some records are tombstones or already expired.
            var count = rng.Next(1, 400);
            for (var i = 0; i < count; i++)
            {
                var key = Encoding.UTF8.GetBytes((rng.Next(0, 8) == 0 ? new string('x', rng.Next(60, 300)) : "k") + rng.Next(0, 12));
                var tombstone = rng.Next(0, 5) == 0;
                var expiry = rng.Next(0, 6) switch { 0 => now - 1, 1 => now + 10, _ => 0L };
                var location = new KeyLocation(SegmentId.From((uint)(1 + i / 50), 0), (uint)(16 + 40 * i), 40, expiry, tombstone);
                direct.Apply(key, location, tombstone, now);
                queue.Add(key, location, tombstone);
            }
            queue.Drain();

            Assert.Equal(direct.Keys.ToDictionary(), queued.Keys.ToDictionary());
            for (uint s = 1; s <= 8; s++)
            {
                Assert.Equal(direct.Usage.Of(SegmentId.From(s, 0)), queued.Usage.Of(SegmentId.From(s, 0)));
            }
        }
    }

    [Fact]
    public void Nothing_reaches_the_index_before_the_queue_is_full_or_drained()
    {
        var index = new PartitionIndex();
        var queue = new ApplyQueue(index, 0);
        for (var i = 0; i < 16; i++)
        {
            queue.Add(Encoding.UTF8.GetBytes($"k{i}"), new KeyLocation(SegmentId.From(1, 0), (uint)(16 + i), 1, 0), false);
        }
        Assert.Equal(0, index.Keys.Count); // all 16 still queued
        queue.Add("k16"u8, new KeyLocation(SegmentId.From(1, 0), 32, 1, 0), false);
        Assert.Equal(1, index.Keys.Count); // the oldest left to make room
        Assert.True(index.Keys.TryGet("k0"u8, out _));
        queue.Drain();
        Assert.Equal(17, index.Keys.Count);
    }
}
