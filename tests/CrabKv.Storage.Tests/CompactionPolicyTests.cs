using CrabKv.Storage.Compaction;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>The merge heuristic: stale ratio ≥ 0.33 with more than 1 MiB, or more than 8 MiB stale.</summary>
public sealed class CompactionPolicyTests
{
    private const long MiB = 1L << 20;
    private static readonly CompactionThresholds D = CompactionThresholds.Default;

    [Fact]
    public void DefaultsAreTheDocumentedOnes()
    {
        Assert.Equal(0.33, D.StaleRatio);
        Assert.Equal(MiB, D.MinTotalBytes);
        Assert.Equal(8 * MiB, D.MaxStaleBytes);
        Assert.Equal(D, new StoreOptions().Compaction);
    }

    [Theory]
    // ratio rule, total just above 1 MiB
    [InlineData(3_000_000, 990_000, true)]     // exactly 0.33
    [InlineData(3_000_000, 989_999, false)]    // just below 0.33
    [InlineData(MiB + 1, MiB + 1, true)]       // all stale
    [InlineData(MiB + 1, (MiB + 1) / 2, true)]
    // total at the 1 MiB boundary: "more than" 1 MiB
    [InlineData(MiB, MiB, false)]
    [InlineData(MiB, MiB / 2, false)]
    [InlineData(MiB + 100, (MiB + 100) / 2, true)]
    // stale-bytes rule: more than 8 MiB, whatever the ratio
    [InlineData(1000 * MiB, 8 * MiB, false)]
    [InlineData(1000 * MiB, 8 * MiB + 1, true)]
    // nothing stale / nothing at all
    [InlineData(100 * MiB, 0, false)]
    [InlineData(0, 0, false)]
    [InlineData(500, 400, false)]              // tiny stores are left alone despite the ratio
    public void DefaultThresholdsAtAndAroundTheBoundaries(long total, long stale, bool expected)
    {
        Assert.Equal(expected, CompactionPolicy.ShouldCompact(D, total, stale));
    }

    [Fact]
    public void RatioBoundaryIsInclusiveForEveryTotal()
    {
        // For a sweep of totals, the smallest stale count that triggers is ceil(0.33 * total).
        for (var total = MiB + 1; total < MiB + 5000; total += 97)
        {
            var threshold = (long)Math.Ceiling(0.33 * total);
            Assert.True(CompactionPolicy.ShouldCompact(D, total, threshold), $"total {total}");
            Assert.False(CompactionPolicy.ShouldCompact(D, total, threshold - 1), $"total {total}");
        }
    }

    [Fact]
    public void CustomThresholdsAreHonoured()
    {
        var t = new CompactionThresholds(StaleRatio: 0.5, MinTotalBytes: 0, MaxStaleBytes: 100);
        Assert.True(CompactionPolicy.ShouldCompact(t, 10, 5));
        Assert.False(CompactionPolicy.ShouldCompact(t, 10, 4));
        Assert.True(CompactionPolicy.ShouldCompact(t, 1_000_000, 101));
        Assert.False(CompactionPolicy.ShouldCompact(t, 1_000_000, 100));
        var always = new CompactionThresholds(StaleRatio: 1, MinTotalBytes: 0, MaxStaleBytes: long.MaxValue);
        Assert.True(CompactionPolicy.ShouldCompact(always, 10, 10));
        Assert.False(CompactionPolicy.ShouldCompact(always, 10, 9));
    }

    [Theory]
    [InlineData(0.0, 0L, 1L, "StaleRatio")]
    [InlineData(-0.1, 0L, 1L, "StaleRatio")]
    [InlineData(1.0001, 0L, 1L, "StaleRatio")]
    [InlineData(double.NaN, 0L, 1L, "StaleRatio")]
    [InlineData(double.PositiveInfinity, 0L, 1L, "StaleRatio")]
    [InlineData(0.5, -1L, 1L, "MinTotalBytes")]
    [InlineData(0.5, 0L, 0L, "MaxStaleBytes")]
    [InlineData(0.5, 0L, -1L, "MaxStaleBytes")]
    public void ValidateRejectsBadValues(double ratio, long minTotal, long maxStale, string param)
    {
        var t = new CompactionThresholds(ratio, minTotal, maxStale);
        var e = Assert.Throws<ArgumentOutOfRangeException>(t.Validate);
        Assert.Equal(param, e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new StoreOptions { Compaction = t }.Validate());
    }

    [Theory]
    [InlineData(1.0, 0L, 1L)]
    [InlineData(0.0001, 0L, 1L)]
    [InlineData(0.33, 1L << 20, 8L << 20)]
    public void ValidateAcceptsGoodValues(double ratio, long minTotal, long maxStale)
    {
        new CompactionThresholds(ratio, minTotal, maxStale).Validate();
        Assert.True(CompactionPolicy.ShouldCompact(new CompactionThresholds(ratio, minTotal, maxStale), maxStale + minTotal + 1, maxStale + 1));
    }

    [Fact]
    public void StoreCompactsAutomaticallyWhenTheHeuristicSaysSo()
    {
        using var dir = new TempDirectory();
        var options = CorruptionHelpers.Small() with
        {
            MaxSegmentBytes = 4096,
            Compaction = new CompactionThresholds(StaleRatio: 0.5, MinTotalBytes: 0, MaxStaleBytes: 1L << 40),
        };
        using var store = EmbeddedStore.Open(dir.Path, options);
        var value = new byte[200];
        for (var round = 0; round < 20; round++)
        {
            for (var k = 0; k < 10; k++)
            {
                value[0] = (byte)round;
                store.Put($"k{k}", value);
            }
        }
        var stats = store.GetStats();
        Assert.True(stats.Compactions > 0);
        Assert.True(stats.StaleBytes <= stats.TotalBytes);
        for (var k = 0; k < 10; k++)
        {
            Assert.Equal(19, store.Get($"k{k}")![0]);
        }

        using var off = new TempDirectory();
        using var manual = EmbeddedStore.Open(off.Path, options with { AutoCompact = false });
        for (var round = 0; round < 20; round++)
        {
            for (var k = 0; k < 10; k++)
            {
                manual.Put($"k{k}", value);
            }
        }
        Assert.Equal(0, manual.GetStats().Compactions);
        Assert.True(manual.GetStats().TotalBytes > stats.TotalBytes);
    }
}
