using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Diagnostics;
using CrabKv.Storage.Compaction;
using CrabKv.Storage.Files;

namespace CrabKv.Actors.Compaction;

/// <summary>
/// Runs merges of sealed segments on the I/O dispatcher. Sealed segments are immutable,
/// so the partition keeps serving reads and writes while a merge runs; it applies the result
/// compare-and-set when <see cref="MergeDone"/> arrives. Also deletes merged inputs once the
/// partition says no read can still use them.
/// </summary>
internal sealed class CompactorActor : ReceiveActor
{
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public CompactorActor(FileLayer files)
    {
        Receive<RunMerge>(m =>
        {
            var replyTo = Sender;
            var lastReported = -1;
            var progress = new SyncProgress(p =>
            {
                var percent = (int)(p.Fraction * 100);
                if (percent / 5 != lastReported / 5)
                {
                    lastReported = percent;
                    replyTo.Tell(new MergeProgressed(p.Fraction));
                }
            });
            var started = Stopwatch.GetTimestamp();
            try
            {
                var result = Merger.Run(files, m.Request, progress);
                CrabKvMetrics.Compacted(result.BytesBefore, result.BytesAfter, Stopwatch.GetElapsedTime(started));
                replyTo.Tell(new MergeDone(m.Request, result));
            }
            catch (Exception e) // any failure is reported: the partition must not wait for a merge that died
            {
                CrabKvMetrics.CompactionFailed(Stopwatch.GetElapsedTime(started));
                _log.Error(e, "Merge in '{0}' failed", m.Request.Directory);
                replyTo.Tell(new MergeFailed(m.Request, e));
            }
        });
        Receive<DeleteSegments>(m =>
        {
            var (left, error) = Merger.DeleteInputs(files, m.Directory, m.Segments);
            Sender.Tell(new SegmentsDeleted(m.Segments, left, error?.Message, m.IsRetry));
        });
    }

    public static Props Props(CrabKvSettings settings) => Akka.Actor.Props.Create(() => new CompactorActor(settings.Files)).WithDispatcher(settings.CompactionDispatcher);

    /// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; would post to a sync context).</summary>
    private sealed class SyncProgress(Action<MergeProgress> report) : IProgress<MergeProgress>
    {
        public void Report(MergeProgress value) => report(value);
    }
}
