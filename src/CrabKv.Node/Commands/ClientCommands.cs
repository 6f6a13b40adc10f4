using System.Text;
using System.Text.Json;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Node.Cli;
using CrabKv.Node.Hosting;
using CrabKv.Node.Output;

namespace CrabKv.Node.Commands;

/// <summary>The options every client command shares.</summary>
/// <param name="Node">The node to talk to.</param>
/// <param name="Timeout">Timeout of the connection and of each request.</param>
public sealed record ClientOptions(HostPort Node, TimeSpan Timeout);

/// <summary>
/// The client commands: each connects to a running node (<see cref="RemoteNode"/>), sends its
/// requests, prints its result on stdout and returns an exit code.
/// </summary>
public static class ClientCommands
{
    /// <summary><c>put KEY VALUE|--in FILE [--ttl D]</c>: prints OK.</summary>
    public static Task<int> PutAsync(ClientOptions o, string key, byte[] value, TimeSpan? ttl) => WithNode(o, async node =>
    {
        await node.Client.PutAsync(key, value, ttl);
        Consoles.Result("OK");
        return ExitCodes.Ok;
    });

    /// <summary>
    /// The bytes of <c>put --in FILE</c> (<c>-</c>: standard input), read before the node is
    /// contacted. More than a value can ever be (the format's limit) is refused without reading
    /// it all; the node refuses what passes its own <c>crabkv.limits.max-value-bytes</c>.
    /// </summary>
    public static byte[] ReadValue(string file)
    {
        const long limit = Storage.Format.FormatConstants.MaxValueBytes;
        try
        {
            if (file == "-")
            {
                using var stdin = Console.OpenStandardInput();
                return ReadAtMost(stdin, limit, "standard input");
            }
            if (Directory.Exists(file))
            {
                throw new CliException(ExitCodes.Error, $"--in: '{file}' is a directory, not a file");
            }
            using var stream = File.OpenRead(file);
            return ReadAtMost(stream, limit, $"'{file}'");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException(ExitCodes.Error, $"--in: cannot read '{file}': {e.Message}");
        }
    }

