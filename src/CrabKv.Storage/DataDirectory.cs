using System.Globalization;
using CrabKv.Storage.Files;
using CrabKv.Storage.Segments;

namespace CrabKv.Storage;

/// <summary>
/// The data directory of a node (FORMAT.md section 9): its <c>LOCK</c>, its <c>PARTITIONS</c>
/// file and one directory per partition, <c>p-000</c>, <c>p-001</c>, … The one place that
/// names them. <see cref="Open"/> takes the directory's lock before anything else and holds
/// it until <see cref="Dispose"/>, so a second node on the same directory is refused as a
/// whole, naming the holder; each partition still takes its own <c>LOCK</c> as well.
/// </summary>
/// <remarks>
/// Everything the store relies on is durable before it is relied on: the directory and each
/// partition directory are created with an fsync of their parent, and <c>PARTITIONS</c> is
/// written to a temporary file, fsynced, renamed and its directory fsynced. A damaged, empty
/// or missing <c>PARTITIONS</c> beside partition directories exactly <c>p-000</c> ..
/// <c>p-(n-1)</c> is rebuilt as <c>n</c> (and reported); any other mismatch is refused.
/// </remarks>
public sealed class DataDirectory : IDisposable
{
    /// <summary>Name of the file that records the partition count.</summary>
    public const string PartitionsFileName = "PARTITIONS";

    /// <summary>Most partitions a data directory may have.</summary>
    public const int MaxPartitions = 1024;

    private const string PartitionPrefix = "p-";

    private readonly DirectoryLock _lock;

    private DataDirectory(string path, int partitions, DirectoryLock directoryLock, IReadOnlyList<string> notes)
    {
        Path = path;
        Partitions = partitions;
        _lock = directoryLock;
        Notes = notes;
    }

    /// <summary>Full path of the data directory.</summary>
    public string Path { get; }

    /// <summary>The partition count in force (recorded in <c>PARTITIONS</c>).</summary>
    public int Partitions { get; }

