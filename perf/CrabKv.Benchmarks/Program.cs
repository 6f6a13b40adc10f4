using System.Globalization;
using System.Text;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using CrabKv.Benchmarks;

// Usage (from the repository root):
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- --filter '*'            full suite
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- --quick --filter '*'    smoke run (1 warm-up + 3 iterations)
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- keydir [count]          key directory bytes/key
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- fsync [dir]             fdatasync / O_DSYNC / RWF_DSYNC latency floor
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- durable [rounds] [batches]  put/batch + fsync, one call vs two, interleaved
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- open [runs] [dir]        time opens of a 1M-key store with hints
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- transfer [MB] [runs] [chunk-KiB] [window]  partition move over loopback vs file copy
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- cluster [ops] [partitions]   puts/gets through a 2-node cluster vs the local store
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- handoff [MB] [partitions]   move partitions of MB megabytes by a graceful leave
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- footprint [partitions] [node|old] [writes]  disk and memory of an open store
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- claims [--quick] [--json]   the seed's async-compaction latency and Snappy disk claims, measured
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- scale [--keys N] [--quick] [--json]  10M keys: key directory, open with/without hints, compaction vs raw disk, write-back memory
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- table [--quick] [--json] [--columns a,b] [--rows x,y]  the seed's Phase-5 table, every column in one run
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- peers [--quick] [--json] [--peer NAME] [--row NAME]  FASTER, ZoneTree, RocksDB over the table's rows
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- client [seconds] [callers] [row] [client-only|actors-only|abba]  typed client vs client actors, same run (abba: both orders)
//   dotnet run -c Release --project perf/CrabKv.Benchmarks -- getcpu [rounds] [engine-ops]   CPU per get: engine vs FASTER, client actors vs Ask ceiling
// Every other argument goes to BenchmarkDotNet (--list flat, --filter, --join, ...).

if (args.Length > 0 && args[0] == "table")
{
    return await CrabKv.Benchmarks.Table.TableCommand.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "peers")
{
    return CrabKv.Benchmarks.Peers.PeersCommand.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "keydir")
{
    return KeyDirMeasurement.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "fsync")
{
    return FsyncProbe.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "durable")
{
    return DurableWriteMeasurement.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "open")
{
    return OpenMeasurement.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "footprint")
{
    return FootprintMeasurement.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "transfer")
{
    return TransferMeasurement.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "cluster")
{
    return ClusterMeasurement.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "client")
{
    return ClientMeasurement.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "getcpu")
{
    return GetCpuMeasurement.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "handoff")
{
    return HandoffMeasurement.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "claims")
{
    return CrabKv.Benchmarks.Claims.ClaimsMeasurement.Run(args[1..]);
}
if (args.Length > 0 && args[0] == "scale")
{
    return CrabKv.Benchmarks.Scale.ScaleMeasurement.Run(args[1..]);
}

var rest = new List<string>(args);
if (rest.Remove("--quick"))
{
    // Read by the job definitions (BenchJobs); inherited by BenchmarkDotNet's child processes.
    Environment.SetEnvironmentVariable(BenchData.QuickVariable, "1");
}

IConfig config = DefaultConfig.Instance;
if (!rest.Contains("--artifacts"))
{
    // Keep results beside the project (perf/CrabKv.Benchmarks/BenchmarkDotNet.Artifacts), not in the caller's directory.
    config = config.WithArtifactsPath(Path.Combine(ProjectDirectory(), "BenchmarkDotNet.Artifacts"));
}

var summaries = BenchmarkSwitcher.FromAssembly(typeof(BenchData).Assembly).Run([.. rest], config).ToList();
ThroughputReport.Print(summaries, config.ArtifactsPath);
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;

static string ProjectDirectory()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "CrabKv.Benchmarks.csproj")))
        {
            return dir.FullName;
        }
    }
    return Directory.GetCurrentDirectory();
}

namespace CrabKv.Benchmarks
{
    /// <summary>
    /// After the run: one table over every summary (BenchmarkDotNet prints one per class
    /// unless --join) with ops/s and the ratio to the Dictionary baseline when it ran too.
    /// Printed and written to results/throughput.md.
    /// </summary>
    internal static class ThroughputReport
    {
        public static void Print(IReadOnlyList<Summary> summaries, string? artifactsPath)
        {
            var rows = summaries
                .SelectMany(s => s.Reports)
                .Where(r => r.ResultStatistics is not null)
                .Select(r => (Case: r.BenchmarkCase, Mean: r.ResultStatistics!.Mean, StdDev: r.ResultStatistics.StandardDeviation,
                    Allocated: r.GcStats.GetBytesAllocatedPerOperation(r.BenchmarkCase)))
                .ToList();
            if (rows.Count == 0)
            {
                return;
            }
            var baseline = rows.FirstOrDefault(r => r.Case.Descriptor.Type == typeof(BaselineBenchmarks));
            var sb = new StringBuilder();
            sb.AppendLine("| row | mean per op | stddev | ops/s | allocated/op | time vs baseline |");
            sb.AppendLine("|---|---:|---:|---:|---:|---:|");
            foreach (var (c, mean, stdDev, allocated) in rows)
            {
                var name = c.Descriptor.WorkloadMethodDisplayInfo.Trim('\'');
                if (c.HasParameters)
                {
                    name += " " + c.Parameters.DisplayInfo;
                }
                var ratio = baseline.Case is null ? "-" : (mean / baseline.Mean).ToString("N1", CultureInfo.InvariantCulture) + "×";
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"| {name} | {Time(mean)} | {Time(stdDev)} | {OpsPerSecondColumn.Format(1e9 / mean)} | {(allocated is null ? "-" : allocated.Value.ToString("N0", CultureInfo.InvariantCulture) + " B")} | {ratio} |");
            }
            Console.WriteLine();
            Console.WriteLine("// * CrabKv throughput (Mean is per operation; ratio = Mean / baseline Mean) *");
            Console.WriteLine(sb.ToString());
            if (artifactsPath is not null)
            {
                var results = Path.Combine(artifactsPath, "results");
                Directory.CreateDirectory(results);
                var file = Path.Combine(results, "throughput.md");
                File.WriteAllText(file, sb.ToString());
                Console.WriteLine($"// written to {file}");
            }
        }

        private static string Time(double ns) => ns switch
        {
            >= 1e6 => (ns / 1e6).ToString("N2", CultureInfo.InvariantCulture) + " ms",
            >= 1e3 => (ns / 1e3).ToString("N2", CultureInfo.InvariantCulture) + " µs",
            _ => ns.ToString("N1", CultureInfo.InvariantCulture) + " ns",
        };
    }
}
