using CrabKv.Storage.Compaction;
using CrabKv.Storage.Segments;

namespace CrabKv.Actors.Compaction;

// Messages between a PartitionActor and its CompactorActor (process-local).

/// <summary>Merge these sealed segments; answered with progress reports, then <see cref="MergeDone"/> or <see cref="MergeFailed"/>.</summary>
internal sealed record RunMerge(MergeRequest Request);

/// <summary>A merge finished: apply its relocations, then release and delete the inputs.</summary>
internal sealed record MergeDone(MergeRequest Request, MergeResult Merged);

/// <summary>A merge failed; nothing changed on disk that recovery would read.</summary>
internal sealed record MergeFailed(MergeRequest Request, Exception Cause);

/// <summary>Progress of the running merge.</summary>
internal sealed record MergeProgressed(double Fraction);

/// <summary>Delete merged inputs (oldest first); no reader uses them any more.</summary>
internal sealed record DeleteSegments(string Directory, IReadOnlyList<Segment> Segments, bool IsRetry = false);

/// <summary>Deletion done: <paramref name="Left"/> are the inputs still on disk (the first failure and every newer one), with the error.</summary>
internal sealed record SegmentsDeleted(IReadOnlyList<Segment> Segments, IReadOnlyList<Segment> Left, string? Error, bool IsRetry);
