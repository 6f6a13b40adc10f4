using System.Text;
using CrabKv.Actors.Client;
using CrabKv.Node.Cli;
using CrabKv.Node.Output;

namespace CrabKv.Node.Commands;

/// <summary>
/// <c>crabkv load FILE</c>: one <c>KEY&lt;TAB&gt;VALUE</c> per line (UTF-8; the value is the rest of
/// the line after the first TAB and may be empty; empty lines are skipped; a trailing CR is
/// dropped). The whole file is checked first, in one streaming pass: a malformed line is
/// reported with its number and nothing is sent (exit 2). A second pass streams the lines into
/// per-partition chunks (<see cref="KeyPartitioner.PartitionOf"/> with the node's partition
/// count), sent as atomic <c>PutBatch</c>es of at most <see cref="ChunkEntries"/> entries /
/// <see cref="ChunkBytes"/> bytes, one batch in flight per partition (so a key written twice keeps
/// the file's order) and at most <see cref="Concurrency"/> batches queued or in flight, so the
/// memory used is bounded by the chunks, not by the file. After a failed batch, the later lines
/// of its partition are not sent. Exit 0 only when every line is acknowledged.
/// </summary>
public static class Load
{
    /// <summary>Most entries in one batch.</summary>
    public const int ChunkEntries = 512;

    /// <summary>Most record bytes in one batch (well under the 32 MiB frame limit); fewer when the node's segments are smaller (a batch never spans two).</summary>
    public const int ChunkBytes = 4 * 1024 * 1024;

    /// <summary>Batches queued or in flight at once (across partitions).</summary>
    public const int Concurrency = 8;

    private sealed record Line(int Number, string Key, byte[] Value);

    /// <summary>Runs the command.</summary>
    public static async Task<int> RunAsync(ClientOptions o, string file)
    {
        // A pipe (`load /dev/stdin`, `load <(…)`) can be read once, and load reads twice (check,
        // then send): its bytes are first copied to a temporary file, deleted at the end.
        var spooled = SpoolIfNotSeekable(file);
        try
        {
            return await RunAsync(o, file, spooled ?? file);
        }
        finally
        {
            if (spooled is not null)
            {
                File.Delete(spooled);
            }
        }
    }

