using System.Text;
using CrabKv.Storage.Format;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;
using static CrabKv.Storage.Tests.TestSupport.CorruptionHelpers;

namespace CrabKv.Storage.Tests;

/// <summary>FORMAT.md section 3, the <c>Compressed</c> flag: used only when it pays; readers follow the flag, never the option.</summary>
public sealed class CompressionTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static StoreOptions Opts(bool compression, int min = 256) => Small(compression) with { CompressionMinValueBytes = min };

    /// <summary>JSON-like text that Snappy shrinks a lot, distinct per index.</summary>
    private static byte[] Json(int i, int approxBytes = 2048)
    {
        var sb = new StringBuilder("{\"items\":[");
        for (var n = 0; sb.Length < approxBytes; n++)
        {
            sb.Append($"{{\"id\":{i * 1000 + n},\"name\":\"customer-{i}\",\"status\":\"active\",\"tags\":[\"alpha\",\"beta\"]}},");
        }
        sb.Append("]}");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private static byte[] Noise(Random rng, int length)
    {
        var b = new byte[length];
        rng.NextBytes(b);
        return b;
    }

    private static long SegmentBytes(string dir) => SegmentFiles(dir).Sum(f => new FileInfo(f).Length);

    [Fact]
    public void CompressibleValuesTakeFewerBytesOnDisk()
    {
        var on = Path.Combine(_dir.Path, "on");
        var off = Path.Combine(_dir.Path, "off");
        long totalOn = 0, totalOff = 0;
        foreach (var (dir, compression) in new[] { (on, true), (off, false) })
        {
            using var store = EmbeddedStore.Open(dir, Opts(compression));
            for (var i = 0; i < 100; i++)
            {
                store.Put($"doc-{i}", Json(i));
            }
            var total = store.GetStats().TotalBytes;
            if (compression) { totalOn = total; } else { totalOff = total; }
        }

        Assert.True(totalOn * 3 < totalOff, $"compressed {totalOn} bytes vs plain {totalOff}");
        Assert.True(SegmentBytes(on) * 3 < SegmentBytes(off), $"files: compressed {SegmentBytes(on)} vs plain {SegmentBytes(off)}");
        Assert.All(ReadRecords(SegmentFiles(on).Single()), r => Assert.Equal(RecordFlags.Compressed, r.Flags));
        Assert.All(ReadRecords(SegmentFiles(off).Single()), r => Assert.Equal(RecordFlags.None, r.Flags));
        using var reopened = EmbeddedStore.Open(on, Opts(true));
        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(Json(i), reopened.Get($"doc-{i}"));
        }
    }

    [Fact]
    public void IncompressibleValuesAreStoredPlain()
    {
        var rng = new Random(1234);
        var values = Enumerable.Range(0, 30).Select(_ => Noise(rng, 4096)).ToList();
        using (var store = EmbeddedStore.Open(_dir.Path, Opts(true)))
        {
            for (var i = 0; i < values.Count; i++)
            {
                store.Put($"noise-{i}", values[i]);
            }
            Assert.Equal(values.Select((v, i) => (long)RecordCodec.SizeOf($"noise-{i}".Length, v.Length)).Sum(), store.GetStats().TotalBytes);
        }

        var records = ReadRecords(SegmentFiles(_dir.Path).Single());
        Assert.Equal(30, records.Count);
        Assert.All(records, r =>
        {
            Assert.Equal(RecordFlags.None, r.Flags);
            Assert.Equal(4096, r.StoredValueLength);
        });
        using var reopened = EmbeddedStore.Open(_dir.Path, Opts(true));
        for (var i = 0; i < values.Count; i++)
        {
            Assert.Equal(values[i], reopened.Get($"noise-{i}"));
        }
    }

    [Theory]
    [InlineData(255, false)]
    [InlineData(256, true)]
    public void ValuesShorterThanMinValueBytesAreNeverCompressed(int length, bool compressed)
    {
        var value = Encoding.ASCII.GetBytes(new string('z', length));
        using (var store = EmbeddedStore.Open(_dir.Path, Opts(true, min: 256)))
        {
            store.Put("v", value);
            Assert.Equal(value, store.Get("v"));
        }

        var rec = Assert.Single(ReadRecords(SegmentFiles(_dir.Path).Single()));
        Assert.Equal(compressed ? RecordFlags.Compressed : RecordFlags.None, rec.Flags);
        Assert.Equal(compressed, rec.StoredValueLength < length);
    }

    [Fact]
    public void CompressionIsStrictlySmallerOrNotAtAll()
    {
        // The codec helper: a value whose Snappy form is not smaller is left alone.
        var rng = new Random(7);
        Assert.Null(ValueCompression.TryCompress(Noise(rng, 1000), 0));
        Assert.Null(ValueCompression.TryCompress([], 0));
        Assert.Null(ValueCompression.TryCompress(new byte[100], 101));
        var packed = ValueCompression.TryCompress(new byte[100], 100);
        Assert.NotNull(packed);
        Assert.True(packed.Length < 100);
        Assert.Equal(new byte[100], ValueCompression.Decompress(packed));
        Assert.Throws<InvalidDataException>(() => ValueCompression.Decompress([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]));
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void OptionCanChangeBetweenRunsAndEveryValueReads(bool first, bool second)
    {
        var rng = new Random(99);
        var model = new Dictionary<string, byte[]>();
        void Write(EmbeddedStore s, string prefix)
        {
            for (var i = 0; i < 40; i++)
            {
                var k = $"{prefix}-{i}";
                var v = (i % 3) switch { 0 => Json(i, 600), 1 => Noise(rng, 600), _ => Encoding.UTF8.GetBytes($"small-{i}") };
                s.Put(k, model[k] = v);
            }
        }
        Session(_dir.Path, s => Write(s, "a"), Opts(first));
        Session(_dir.Path, s =>
        {
            foreach (var (k, v) in model)
            {
                Assert.Equal(v, s.Get(k));
            }
            Write(s, "b");
            s.Put("a-0", model["a-0"] = Json(4242, 700)); // overwrite across options
        }, Opts(second));

        var flagsBySegment = SegmentFiles(_dir.Path).Select(f => ReadRecords(f).Any(r => r.Flags == RecordFlags.Compressed)).ToList();
        Assert.Equal([first, second], flagsBySegment);
        using var store = EmbeddedStore.Open(_dir.Path, Opts(first));
        foreach (var (k, v) in model)
        {
            Assert.Equal(v, store.Get(k));
        }
    }

    [Fact]
    public void SingleSegmentMixingCompressedAndPlainRecordsReadsCorrectly()
    {
        var rng = new Random(5);
        var model = new Dictionary<string, byte[]>();
        using (var store = EmbeddedStore.Open(_dir.Path, Opts(true)))
        {
            for (var i = 0; i < 60; i++)
            {
                var v = (i % 4) switch { 0 => Json(i, 1000), 1 => Noise(rng, 1000), 2 => [], _ => Encoding.UTF8.GetBytes($"tiny-{i}") };
                store.Put($"k{i}", model[$"k{i}"] = v);
            }
            // A batch mixes both kinds too.
            store.PutBatch([BatchEntry.Put("batch-json", model["batch-json"] = Json(77, 900)), BatchEntry.Put("batch-noise", model["batch-noise"] = Noise(rng, 900))]);
            foreach (var (k, v) in model)
            {
                Assert.Equal(v, store.Get(k)); // from the writer's buffer / file
            }
        }

        var records = ReadRecords(SegmentFiles(_dir.Path).Single());
        Assert.Equal(62, records.Count);
        Assert.Equal(16, records.Count(r => (r.Flags & RecordFlags.Compressed) != 0));
        Assert.Contains(records, r => r.Key == "batch-json" && r.Flags == (RecordFlags.Compressed | RecordFlags.InBatch));
        Assert.Contains(records, r => r.Key == "batch-noise" && r.Flags == (RecordFlags.InBatch | RecordFlags.BatchEnd));

        using var reopened = EmbeddedStore.Open(_dir.Path, Opts(false));
        Assert.Equal(model.Count, reopened.Count);
        foreach (var (k, v) in model)
        {
            Assert.Equal(v, reopened.Get(k));
        }
    }

    [Fact]
    public void CompactionCopiesCompressedRecordsByteForByte()
    {
        var rng = new Random(11);
        var model = new Dictionary<string, byte[]>();
        Session(_dir.Path, s =>
        {
            for (var i = 0; i < 50; i++)
            {
                s.Put($"k{i}", model[$"k{i}"] = i % 2 == 0 ? Json(i, 1500) : Noise(rng, 300));
            }
        }, Opts(true));
        Session(_dir.Path, s =>
        {
            for (var i = 0; i < 50; i += 5)
            {
                s.Put($"k{i}", model[$"k{i}"] = Json(i + 500, 1500)); // plain this time
            }
        }, Opts(false));
        var storedBefore = SegmentFiles(_dir.Path).SelectMany(ReadRecords)
            .GroupBy(r => r.Key).ToDictionary(g => g.Key, g => g.Last());

        using (var store = EmbeddedStore.Open(_dir.Path, Opts(true)))
        {
            var before = store.GetStats().TotalBytes;
            var outcome = store.Compact();
            Assert.Equal(10, outcome.RecordsDropped);
            Assert.True(store.GetStats().TotalBytes < before);
            foreach (var (k, v) in model)
            {
                Assert.Equal(v, store.Get(k));
            }
        }

        var output = SegmentFiles(_dir.Path).Single();
        var after = ReadRecords(output).ToDictionary(r => r.Key);
        Assert.Equal(model.Keys.Order(), after.Keys.Order());
        foreach (var (k, rec) in after)
        {
            Assert.Equal(storedBefore[k].Flags, rec.Flags);
            Assert.Equal(storedBefore[k].StoredValueLength, rec.StoredValueLength);
        }
        Assert.Contains(after.Values, r => r.Flags == RecordFlags.Compressed);
        Assert.Contains(after.Values, r => r.Flags == RecordFlags.None && r.StoredValueLength > 1000);
        using var reopened = EmbeddedStore.Open(_dir.Path, Opts(false));
        Assert.Equal(1, reopened.LastRecovery.SegmentsFromHints);
        foreach (var (k, v) in model)
        {
            Assert.Equal(v, reopened.Get(k));
        }
    }
}
