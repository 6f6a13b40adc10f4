namespace CrabKv.Storage.Transfer;

/// <summary>One file of a partition being moved: its name in the partition directory, its exact length and its checksum.</summary>
/// <param name="Name">A segment (<c>seg-*.data</c>) or hint (<c>seg-*.hint</c>) file name, no directory.</param>
/// <param name="Length">Exact length in bytes.</param>
/// <param name="Checksum">XxHash3 (64-bit, seed 0) of the whole file.</param>
public sealed record TransferFile(string Name, long Length, ulong Checksum);

/// <summary>
/// What a stopped partition directory holds (FORMAT.md section 10): every segment and hint
/// file, in name order, with the format version of the holder. The import recreates exactly
/// these files and nothing else.
/// </summary>
/// <param name="FormatVersion">The holder's <see cref="Format.FormatConstants.Version"/>; an importer of another version refuses.</param>
/// <param name="Files">The files, ordered by name (ordinal).</param>
public sealed record PartitionManifest(byte FormatVersion, IReadOnlyList<TransferFile> Files)
{
    /// <summary>Sum of the files' lengths.</summary>
    public long TotalBytes => Files.Sum(f => f.Length);

    /// <summary>The file named <paramref name="name"/>, or null.</summary>
    public TransferFile? Find(string name)
    {
        foreach (var f in Files)
        {
            if (string.Equals(f.Name, name, StringComparison.Ordinal))
            {
                return f;
            }
        }
        return null;
    }
}

/// <summary>A partition cannot be exported or imported as it is (a store holds it, it was not stopped cleanly, a chunk does not fit the manifest).</summary>
public sealed class TransferRefusedException(string message, Exception? inner = null) : CrabKvException(message, inner);

/// <summary>
/// A received file does not verify: its checksum differs from the manifest, or a record of a
/// segment fails its checks. Names the file and the offset (0 for a whole-file checksum).
/// </summary>
public sealed class TransferVerificationException(string file, long offset, string reason)
    : CrabKvException($"Transferred file '{file}' does not verify at offset {offset}: {reason}.")
{
    /// <summary>The file name (in the partition directory).</summary>
    public string File { get; } = file;

    /// <summary>Byte offset of the damage; 0 when only the whole-file checksum tells.</summary>
    public long Offset { get; } = offset;
}
