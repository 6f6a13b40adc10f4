using System.Text;
using CrabKv.Actors.Client;
using CrabKv.Node.Cli;
using CrabKv.Node.Output;

namespace CrabKv.Node.Commands;

/// <summary>
/// <c>crabkv load FILE</c>: one <c>KEY&lt;TAB&gt;VALUE</c> per line (UTF-8; the value is the rest of
/// the line after the first TAB and may be empty; empty lines are skipped; a trailing CR is
/// dropped). The whole file is checked first: a malformed line is reported with its number and
/// nothing is sent (exit 2). Then the lines are grouped by partition
/// (<see cref="KeyPartitioner.PartitionOf"/> with the node's partition count) and sent as
/// atomic <c>PutBatch</c>es of at most <see cref="ChunkEntries"/> entries / <see cref="ChunkBytes"/>
/// bytes, one batch in flight per partition (so a key written twice keeps the file's order) and
/// at most <see cref="Concurrency"/> partitions at once. Exit 0 only when every line is acknowledged.
/// </summary>
public static class Load
{
    /// <summary>Most entries in one batch.</summary>
    public const int ChunkEntries = 512;

    /// <summary>Most key and value bytes in one batch (well under the 32 MiB frame limit).</summary>
    public const int ChunkBytes = 4 * 1024 * 1024;

    /// <summary>Partitions loaded at once.</summary>
    public const int Concurrency = 8;

    private sealed record Line(int Number, string Key, byte[] Value);

    /// <summary>Runs the command.</summary>
    public static async Task<int> RunAsync(ClientOptions o, string file)
    {
        var lines = Parse(file);
        return await ClientCommands.WithNode(o, async node =>
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // The node's partition count: its stats list every partition of the cluster.
            var partitions = (await node.Client.GetStatsAsync()).Partitions.Select(p => p.Partition).DefaultIfEmpty(0).Max() + 1;
            var groups = lines.GroupBy(l => KeyPartitioner.PartitionOf(l.Key, partitions)).ToList();
            var acknowledged = 0;
            var failures = new List<string>();
            await ProgressDisplay.RunAsync(async progress =>
            {
                var task = progress.Start($"load {Path.GetFileName(file)}", lines.Count);
                await Parallel.ForEachAsync(groups, new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (group, ct) =>
                {
                    foreach (var chunk in Chunks(group))
                    {
                        try
                        {
                            await node.Client.PutBatchAsync(chunk.Select(l => BatchEntry.Put(l.Key, l.Value)).ToList(), cancellationToken: ct);
                            Interlocked.Add(ref acknowledged, chunk.Count);
                            task.Increment(chunk.Count);
                        }
                        catch (Exception e) when (e is CrabKvRequestException or TimeoutException)
                        {
                            lock (failures)
                            {
                                failures.Add($"lines {chunk[0].Number}..{chunk[^1].Number} (partition {group.Key}, {chunk.Count} lines) not written: " +
                                             (e is CrabKvRequestException r ? $"{r.Code}: {r.Message}" : "no answer in time (--timeout)"));
                            }
                            return; // later chunks of this partition would overtake the failed one
                        }
                    }
                });
                task.Complete($"{acknowledged:N0} of {lines.Count:N0} lines acknowledged");
                return 0;
            });
            if (failures.Count > 0)
            {
                foreach (var f in failures.Order(StringComparer.Ordinal))
                {
                    Consoles.Note($"crabkv load: {f}");
                }
                throw new CliException(ExitCodes.Error, $"{acknowledged:N0} of {lines.Count:N0} lines acknowledged; the others were not written");
            }
            Consoles.Result($"loaded {lines.Count:N0} keys from {file} in {Durations.Format(clock.Elapsed)} ({groups.Count} partitions)");
            return ExitCodes.Ok;
        });
    }

    private static List<Line> Parse(string file)
    {
        if (Directory.Exists(file))
        {
            throw new CliException(ExitCodes.Error, $"'{file}' is a directory, not a file of KEY<TAB>VALUE lines");
        }
        if (!File.Exists(file))
        {
            throw new CliException(ExitCodes.Error, $"file '{file}' does not exist");
        }
        var result = new List<Line>();
        var number = 0;
        foreach (var raw in File.ReadLines(file, new UTF8Encoding(false, throwOnInvalidBytes: false)))
        {
            number++;
            var text = raw.EndsWith('\r') ? raw[..^1] : raw;
            if (text.Length == 0)
            {
                continue;
            }
            var tab = text.IndexOf('\t');
            if (tab < 0)
            {
                throw new CliException(ExitCodes.Error, $"{file}:{number}: no TAB between key and value (expected KEY<TAB>VALUE); nothing was sent");
            }
            if (tab == 0)
            {
                throw new CliException(ExitCodes.Error, $"{file}:{number}: empty key; nothing was sent");
            }
            result.Add(new Line(number, text[..tab], Encoding.UTF8.GetBytes(text[(tab + 1)..])));
        }
        return result;
    }

    private static IEnumerable<List<Line>> Chunks(IEnumerable<Line> lines)
    {
        var chunk = new List<Line>();
        var bytes = 0L;
        foreach (var line in lines)
        {
            var size = Encoding.UTF8.GetByteCount(line.Key) + line.Value.Length;
            if (chunk.Count > 0 && (chunk.Count >= ChunkEntries || bytes + size > ChunkBytes))
            {
                yield return chunk;
                chunk = new List<Line>();
                bytes = 0;
            }
            chunk.Add(line);
            bytes += size;
        }
        if (chunk.Count > 0)
        {
            yield return chunk;
        }
    }
}
