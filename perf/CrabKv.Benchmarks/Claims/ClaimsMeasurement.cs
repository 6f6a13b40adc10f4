using System.Globalization;
using System.Text;

namespace CrabKv.Benchmarks.Claims;

/// <summary>
/// `-- claims [--quick] [--json]`: the seed's two performance claims that no other row measures —
/// "async compaction: much lower latency" (<see cref="CompactionLatencyClaim"/>) and
/// "Snappy: 30–70% less disk for text/JSON" (<see cref="CompressionClaim"/>). Progress on
/// stderr, results as markdown on stdout; with <c>--json</c>, one JSON document on stdout
/// (<see cref="JsonReport"/>) and the markdown on stderr. Scratch data under the temp directory, deleted at the end.
/// </summary>
internal static class ClaimsMeasurement
{
    private const string Usage = """
        usage: claims [--quick] [--json]
          --quick   96 MiB of stale data instead of 384 MiB, 2 s phases instead of 5 s, 20,000 puts per Snappy case, no repetitions (about 40 s)
          --json    print one JSON document on stdout (every figure of the markdown, run metadata first); the markdown goes to stderr
        """;

    public static int Run(string[] args)
    {
        if (args.Any(a => a is "-h" or "--help"))
        {
            Console.Error.WriteLine(Usage);
            return 0;
        }
        var quick = args.Contains("--quick");
        var json = args.Contains("--json");
        var unknown = args.Where(a => a is not ("--quick" or "--json")).ToList();
        if (unknown.Count > 0)
        {
            Console.Error.WriteLine($"claims: unknown argument '{unknown[0]}'.");
            Console.Error.WriteLine(Usage);
            return 2;
        }
        var run = RunMetadata.Start(string.Join(" ", ["claims", .. args]), quick);
        var root = BenchData.NewTempDirectory("claims");
        var md = new StringBuilder();
        object? figures = null;
        try
        {
            md.AppendLine(RunHeader.Describe("claims" + (quick ? " --quick" : "")));
            md.AppendLine();
            figures = StderrProgress.Run(ctx =>
            {
                var compaction = CompactionLatencyClaim.Run(root, quick, ctx);
                CompactionLatencyClaim.Print(compaction, md);
                var compression = CompressionClaim.Run(root, quick, ctx);
                CompressionClaim.Print(compression, md);
                return new
                {
                    scratchDirectory = Path.GetTempPath(),
                    asyncCompaction = CompactionLatencyClaim.Json(compaction),
                    snappy = CompressionClaim.Json(compression),
                };
            });
            md.AppendLine(CultureInfo.InvariantCulture, $"(finished {DateTime.UtcNow:HH:mm} UTC, {RunHeader.LoadAverage()})");
            return 0;
        }
        finally
        {
            JsonReport.WriteText(md.ToString(), json);
            if (json && figures is not null)
            {
                JsonReport.Write(run, figures);
            }
            BenchData.DeleteDirectory(root);
        }
    }
}
