using CrabKv.Storage.Transfer;

namespace CrabKv.Actors.Transfer;

// The messages of a partition transfer (issue 10, "Data follows its shard"; FORMAT.md
// section 10). The sink drives: it asks the source for the manifest, then for chunks, at
// most `transfer.window` at a time, and says TransferDone at the end (or on failure) so the
// source releases the partition's LOCK. Every message may cross the network and is bound
// to CrabKvSerializer. A transfer id, chosen by the sink, correlates everything.

/// <summary>Sink → source: describe partition <paramref name="Partition"/> (stopped) and hold it for transfer <paramref name="TransferId"/>.</summary>
public sealed record TransferManifestRequest(int Partition, long TransferId) : ICrabKvMessage;

/// <summary>Source → sink: the partition's files (names, lengths, XxHash3 checksums) and format version.</summary>
public sealed record TransferManifest(long TransferId, int Partition, byte FormatVersion, IReadOnlyList<TransferFile> Files) : ICrabKvMessage
{
    /// <summary>The storage layer's view of the same manifest.</summary>
    public PartitionManifest ToPartitionManifest() => new(FormatVersion, Files);
}

/// <summary>Sink → source: send <paramref name="Length"/> bytes of <paramref name="File"/> at <paramref name="Offset"/>.</summary>
public sealed record ChunkRequest(long TransferId, string File, long Offset, int Length) : ICrabKvMessage;

/// <summary>Source → sink: the bytes of one <see cref="ChunkRequest"/>.</summary>
public sealed record ChunkData(long TransferId, string File, long Offset, byte[] Bytes) : ICrabKvMessage;

/// <summary>Sink → source: the transfer is over (installed, failed or cancelled); release the partition.</summary>
public sealed record TransferDone(long TransferId) : ICrabKvMessage;

/// <summary>Source → sink: the request cannot be served (partition held by a store, not stopped cleanly, unknown transfer, I/O error).</summary>
public sealed record TransferRefused(long TransferId, string Reason) : ICrabKvMessage;

/// <summary>Sink → requester: the partition is installed, verified, in the target data directory.</summary>
/// <param name="Partition">The partition.</param>
/// <param name="Bytes">Bytes of its files.</param>
/// <param name="Duration">From the manifest request to the installed directory.</param>
public sealed record TransferCompleted(int Partition, long Bytes, TimeSpan Duration) : ICrabKvMessage;

/// <summary>Sink → requester: nothing was installed; the holder's copy stays authoritative.</summary>
public sealed record TransferFailed(int Partition, string Reason) : ICrabKvMessage;

/// <summary>Published by the sink on its event stream after each chunk it writes.</summary>
public sealed record TransferProgress(int Partition, long TransferId, long BytesReceived, long BytesTotal) : ICrabKvMessage;

/// <summary>
/// Published by the source on its event stream when it lets go of a partition (the export
/// closed, the partition's LOCK released): after <see cref="TransferDone"/>, when the sink
/// stopped, after the idle timeout, or on an I/O error. Local only: never sent.
/// </summary>
public sealed record TransferReleased(int Partition, long TransferId, string Reason);

/// <summary>
/// Local only: asks a <see cref="PartitionTransferSource"/> what it is serving, answered with
/// <see cref="TransferActivity"/> (a leaving node waits while its partitions are being pulled).
/// </summary>
public sealed class GetTransferActivity : Akka.Actor.INoSerializationVerificationNeeded
{
    /// <summary>The one instance.</summary>
    public static readonly GetTransferActivity Instance = new();

    private GetTransferActivity()
    {
    }
}

/// <summary>What a <see cref="PartitionTransferSource"/> serves: exports held open, and chunks served since it started (grows while a pull progresses).</summary>
public sealed record TransferActivity(int ExportsHeld, long ChunksServed) : Akka.Actor.INoSerializationVerificationNeeded;

