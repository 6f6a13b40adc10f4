using System.Text;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Files;
using CrabKv.Storage.Index;
using CrabKv.Storage.Segments;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>A merge's compact relocation list (Compaction/RelocationList.cs) gives back exactly what was added.</summary>
public sealed class RelocationListTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Relocations_read_back_as_added_across_key_pages_outputs_and_long_keys()
    {
        var inputs = Enumerable.Range(1, 3).Select(i =>
        {
            var w = SegmentWriter.Create(FileLayer.Default, _dir.Path, SegmentId.From((uint)i, 0), 4096, 0);
            return w.Seal();
        }).ToList();
        try
        {
            var list = new RelocationList(inputs, capacity: 4); // grows
            var expected = new List<Relocation>();
            var rng = new Random(5);
            for (var o = 0; o < 3; o++)
            {
                var output = SegmentId.From(3, o + 1);
                list.StartOutput(output);
                for (var i = 0; i < 4000; i++)
                {
                    // Mostly short keys, some up to 64 KiB: 1 MiB key pages fill and roll over.
                    var key = Encoding.UTF8.GetBytes($"k{o}-{i}-" + (rng.Next(50) == 0 ? new string('x', rng.Next(1000, 65000)) : ""));
                    var input = rng.Next(inputs.Count);
                    var from = new KeyLocation(inputs[input].Id, (uint)rng.Next(16, 1 << 30), (uint)rng.Next(20, 1 << 20), rng.Next(3) == 0 ? rng.NextInt64(1, long.MaxValue) : 0);
                    var toOffset = (uint)rng.Next(16, 1 << 30);
                    var slot = rng.Next(-1, 1 << 20);
                    list.Add(key, input, from, toOffset, slot);
                    expected.Add(new Relocation(key, from, new KeyLocation(output, toOffset, from.Size, from.Expiry), slot));
                }
            }

            Assert.Equal(expected.Count, list.Count);
            for (var i = 0; i < expected.Count; i++)
            {
                var e = expected[i];
                Assert.True(list.Key(i).SequenceEqual(e.Key));
                Assert.Equal(e.From, list.From(i));
                Assert.Equal(e.To, list.To(i));
                Assert.Equal(e.Slot, list.Slot(i));
                var r = list[i];
                Assert.Equal(e.Key, r.Key);
                Assert.Equal((e.From, e.To, e.Slot), (r.From, r.To, r.Slot));
            }
            Assert.Equal(expected.Count, list.Count());
            Assert.Throws<ArgumentOutOfRangeException>(() => list.From(expected.Count));
        }
        finally
        {
            inputs.ForEach(s => s.Dispose());
        }
    }
}
