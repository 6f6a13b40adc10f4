using System.Globalization;

namespace CrabKv.Benchmarks.Claims;

/// <summary>The first line of the `claims` and `scale` results: when, where, and how loaded the machine was.</summary>
internal static class RunHeader
{
    public static string Describe(string command) => string.Create(CultureInfo.InvariantCulture,
        $"`{command}`: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, .NET {Environment.Version}, server GC {System.Runtime.GCSettings.IsServerGC}, scratch {Path.GetTempPath()}, {LoadAverage()}");

    /// <summary>"load average 1.23 (1 min)" from /proc/loadavg, or "" elsewhere.</summary>
    public static string LoadAverage()
    {
        try
        {
            return "load average " + File.ReadAllText("/proc/loadavg").Split(' ')[0] + " (1 min)";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "load average unknown";
        }
    }
}
