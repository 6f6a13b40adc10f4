using System.Diagnostics;
using System.Globalization;
using CrabKv.Benchmarks.Table;
using HdrHistogram;

namespace CrabKv.Benchmarks.Claims;

/// <summary>
/// Latencies of one phase of open-loop (paced) puts, in <see cref="Stopwatch"/> ticks, as
/// <see cref="Cell.NewHistogram"/> records them. Two histograms: <b>service</b> time (from the
/// call to its completion) and <b>response</b> time (from the moment the put was due by the
/// pacing schedule to its completion — what a caller arriving at a steady rate sees,
/// including the time it waited behind a blocked store; no coordinated omission).
/// Thread-safe: completions of the actor path record from many threads.
/// </summary>
internal sealed class LatencyRecorder
{
    private readonly object _gate = new();

    public LongHistogram Service { get; } = Cell.NewHistogram();

    public LongHistogram Response { get; } = Cell.NewHistogram();

    public long Completed { get; private set; }

    public long Errors;

    /// <summary>Timestamp of the last completion (for the achieved rate).</summary>
    public long LastCompletion { get; private set; }

    public void Record(long due, long started, long ended)
    {
        lock (_gate)
        {
            Service.RecordValue(Clamp(ended - started, Service));
            Response.RecordValue(Clamp(ended - due, Response));
            Completed++;
            if (ended > LastCompletion)
            {
                LastCompletion = ended;
            }
        }
    }

    private static long Clamp(long ticks, HistogramBase h) => Math.Clamp(ticks, 1, h.HighestTrackableValue);

    /// <summary>Milliseconds of a stopwatch tick count.</summary>
    public static double Ms(double ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    /// <summary>p50, p99, p99.9 and max of one histogram in µs for JSON (nulls when it is empty).</summary>
    public static object Json(HistogramBase h) => new
    {
        p50Micros = h.TotalCount == 0 ? null : JsonReport.Num(Ms(h.GetValueAtPercentile(50)) * 1000, 1),
        p99Micros = h.TotalCount == 0 ? null : JsonReport.Num(Ms(h.GetValueAtPercentile(99)) * 1000, 1),
        p999Micros = h.TotalCount == 0 ? null : JsonReport.Num(Ms(h.GetValueAtPercentile(99.9)) * 1000, 1),
        maxMicros = h.TotalCount == 0 ? null : JsonReport.Num(Ms(h.GetMaxValue()) * 1000, 1),
    };

    /// <summary>"p50 / p99 / p99.9 / max" in ms of one histogram.</summary>
    public static string Percentiles(HistogramBase h) => h.TotalCount == 0 ? "-" : string.Create(CultureInfo.InvariantCulture,
        $"{Ms(h.GetValueAtPercentile(50)):F3} / {Ms(h.GetValueAtPercentile(99)):F3} / {Ms(h.GetValueAtPercentile(99.9)):F3} / {Ms(h.GetMaxValue()):F1}");
}
