using System.Globalization;

namespace CrabKv.Benchmarks.Claims;

/// <summary>The first line of the `claims` and `scale` results: when, where, and how loaded the machine was.</summary>
internal static class RunHeader
{
    public static string Describe(string command) => string.Create(CultureInfo.InvariantCulture,
        $"`{command}`: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, .NET {Environment.Version}, server GC {System.Runtime.GCSettings.IsServerGC}, scratch {Path.GetTempPath()}, {LoadAverage()}");

    /// <summary>"load average 1.23 (1 min)" from /proc/loadavg (<see cref="JsonReport.LoadAverage1Min"/>), or "load average unknown".</summary>
    public static string LoadAverage() => JsonReport.LoadAverage1Min() is { } load
        ? "load average " + load.ToString("F2", CultureInfo.InvariantCulture) + " (1 min)"
        : "load average unknown";
}

