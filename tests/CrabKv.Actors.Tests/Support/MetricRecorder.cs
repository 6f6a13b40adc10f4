using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using CrabKv.Actors.Diagnostics;
using Xunit;

namespace CrabKv.Actors.Tests.Support;

/// <summary>
/// Records every measurement of the <c>CrabKv</c> meter through a <see cref="MeterListener"/>
/// (what dotnet-counters and the OpenTelemetry SDK subscribe with). The meter is process-wide:
/// tests using this run in <see cref="MetricsCollection"/>, alone, so the numbers are theirs.
/// </summary>
public sealed class MetricRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<(string Name, double Value, KeyValuePair<string, object?>[] Tags)> _measurements = new();

    public MetricRecorder()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == CrabKvMetrics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => _measurements.Enqueue((instrument.Name, value, tags.ToArray())));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => _measurements.Enqueue((instrument.Name, value, tags.ToArray())));
        _listener.Start();
    }

    /// <summary>Every value recorded for <paramref name="name"/> whose tags include all of <paramref name="tags"/>.</summary>
    public IReadOnlyList<double> Values(string name, params (string Key, string Value)[] tags) =>
        _measurements
            .Where(m => m.Name == name && tags.All(t => m.Tags.Any(k => k.Key == t.Key && Equals(k.Value, t.Value))))
            .Select(m => m.Value)
            .ToList();

    /// <summary>The sum of a counter's increments (or of a histogram's values) with these tags.</summary>
    public double Sum(string name, params (string Key, string Value)[] tags) => Values(name, tags).Sum();

    /// <summary>The write-back dirty bytes as the observable instrument reports them now.</summary>
    public long DirtyBytes()
    {
        var before = _measurements.Count;
        _listener.RecordObservableInstruments();
        var observed = _measurements.Skip(before).Where(m => m.Name == CrabKvMetrics.DirtyBytesName).ToList();
        return (long)Assert.Single(observed).Value;
    }

    public void Dispose() => _listener.Dispose();
}

/// <summary>Tests of the process-wide meter run alone: no other test's store adds to their numbers.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MetricsCollection
{
    public const string Name = "CrabKv meter";
}
