using Akka.Actor;

namespace CrabKv.Actors.Partition;

/// <summary>Graceful stop of a partition: flush write-back entries, seal, release the lock, stop. Answered with <see cref="PartitionStopped"/>.</summary>
internal sealed record StopPartition
{
    public static readonly StopPartition Instance = new();
}

/// <summary>The partition flushed and sealed everything; it stops right after.</summary>
internal sealed record PartitionStopped(int Partition);