    private static string? SpoolIfNotSeekable(string file)
    {
        if (Directory.Exists(file) || !File.Exists(file))
        {
            return null; // Check names what is wrong
        }
        using var input = File.OpenRead(file);
        if (input.CanSeek)
        {
            return null;
        }
        var temp = Path.Combine(Path.GetTempPath(), $"crabkv-load-{Environment.ProcessId}-{Guid.NewGuid():N}.tsv");
        try
        {
            using var copy = new FileStream(temp, FileMode.CreateNew, FileAccess.Write);
            input.CopyTo(copy);
            return temp;
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private static async Task<int> RunAsync(ClientOptions o, string file, string path)
    {
        var (total, largestKey, largestValue) = Check(file, path);
        return await ClientCommands.WithNode(o, async node =>
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // The node's partition count: its stats list every partition of the cluster.
            Actors.StoreStats stats;
            try
            {
                stats = await node.Client.GetStatsAsync();
            }
            catch (TimeoutException)
            {
                throw new CliException(ExitCodes.Unreachable, $"the node at {o.Node} did not answer its stats (the partition count and limits load needs) within " +
                    $"{Durations.Format(o.Timeout)} (--timeout): nothing was sent. A node of its cluster may have been lost a moment ago, or the node is still starting");
            }
            var partitions = stats.Partitions.Select(p => p.Partition).DefaultIfEmpty(0).Max() + 1;
            // Its limits, before anything is sent: a line over them would fail its batch after
            // other partitions' batches were written.
            RefuseOverLimit(file, stats, "limits.max-key-bytes", "key", largestKey);
            RefuseOverLimit(file, stats, "limits.max-value-bytes", "value", largestValue);
            // A batch is never split across segments: with small segments, smaller batches.
            var segmentBytes = SmallestSetting(stats, "segment.max-bytes");
            var batchBytes = (int)Math.Min(ChunkBytes, segmentBytes - Storage.Format.FormatConstants.FileHeaderSize);
            var loader = new Loader(node.Client, partitions, batchBytes);
            await ProgressDisplay.RunAsync(async progress =>
            {
                var task = progress.Start($"load {Path.GetFileName(file)}", total);
                loader.Acknowledged = n => task.Increment(n);
                try
                {
                    foreach (var line in Lines(file, path, checkedBefore: true))
                    {
                        await loader.AddAsync(line);
                    }
                }
                catch (CliException)
                {
                    await loader.AbandonAsync(); // the file changed after the check: what was sent stays sent
                    throw;
                }
                await loader.FinishAsync();
                task.Complete($"{loader.AcknowledgedLines:N0} of {total:N0} lines acknowledged");
                return 0;
            });
            if (loader.Failures.Count > 0)
            {
                const int shown = 10; // one line per failed batch: a dead node fails every partition's
                foreach (var f in loader.Failures.Order(StringComparer.Ordinal).Take(shown))
                {
                    Consoles.Note($"crabkv load: {f}");
                }
                if (loader.Failures.Count > shown)
                {
                    Consoles.Note($"crabkv load: … and {loader.Failures.Count - shown} more batches like these");
                }
                throw loader.TimedOut
                    ? new CliException(ExitCodes.Unreachable, $"{loader.AcknowledgedLines:N0} of {total:N0} lines acknowledged; some batches got no answer from the node at {o.Node} within --timeout (it stopped or is overloaded, or their partitions were moving between nodes, which drops requests): " +
                                       "lines of batches without an answer may or may not be written, the lines never sent were not (read them back, or load the file again: a put is idempotent)")
                    : new CliException(ExitCodes.Error, $"{loader.AcknowledgedLines:N0} of {total:N0} lines acknowledged; the others were not written");
            }
            Consoles.Result($"loaded {total:N0} line{(total == 1 ? "" : "s")} (puts; a key on several lines keeps its last value) from {file} in {Durations.Format(clock.Elapsed)} ({loader.PartitionsUsed} partitions)");
            return ExitCodes.Ok;
        });
    }

    /// <summary>Throws when <paramref name="largest"/> (line, bytes) is over the smallest limit <paramref name="key"/> of the cluster's nodes.</summary>
    private static void RefuseOverLimit(string file, Actors.StoreStats stats, string key, string what, (int Line, long Bytes) largest)
    {
        var limit = SmallestSetting(stats, key);
        if (largest.Bytes > limit)
        {
            throw new CliException(ExitCodes.Error,
                $"{file}:{largest.Line}: {what} of {largest.Bytes:N0} bytes; the node's limit (crabkv.{key}) is {limit:N0}; nothing was sent");
        }
    }

    /// <summary>The smallest value of the byte setting <paramref name="key"/> over the nodes in <paramref name="stats"/>; <see cref="long.MaxValue"/> when none says.</summary>
    private static long SmallestSetting(Actors.StoreStats stats, string key) =>
        stats.Nodes.SelectMany(n => n.Configuration).Where(e => e.Key == key)
            .Select(e => long.TryParse(e.Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : long.MaxValue)
            .DefaultIfEmpty(long.MaxValue)
            .Min();

    /// <summary>
    /// The first pass: every line well formed (or the error naming the first bad one); returns
    /// the number of lines to load and the lines with the largest key and value (UTF-8 bytes).
    /// </summary>
    private static (int Count, (int Line, long Bytes) LargestKey, (int Line, long Bytes) LargestValue) Check(string file, string path)
    {
        if (Directory.Exists(file))
        {
            throw new CliException(ExitCodes.Error, $"'{file}' is a directory, not a file of KEY<TAB>VALUE lines");
        }
        if (!File.Exists(file))
        {
            throw new CliException(ExitCodes.Error, $"file '{file}' does not exist");
        }
        var count = 0;
        (int Line, long Bytes) largestKey = (0, 0), largestValue = (0, 0);
        foreach (var line in Lines(file, path))
        {
            count++;
            var keyBytes = Encoding.UTF8.GetByteCount(line.Key);
            if (keyBytes > largestKey.Bytes)
            {
                largestKey = (line.Number, keyBytes);
            }
            if (line.Value.Length > largestValue.Bytes)
            {
                largestValue = (line.Number, line.Value.Length);
            }
        }
        return (count, largestKey, largestValue);
    }

    /// <summary>
    /// The file's lines to load, read as they are needed; throws on the first malformed one
    /// (when <paramref name="checkedBefore"/>, the file changed after its check and earlier
    /// lines may have been sent).
    /// </summary>
    private static IEnumerable<Line> Lines(string file, string path, bool checkedBefore = false)
    {
        var outcome = checkedBefore ? "the file changed after it was checked; lines before it may have been written" : "nothing was sent";
        var number = 0;
        using var reader = new StreamReader(path, new UTF8Encoding(false, throwOnInvalidBytes: true), detectEncodingFromByteOrderMarks: true);
        while (true)
        {
            string? raw;
            try
            {
                raw = reader.ReadLine();
            }
            catch (DecoderFallbackException)
            {
                // The reader decodes ahead of the line it returns: find the line by its bytes.
                throw new CliException(ExitCodes.Error, $"{file}:{FirstLineNotUtf8(path)}: not valid UTF-8 (keys and values are text; `crabkv put KEY --in FILE` stores any bytes); {outcome}");
            }
            if (raw is null)
            {
                break;
            }
            number++;
            var text = raw.EndsWith('\r') ? raw[..^1] : raw;
            if (text.Length == 0)
            {
                continue;
            }
            var tab = text.IndexOf('\t');
            if (tab < 0)
            {
                throw new CliException(ExitCodes.Error, $"{file}:{number}: no TAB between key and value (expected KEY<TAB>VALUE); {outcome}");
            }
            if (tab == 0)
            {
                throw new CliException(ExitCodes.Error, $"{file}:{number}: empty key; {outcome}");
            }
            yield return new Line(number, text[..tab], Encoding.UTF8.GetBytes(text[(tab + 1)..]));
        }
    }

    /// <summary>The number of the first line of <paramref name="path"/> that is not valid UTF-8 (0 when every line is).</summary>
    private static int FirstLineNotUtf8(string path)
    {
        using var stream = File.OpenRead(path);
        var line = new List<byte>();
        var number = 0;
        int b;
        do
        {
            b = stream.ReadByte();
            if (b is '\n' or -1)
            {
                number++;
                if (!System.Text.Unicode.Utf8.IsValid(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(line)))
                {
                    return number;
                }
                line.Clear();
            }
            else
            {
                line.Add((byte)b);
            }
        }
        while (b != -1);
        return 0;
    }

    /// <summary>
    /// Collects lines into one chunk per partition and sends each full chunk after the previous
    /// chunk of its partition (a chain of tasks per partition); a semaphore bounds the chunks
    /// queued or in flight, so reading waits for the node instead of buffering the file.
    /// </summary>
    private sealed class Loader(CrabKvClient client, int partitions, int batchBytes)
    {
        private readonly List<Line>?[] _pending = new List<Line>?[partitions];
        private readonly long[] _pendingBytes = new long[partitions];
        private readonly Task[] _tails = Enumerable.Repeat(Task.CompletedTask, partitions).ToArray();
        private readonly bool[] _failed = new bool[partitions];
        private readonly SemaphoreSlim _slots = new(Concurrency);
        private int _acknowledged;

        public Action<int> Acknowledged { get; set; } = _ => { };

        public int AcknowledgedLines => Volatile.Read(ref _acknowledged);

        public List<string> Failures { get; } = new();

        /// <summary>Whether a batch got no answer in time: its lines may or may not be written.</summary>
        public bool TimedOut => Volatile.Read(ref _timedOut);

        private bool _timedOut;

        public int PartitionsUsed => _tails.Count(t => t != Task.CompletedTask);

        public async Task AddAsync(Line line)
        {
            var p = KeyPartitioner.PartitionOf(line.Key, partitions);
            // The records' bytes as the node writes them (the header counted, compression not).
            var size = Storage.Format.FormatConstants.RecordHeaderSize + Encoding.UTF8.GetByteCount(line.Key) + line.Value.Length;
            var chunk = _pending[p];
            if (chunk is not null && (chunk.Count >= ChunkEntries || _pendingBytes[p] + size > batchBytes))
            {
                await DispatchAsync(p);
                chunk = null;
            }
            chunk ??= _pending[p] = new List<Line>();
            chunk.Add(line);
            _pendingBytes[p] += size;
        }

        public async Task FinishAsync()
        {
            for (var p = 0; p < partitions; p++)
            {
                if (_pending[p] is { Count: > 0 })
                {
                    await DispatchAsync(p);
                }
            }
            await Task.WhenAll(_tails);
        }

        /// <summary>Sends nothing more: waits for the batches already sent (their outcome is reported as usual).</summary>
        public async Task AbandonAsync()
        {
            Array.Clear(_pending);
            try
            {
                await Task.WhenAll(_tails);
            }
            catch (Exception)
            {
                // The caller reports the reason it stopped; a batch's own failure is in Failures.
            }
        }

        private async Task DispatchAsync(int p)
        {
            var chunk = _pending[p]!;
            _pending[p] = null;
            _pendingBytes[p] = 0;
            await _slots.WaitAsync();
            _tails[p] = SendAfterAsync(_tails[p], p, chunk);
        }

        private async Task SendAfterAsync(Task previous, int p, List<Line> chunk)
        {
            try
            {
                await previous;
                if (Volatile.Read(ref _failed[p]))
                {
                    return; // a later chunk would overtake the failed one
                }
                await client.PutBatchAsync(chunk.Select(l => BatchEntry.Put(l.Key, l.Value)).ToList());
                Interlocked.Add(ref _acknowledged, chunk.Count);
                Acknowledged(chunk.Count);
            }
            catch (Exception e) when (e is CrabKvRequestException or TimeoutException)
            {
                Volatile.Write(ref _failed[p], true);
                if (e is TimeoutException)
                {
                    Volatile.Write(ref _timedOut, true);
                }
                lock (Failures)
                {
                    // A refused batch is not written (batches are atomic); one that got no answer
                    // may have been written before the node stopped answering.
                    Failures.Add(e is CrabKvRequestException r
                        ? $"lines {chunk[0].Number}..{chunk[^1].Number} (partition {p}, {chunk.Count} lines) not written: {r.Code}: {r.Message.TrimEnd('.')}; later lines of that partition were not sent"
                        : $"lines {chunk[0].Number}..{chunk[^1].Number} (partition {p}, {chunk.Count} lines) got no answer in time (--timeout): written or not, unknown; later lines of that partition were not sent");
                }
            }
            finally
            {
                _slots.Release();
            }
        }
    }
}
