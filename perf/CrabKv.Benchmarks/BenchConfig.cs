using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Perfolizer.Horology;

namespace CrabKv.Benchmarks;

/// <summary>
/// The jobs. The Rust original (criterion) warmed up for 2 s and measured for 8 s.
/// BenchmarkDotNet counts iterations, not seconds, so: 4 warm-up + 16 measured iterations
/// of about 0.5 s each. <c>--quick</c> (<see cref="BenchData.Quick"/>) cuts that to 1 + 3.
/// </summary>
internal static class BenchJobs
{
    private static int Warmups => BenchData.Quick ? 1 : 4;
    private static int Iterations => BenchData.Quick ? 3 : 16;

    /// <summary>
    /// Steady state (random get): BenchmarkDotNet picks the invocations per iteration so
    /// that one iteration lasts <see cref="Job.Run"/>.IterationTime = 500 ms.
    /// </summary>
    public static Job Steady => Job.Default
        .WithId("Steady")
        .WithLaunchCount(1)
        .WithWarmupCount(Warmups)
        .WithIterationCount(Iterations)
        .WithIterationTime(TimeInterval.FromMilliseconds(BenchData.Quick ? 250 : 500));

    /// <summary>
    /// Writes into a fresh store: [IterationSetup] opens a new store in a new directory and
    /// [IterationCleanup] deletes it, so the store never grows across iterations. One
    /// invocation per iteration; each benchmark sizes its OperationsPerInvoke to take
    /// about 0.5 s on this machine.
    /// </summary>
    public static Job FreshStore => Job.Default
        .WithId("FreshStore")
        .WithLaunchCount(1)
        .WithWarmupCount(Warmups)
        .WithIterationCount(Iterations)
        .WithInvocationCount(1)
        .WithUnrollFactor(1);

    /// <summary>Open (recovery) of 1M keys: slow (about a second), so 1 warm-up and 5 measured opens.</summary>
    public static Job Open => Job.Default
        .WithId("Open")
        .WithLaunchCount(1)
        .WithWarmupCount(1)
        .WithIterationCount(BenchData.Quick ? 2 : 5)
        .WithInvocationCount(1)
        .WithUnrollFactor(1);
}

/// <summary>Common parts: memory diagnoser and the ops/s column.</summary>
internal abstract class BenchConfigBase : ManualConfig
{
    protected BenchConfigBase(Job job)
    {
        AddJob(job);
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(OpsPerSecondColumn.Instance);
    }
}

internal sealed class SteadyConfig : BenchConfigBase
{
    public SteadyConfig() : base(BenchJobs.Steady) { }
}

internal sealed class FreshStoreConfig : BenchConfigBase
{
    public FreshStoreConfig() : base(BenchJobs.FreshStore) { }
}

internal sealed class OpenConfig : BenchConfigBase
{
    public OpenConfig() : base(BenchJobs.Open) { }
}

/// <summary>
/// Throughput: 1 / Mean. Every benchmark sets OperationsPerInvoke, so Mean is the time of
/// one operation (one put, one get, one batch record, one put+get pair, one open).
/// </summary>
internal sealed class OpsPerSecondColumn : IColumn
{
    public static readonly OpsPerSecondColumn Instance = new();

    public string Id => "CrabKv.OpsPerSecond";
    public string ColumnName => "Ops/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Operations per second (1 / Mean; an operation is what OperationsPerInvoke counts)";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var mean = summary[benchmarkCase]?.ResultStatistics?.Mean;
        return mean is > 0 ? Format(1e9 / mean.Value) : "NA";
    }

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;

    public static string Format(double opsPerSecond) =>
        opsPerSecond.ToString(opsPerSecond >= 100 ? "N0" : "N2", System.Globalization.CultureInfo.InvariantCulture);

    public override string ToString() => ColumnName;
}