    private static byte[] ReadAtMost(Stream stream, long limit, string what)
    {
        var tooLarge = $"--in: {what} holds more than {limit:N0} bytes, more than any value can be (see crabkv.limits.max-value-bytes)";
        if (stream.CanSeek && stream.Length > limit)
        {
            throw new CliException(ExitCodes.Error, tooLarge);
        }
        using var copy = new MemoryStream();
        var buffer = new byte[81920];
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            if (copy.Length + read > limit)
            {
                throw new CliException(ExitCodes.Error, tooLarge);
            }
            copy.Write(buffer, 0, read);
        }
        return copy.ToArray();
    }

    /// <summary><c>get KEY [--out FILE]</c>: exactly the value's bytes on stdout (or in FILE); 1 when absent.</summary>
    public static Task<int> GetAsync(ClientOptions o, string key, string? outFile)
    {
        if (outFile is not null && Directory.Exists(outFile)) // checked before the node is asked: "access denied" would not say why
        {
            throw new CliException(ExitCodes.Error, $"--out {outFile}: is a directory; name the file to write the value to");
        }
        return WithNode(o, node => GetValueAsync(node, key, outFile));
    }

    private static async Task<int> GetValueAsync(RemoteNode node, string key, string? outFile)
    {
        var value = await node.Client.GetAsync(key);
        if (value is null)
        {
            Consoles.Note($"crabkv get: key '{key}' not found");
            return ExitCodes.NotFound;
        }
        if (outFile is not null)
        {
            try
            {
                await File.WriteAllBytesAsync(outFile, value);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliException(ExitCodes.Error, $"--out {outFile}: cannot write the value ({value.Length:N0} bytes) there: {e.Message}");
            }
            return ExitCodes.Ok;
        }
        using var stdout = Console.OpenStandardOutput();
        await stdout.WriteAsync(value);
        await stdout.FlushAsync();
        return ExitCodes.Ok;
    }

    /// <summary><c>del KEY</c>: prints "deleted"; 1 when the key did not exist.</summary>
    public static Task<int> DeleteAsync(ClientOptions o, string key) => WithNode(o, async node =>
    {
        if (!await node.Client.DeleteAsync(key))
        {
            Consoles.Note($"crabkv del: key '{key}' not found");
            return ExitCodes.NotFound;
        }
        Consoles.Result("deleted");
        return ExitCodes.Ok;
    });

    /// <summary><c>flush</c>: every partition writes its buffered entries and fsyncs.</summary>
    public static Task<int> FlushAsync(ClientOptions o) => WithNode(o, async node =>
    {
        await node.Client.FlushAsync();
        Consoles.Result("OK");
        return ExitCodes.Ok;
    });

    /// <summary><c>compact</c>: compacts every partition, with progress (the partitions' compaction progress, polled) on stderr.</summary>
    public static Task<int> CompactAsync(ClientOptions o) => WithNode(o, async node =>
    {
        var result = await ProgressDisplay.RunAsync(async progress =>
        {
            var task = progress.Start("compact", 100);
            // A compaction can take long: it gets an hour unless --timeout says more.
            var compact = node.Client.CompactAsync(o.Timeout > TimeSpan.FromHours(1) ? o.Timeout : TimeSpan.FromHours(1));
            // Merges run in steps and the partitions answer stats between them: a node that
            // answers no poll for --timeout has stopped (killed, or unreachable), and waiting
            // out the compaction's hour would only hide that.
            try
            {
                await NodeWatch.WhileAnswering(compact, async () =>
                {
                    var stats = await node.Client.GetStatsAsync();
                    if (stats.Partitions.Count > 0)
                    {
                        task.Set(100 * stats.Partitions.Average(p => p.CompactionProgress));
                    }
                }, TimeSpan.FromMilliseconds(500), o.Timeout);
            }
            catch (NodeWatch.SilentException e)
            {
                throw new CliException(ExitCodes.Unreachable,
                    $"the node at {o.Node} stopped answering during the compaction (nothing for {Durations.Format(e.Silence)}, --timeout {Durations.Format(o.Timeout)}); " +
                    "whether it finished is unknown: see `crabkv stats` once the node is back");
            }
            var r = await compact;
            task.Complete($"{r.SegmentsMerged} segments merged");
            return r;
        });
        // The node's own merge time; the progress line on stderr gives the command's wall time.
        Consoles.Result($"compacted {result.SegmentsMerged} segments: {result.BytesBefore:N0} → {result.BytesAfter:N0} bytes (merging took {result.Duration.TotalMilliseconds:N0} ms on the node)");
        return ExitCodes.Ok;
    });

    /// <summary><c>stats [--json]</c>: a table per partition and totals, or plain JSON.</summary>
    public static Task<int> StatsAsync(ClientOptions o, bool json) => WithNode(o, async node =>
    {
        var stats = await node.Client.GetStatsAsync();
        if (json)
        {
            Consoles.Result(StatsView.Json(node.Address, stats));
        }
        else
        {
            StatsView.Table(Consoles.Results, node.Address, stats);
        }
        return ExitCodes.Ok;
    });

    /// <summary>Connects, runs <paramref name="action"/>, disconnects; errors become <see cref="CliException"/>s.</summary>
    public static async Task<int> WithNode(ClientOptions o, Func<RemoteNode, Task<int>> action)
    {
        await using var node = await RemoteNode.ConnectAsync(o.Node, o.Timeout);
        try
        {
            return await action(node);
        }
        catch (Actors.Client.CrabKvRequestException e)
        {
            throw new CliException(ExitCodes.Error, $"the node refused the request: {e.Code}: {e.Message}");
        }
        catch (TimeoutException)
        {
            throw new CliException(ExitCodes.Unreachable, $"the node at {o.Node} did not answer within {Durations.Format(o.Timeout)} (--timeout): " +
                "it may still be starting (it answers once it prints `crabkv node ready`), be overloaded, or have lost a node of its cluster a moment ago");
        }
    }

    internal static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
}
