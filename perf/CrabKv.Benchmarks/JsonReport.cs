using System.Diagnostics;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace CrabKv.Benchmarks;

/// <summary>
/// The <c>--json</c> output shared by the <c>table</c>, <c>claims</c>, <c>scale</c> and
/// <c>peers</c> commands: one indented JSON document on stdout that starts with the run's
/// metadata (<see cref="RunMetadata"/>) followed by the command's own figures. Property names
/// are camelCase with the unit in the name (<c>p99Micros</c>, <c>bytesPerKey</c>); a figure
/// that is not a finite number is <c>null</c>.
/// </summary>
internal static class JsonReport
{
    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        // '+', '→', 'µ' as they are: the document goes to a terminal or a file, never into HTML.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>
    /// The document: the metadata of <paramref name="run"/> (finished now) first, then every
    /// property of <paramref name="body"/> (an object whose properties become top-level properties).
    /// </summary>
    public static string Serialize(RunMetadata run, object body)
    {
        var document = JsonSerializer.SerializeToNode(run.Finish(), Options)!.AsObject();
        var figures = JsonSerializer.SerializeToNode(body, Options) as JsonObject
            ?? throw new ArgumentException($"the JSON body must serialize to an object, not {body.GetType().Name}.", nameof(body));
        foreach (var name in figures.Select(p => p.Key).ToList())
        {
            var value = figures[name];
            figures.Remove(name);
            document[name] = value;
        }
        return document.ToJsonString(Options);
    }

    /// <summary>Writes <see cref="Serialize"/>'s document and a newline on stdout.</summary>
    public static void Write(RunMetadata run, object body) => Console.Out.WriteLine(Serialize(run, body));

    /// <summary>
    /// Writes a command's human text (its markdown results): on stdout normally, on stderr
    /// beside the progress display when <paramref name="json"/> is set (stdout then holds only the JSON).
    /// </summary>
    public static void WriteText(string text, bool json) => (json ? Console.Error : Console.Out).Write(text);

    /// <summary>
    /// <paramref name="value"/> rounded to <paramref name="digits"/> decimals, or null when it is
    /// absent, NaN or infinite (JSON has no NaN).
    /// </summary>
    public static double? Num(double? value, int digits = 2) =>
        value is { } x && double.IsFinite(x) ? Math.Round(x, digits) : null;

    private static string? _commit;
    private static bool _commitKnown;

    /// <summary>The short commit of the working tree (git), or null.</summary>
    public static string? Commit()
    {
        if (_commitKnown)
        {
            return _commit;
        }
        _commitKnown = true;
        try
        {
            using var git = Process.Start(new ProcessStartInfo("git", "rev-parse --short HEAD")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = AppContext.BaseDirectory,
            });
            if (git is null)
            {
                return null;
            }
            var output = git.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit();
            return _commit = git.ExitCode == 0 && output.Length > 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no git on the machine
        }
    }

    /// <summary>The 1-minute load average from /proc/loadavg, or null where there is none.</summary>
    public static double? LoadAverage1Min()
    {
        try
        {
            return double.TryParse(File.ReadAllText("/proc/loadavg").Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var load) ? load : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}

/// <summary>
/// When and where a command ran, taken when it starts (<see cref="Start"/>) and completed when
/// its JSON is written: the first properties of every <c>--json</c> document.
/// </summary>
internal sealed class RunMetadata
{
    private readonly string _command;
    private readonly bool _quick;
    private readonly DateTime _started = DateTime.UtcNow;
    private readonly double? _loadAtStart = JsonReport.LoadAverage1Min();
    private readonly Stopwatch _watch = Stopwatch.StartNew();

    private RunMetadata(string command, bool quick)
    {
        _command = command;
        _quick = quick;
    }

    /// <summary>Starts the clock of a run of <paramref name="command"/> (the command line after <c>--</c>).</summary>
    public static RunMetadata Start(string command, bool quick) => new(command, quick);

    /// <summary>The metadata as of now (the property order is the order in the document).</summary>
    public object Finish() => new
    {
        command = _command,
        date = _started.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        finished = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        commit = JsonReport.Commit(),
        cores = Environment.ProcessorCount,
        os = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
        dotnetVersion = Environment.Version.ToString(),
        serverGc = System.Runtime.GCSettings.IsServerGC,
        loadAverage1MinAtStart = _loadAtStart,
        loadAverage1MinAtEnd = JsonReport.LoadAverage1Min(),
        quick = _quick,
        elapsedSeconds = Math.Round(_watch.Elapsed.TotalSeconds, 1),
    };
}