    /// <summary>What <see cref="Open"/> had to repair (e.g. a rebuilt <c>PARTITIONS</c> file), for the log.</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Name of the directory of partition <paramref name="partition"/>: <c>p-</c> and at least three digits.</summary>
    public static string PartitionDirectoryName(int partition)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(partition);
        return string.Create(CultureInfo.InvariantCulture, $"{PartitionPrefix}{partition:D3}");
    }

    /// <summary>Directory of partition <paramref name="partition"/> under <paramref name="dataDir"/>.</summary>
    public static string PartitionDirectory(string dataDir, int partition) =>
        System.IO.Path.Combine(dataDir, PartitionDirectoryName(partition));

    /// <summary>Directory of partition <paramref name="partition"/> of this data directory.</summary>
    public string PartitionPath(int partition)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(partition, Partitions);
        return PartitionDirectory(Path, partition);
    }

    /// <summary>
    /// Opens (creating if needed) a data directory: creates it durably, takes its lock,
    /// settles the partition count and creates every partition directory durably.
    /// </summary>
    /// <param name="path">The data directory.</param>
    /// <param name="requestedPartitions">An explicit count, or 0 for "the recorded one, else <paramref name="defaultPartitions"/>".</param>
    /// <param name="defaultPartitions">The count of a new directory when <paramref name="requestedPartitions"/> is 0 (e.g. one per core).</param>
    /// <exception cref="StoreLockedException">Another process or store holds the directory; the message names the holder.</exception>
    /// <exception cref="PartitionCountMismatchException">An explicit count differs from the recorded one.</exception>
    /// <exception cref="DataDirectoryException">The count cannot be read nor rebuilt unambiguously.</exception>
    /// <param name="files">The file layer (default: the real one).</param>
    public static DataDirectory Open(string path, int requestedPartitions, int defaultPartitions, FileLayer? files = null)
    {
        files ??= FileLayer.Default;
        ArgumentOutOfRangeException.ThrowIfNegative(requestedPartitions);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(requestedPartitions, MaxPartitions);
        ArgumentOutOfRangeException.ThrowIfLessThan(defaultPartitions, 1);
        var root = System.IO.Path.GetFullPath(path);
        var directoryLock = DirectoryLock.Acquire(files, root); // creates the directory durably first
        try
        {
            // A transfer interrupted by a crash: install a verified staged copy, discard the rest (FORMAT.md section 10).
            var notes = new List<string>(Transfer.PartitionImport.RecoverStaging(root, files));
            var partitions = SettleCount(files, root, requestedPartitions, Math.Min(defaultPartitions, MaxPartitions), notes);
            CreatePartitionDirectories(files, root, partitions);
            return new DataDirectory(root, partitions, directoryLock, notes);
        }
        catch
        {
            directoryLock.Dispose();
            throw;
        }
    }

    /// <summary>Releases the directory's lock.</summary>
    public void Dispose() => _lock.Dispose();

    /// <summary>The count recorded in <c>PARTITIONS</c> (rebuilt when needed), or, in a new directory, the one asked for, written down.</summary>
    private static int SettleCount(FileLayer files, string root, int requested, int fallback, List<string> notes)
    {
        var marker = System.IO.Path.Combine(root, PartitionsFileName);
        var text = ReadText(files, marker);
        int recorded;
        if (text is not null && TryParseCount(text, out recorded))
        {
            if (requested != 0 && requested != recorded)
            {
                throw new PartitionCountMismatchException(root, requested, recorded);
            }
            if (BeyondCount(root, recorded) is { } beyond)
            {
                throw new DataDirectoryException(root, beyond);
            }
            return recorded;
        }

        var present = PartitionDirectoriesPresent(root, out var strays);
        if (present == 0 && strays.Count == 0)
        {
            // Nothing to hide: a new directory (or one whose marker was lost before any partition existed).
            var count = requested != 0 ? requested : fallback;
            WriteTextDurably(files, marker, count.ToString(CultureInfo.InvariantCulture) + "\n");
            if (text is not null)
            {
                notes.Add($"The {PartitionsFileName} file held '{Shorten(text)}' and no partition existed yet; it now records {count}.");
            }
            return count;
        }

        var what = text is null ? $"has no {PartitionsFileName} file" : $"holds a damaged {PartitionsFileName} file ('{Shorten(text)}')";
        if (strays.Count > 0 || present > MaxPartitions)
        {
            throw new DataDirectoryException(root,
                $"{what}, and its partition directories ({Describe(present, strays)}) are not exactly p-000 .. p-(n-1), so the partition count cannot be rebuilt. " +
                $"Write the right count into '{marker}'");
        }
        recorded = present;
        if (requested != 0 && requested != recorded)
        {
            throw new PartitionCountMismatchException(root, requested, recorded);
        }
        WriteTextDurably(files, marker, recorded.ToString(CultureInfo.InvariantCulture) + "\n");
        notes.Add($"The data directory '{root}' {what}; rebuilt it from the partition directories present: {recorded} partitions (p-000 .. {PartitionDirectoryName(recorded - 1)}).");
        return recorded;
    }

    /// <summary>
    /// What an open of <paramref name="path"/> would refuse about its partition count, read
    /// without changing anything (verify); null when it opens as it is (a missing or damaged
    /// <c>PARTITIONS</c> beside exactly p-000 .. p-(n-1) is rebuilt by the open).
    /// </summary>
    public static string? CountProblem(string path)
    {
        var root = System.IO.Path.GetFullPath(path);
        var marker = System.IO.Path.Combine(root, PartitionsFileName);
        var text = ReadText(FileLayer.Default, marker);
        if (text is not null && TryParseCount(text, out var recorded))
        {
            return BeyondCount(root, recorded);
        }
        // A transfer's leftovers (p-NNN.incoming, p-NNN.deleting) are settled by the open before it counts.
        var present = PartitionDirectoriesPresent(root, out var strays, ignoreTransfers: true);
        if (strays.Count > 0 || present > MaxPartitions)
        {
            var what = text is null ? $"has no {PartitionsFileName} file" : $"holds a damaged {PartitionsFileName} file ('{Shorten(text)}')";
            return $"{what}, and its partition directories ({Describe(present, strays)}) are not exactly p-000 .. p-(n-1), so the partition count cannot be rebuilt. " +
                   $"Write the right count into '{marker}'";
        }
        return null;
    }

    /// <summary>
    /// Partition directories numbered at or past the recorded count that hold segments: a store
    /// opened with that count would never look in them, so their keys would silently be missing.
    /// (Empty ones hide nothing and are left alone.)
    /// </summary>
    private static string? BeyondCount(string root, int recorded)
    {
        var beyond = Directory.EnumerateDirectories(root, PartitionPrefix + "*")
            .Where(d =>
            {
                var name = System.IO.Path.GetFileName(d);
                return TryParsePartitionIndex(name, out var index) && index >= recorded
                       && Directory.EnumerateFiles(d, "seg-*.data").Any();
            })
            .Select(d => System.IO.Path.GetFileName(d))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (beyond.Count == 0)
        {
            return null;
        }
        var marker = System.IO.Path.Combine(root, PartitionsFileName);
        return $"records {recorded} partitions in '{marker}', but also holds partition directories with segments past them " +
               $"({string.Join(", ", beyond.Take(8))}{(beyond.Count > 8 ? $", … {beyond.Count} in all" : "")}), whose keys would not be found. " +
               $"If those directories belong here, write the right count into '{marker}'; otherwise move them out of the data directory";
    }

    /// <summary>The index of a partition directory named exactly as <see cref="PartitionDirectoryName"/> names it (<c>p-007</c>, not <c>p-7</c> nor <c>p-007.incoming</c>).</summary>
    private static bool TryParsePartitionIndex(string name, out int index)
    {
        index = -1;
        return name.StartsWith(PartitionPrefix, StringComparison.Ordinal)
               && int.TryParse(name.AsSpan(PartitionPrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out index)
               && PartitionDirectoryName(index) == name;
    }

    private static bool TryParseCount(string text, out int count) =>
        int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out count) && count is >= 1 and <= MaxPartitions;

    /// <summary>
    /// How many partition directories are present when they are exactly p-000 .. p-(n-1);
    /// <paramref name="strays"/> lists the <c>p-*</c> directories that break that pattern.
    /// </summary>
    private static int PartitionDirectoriesPresent(string root, out List<string> strays, bool ignoreTransfers = false)
    {
        strays = new List<string>();
        var indexes = new SortedSet<int>();
        foreach (var dir in Directory.EnumerateDirectories(root, PartitionPrefix + "*"))
        {
            var name = System.IO.Path.GetFileName(dir);
            if (ignoreTransfers && (name.EndsWith(Transfer.PartitionImport.StagingSuffix, StringComparison.Ordinal)
                                    || name.EndsWith(Transfer.PartitionImport.DeletingSuffix, StringComparison.Ordinal)))
            {
                continue;
            }
            if (TryParsePartitionIndex(name, out var index))
            {
                indexes.Add(index);
            }
            else
            {
                strays.Add(name);
            }
        }
        if (indexes.Count > 0 && indexes.Max != indexes.Count - 1)
        {
            for (var i = 0; i <= indexes.Max; i++)
            {
                if (!indexes.Contains(i))
                {
                    strays.Add($"{PartitionDirectoryName(i)} missing");
                }
            }
        }
        return indexes.Count;
    }

    private static string Describe(int present, List<string> strays) =>
        $"{present} numbered{(strays.Count > 0 ? "; " + string.Join(", ", strays.Order(StringComparer.Ordinal).Take(8)) + (strays.Count > 8 ? ", …" : "") : "")}";

    private static string Shorten(string text)
    {
        var t = text.Trim();
        return t.Length <= 40 ? t : t[..40] + "…";
    }

    // ------------------------------------------------------------------ file operations
    // Every file-system write of this type goes through the file layer (fault and power-loss tests wrap it).

    private static void CreatePartitionDirectories(FileLayer files, string root, int partitions)
    {
        var created = false;
        for (var i = 0; i < partitions; i++)
        {
            var dir = PartitionDirectory(root, i);
            if (!files.DirectoryExists(dir))
            {
                files.CreateDirectory(dir);
                created = true;
            }
        }
        if (created)
        {
            files.SyncDirectory(root); // one fsync of the parent makes every new entry durable
        }
    }

    /// <summary>The file's text, or null when it does not exist.</summary>
    private static string? ReadText(FileLayer files, string path)
    {
        if (!files.FileExists(path))
        {
            return null;
        }
        using var handle = files.Open(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var bytes = new byte[(int)Math.Min(files.GetLength(handle), 4096)];
        var n = 0;
        while (n < bytes.Length)
        {
            var read = files.Read(handle, bytes.AsSpan(n), n);
            if (read == 0)
            {
                break;
            }
            n += read;
        }
        return System.Text.Encoding.UTF8.GetString(bytes, 0, n);
    }

    /// <summary>Replaces <paramref name="path"/> atomically and durably: temp file, fsync, rename, fsync of the directory.</summary>
    private static void WriteTextDurably(FileLayer files, string path, string text)
    {
        var temp = path + ".tmp";
        using (var handle = files.Open(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None))
        {
            files.Write(handle, System.Text.Encoding.UTF8.GetBytes(text), 0);
            files.FlushToDisk(handle);
        }
        files.Move(temp, path, overwrite: true);
        files.SyncDirectory(System.IO.Path.GetDirectoryName(path)!);
    }
}
