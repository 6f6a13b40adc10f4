using System.Globalization;
using System.Text;

namespace CrabKv.Benchmarks.Claims;

/// <summary>
/// `-- claims [--quick]`: the seed's two performance claims that no other row measures —
/// "async compaction: much lower latency" (<see cref="CompactionLatencyClaim"/>) and
/// "Snappy: 30–70% less disk for text/JSON" (<see cref="CompressionClaim"/>). Progress on
/// stderr, results as markdown on stdout. Scratch data under the temp directory, deleted at the end.
/// </summary>
internal static class ClaimsMeasurement
{
    public static int Run(string[] args)
    {
        var quick = args.Contains("--quick");
        var unknown = args.Where(a => a != "--quick").ToList();
        if (unknown.Count > 0)
        {
            Console.Error.WriteLine($"claims: unknown argument '{unknown[0]}' (usage: claims [--quick])");
            return 2;
        }
        var root = BenchData.NewTempDirectory("claims");
        var md = new StringBuilder();
        try
        {
            md.AppendLine(RunHeader.Describe("claims" + (quick ? " --quick" : "")));
            md.AppendLine();
            StderrProgress.Run(ctx =>
            {
                CompactionLatencyClaim.Print(CompactionLatencyClaim.Run(root, quick, ctx), md);
                CompressionClaim.Print(CompressionClaim.Run(root, quick, ctx), md);
                return 0;
            });
            md.AppendLine(CultureInfo.InvariantCulture, $"(finished {DateTime.UtcNow:HH:mm} UTC, {RunHeader.LoadAverage()})");
            return 0;
        }
        finally
        {
            Console.Out.Write(md.ToString());
            BenchData.DeleteDirectory(root);
        }
    }
}
