using System.Diagnostics.Metrics;

namespace CrabKv.Actors.Diagnostics;

/// <summary>
/// The <c>CrabKv</c> meter (<see cref="System.Diagnostics.Metrics"/>): what the node's actors
/// do, summed over every store and partition of the process. Watch it with
/// <c>dotnet-counters monitor --counters CrabKv -p PID</c> or the OpenTelemetry SDK
/// (<c>AddMeter("CrabKv")</c>). Nothing is measured unless a listener subscribes: every
/// recording checks <see cref="Instrument.Enabled"/> first and uses pre-built tag arrays, so
/// the hot path allocates nothing.
///
/// No instrument is tagged with the partition: a node may have up to 1024 partitions (and
/// several stores share partition numbers), which times kinds and codes is more series than
/// a metrics backend should carry. Per-partition numbers are in <see cref="StoreStats"/>.
/// Instrument names follow the OpenTelemetry conventions (dotted, lower case, unit separate).
/// </summary>
public static class CrabKvMetrics
{
    /// <summary>The meter's name: <c>CrabKv</c>.</summary>
    public const string MeterName = "CrabKv";

    /// <summary>Counter: requests a partition handled, tag <c>kind</c>.</summary>
    public const string OperationsName = "crabkv.operations";

    /// <summary>Counter: error replies, tags <c>kind</c> and <c>code</c> (a <see cref="CrabKvErrorCode"/> name).</summary>
    public const string ErrorsName = "crabkv.errors";

    /// <summary>Counter: fsyncs of write-ahead logs.</summary>
    public const string FsyncsName = "crabkv.fsyncs";

    /// <summary>Histogram (s): time of one write-ahead-log fsync.</summary>
    public const string FsyncDurationName = "crabkv.fsync.duration";

    /// <summary>Histogram ({record}): puts and deletes one fsync made durable (group-commit size).</summary>
    public const string FsyncRecordsName = "crabkv.fsync.records";

    /// <summary>Observable up-down counter (By): write-back bytes not yet written to a log, summed over live partitions.</summary>
    public const string DirtyBytesName = "crabkv.write_back.dirty";

    /// <summary>Counter (By): bytes of merged segments (<c>stage=before</c>) and bytes the merges wrote (<c>stage=after</c>).</summary>
    public const string CompactionBytesName = "crabkv.compaction.bytes";

    /// <summary>Histogram (s): time of one merge, tag <c>outcome</c> (<c>ok</c>, <c>failed</c>).</summary>
    public const string CompactionDurationName = "crabkv.compaction.duration";

    /// <summary>Counter: partition moves between cluster nodes, tags <c>direction</c> (<c>in</c>, <c>out</c>) and <c>outcome</c> (<c>completed</c>, <c>failed</c>).</summary>
    public const string PartitionMovesName = "crabkv.partition.moves";

    private static readonly Meter Meter = new(MeterName, typeof(CrabKvMetrics).Assembly.GetName().Version?.ToString());

    private static readonly Counter<long> Operations = Meter.CreateCounter<long>(OperationsName, "{operation}",
        "Requests handled by a partition, by kind (flush and compact count once per partition they reach).");

    private static readonly Counter<long> Errors = Meter.CreateCounter<long>(ErrorsName, "{error}",
        "Error replies, by request kind and error code.");

    private static readonly Counter<long> Fsyncs = Meter.CreateCounter<long>(FsyncsName, "{fsync}",
        "fsyncs of write-ahead logs (group commits, sync-interval timer, flushes, sealing a segment).");

    private static readonly Histogram<double> FsyncDuration = Meter.CreateHistogram(FsyncDurationName, "s",
        "Time of one write-ahead-log fsync (sealing fsyncs at a roll or close are counted, not timed).", tags: null,
        advice: new InstrumentAdvice<double>
        {
            HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        });

    private static readonly Histogram<long> FsyncRecords = Meter.CreateHistogram(FsyncRecordsName, "{record}",
        "Puts and deletes made durable by one fsync: the group-commit size (fsyncs with nothing new are not recorded).", tags: null,
        advice: new InstrumentAdvice<long>
        {
            HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384],
        });

    private static readonly Counter<long> CompactionBytes = Meter.CreateCounter<long>(CompactionBytesName, "By",
        "Bytes of segments merged (stage=before) and bytes the merges wrote (stage=after); the difference is reclaimed.");

    private static readonly Histogram<double> CompactionDuration = Meter.CreateHistogram(CompactionDurationName, "s",
        "Time of one merge of a partition's sealed segments.", tags: null,
        advice: new InstrumentAdvice<double>
        {
            HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
        });

    private static readonly Counter<long> PartitionMoves = Meter.CreateCounter<long>(PartitionMovesName, "{move}",
        "Partition moves between cluster nodes: in = a pull completed (or failed) here, out = the handed-off copy was deleted here.");

    private static readonly KeyValuePair<string, object?>[][] KindTags = BuildKindTags();
    private static readonly KeyValuePair<string, object?>[][][] ErrorTags = BuildErrorTags();
    private static readonly KeyValuePair<string, object?>[] StageBefore = [new("stage", "before")];
    private static readonly KeyValuePair<string, object?>[] StageAfter = [new("stage", "after")];
    private static readonly KeyValuePair<string, object?>[] OutcomeOk = [new("outcome", "ok")];
    private static readonly KeyValuePair<string, object?>[] OutcomeFailed = [new("outcome", "failed")];
    private static readonly KeyValuePair<string, object?>[][] MoveTags =
    [
        [new("direction", "in"), new("outcome", "completed")],
        [new("direction", "in"), new("outcome", "failed")],
        [new("direction", "out"), new("outcome", "completed")],
        [new("direction", "out"), new("outcome", "failed")],
    ];

    static CrabKvMetrics()
    {
        Meter.CreateObservableUpDownCounter(DirtyBytesName, DirtyBytesSource.SumOfLive, "By",
            "Write-back bytes buffered and not yet handed to a log, summed over the live partitions of every store in the process.");
    }

    /// <summary>The kind of a request, from its message type; <see cref="OperationKind.None"/> for messages that are not requests.</summary>
    internal static OperationKind KindOf(object message) => message switch
    {
        Put => OperationKind.Put,
        Get => OperationKind.Get,
        Delete => OperationKind.Delete,
        PutBatch => OperationKind.Batch,
        Flush => OperationKind.Flush,
        Compact or CompactAndShutdown => OperationKind.Compact,
        GetStats => OperationKind.None, // scattered to every partition: not an operation of the data
        ICrabKvRequest => OperationKind.Other,
        _ => OperationKind.None,
    };

    /// <summary>The kind of the request a success reply answers (the WAL writer knows only the reply it will send).</summary>
    internal static OperationKind KindOfReply(object? reply) => reply switch
    {
        PutOk => OperationKind.Put,
        DeleteOk => OperationKind.Delete,
        PutBatchOk => OperationKind.Batch,
        FlushOk => OperationKind.Flush,
        _ => OperationKind.Other,
    };

    /// <summary>Counts one request of <paramref name="kind"/> (nothing for <see cref="OperationKind.None"/>).</summary>
    internal static void Operation(OperationKind kind)
    {
        if (kind != OperationKind.None && Operations.Enabled)
        {
            Operations.Add(1, KindTags[(int)kind]);
        }
    }

    /// <summary>Counts one error reply to a request of <paramref name="kind"/> (<see cref="OperationKind.None"/> counts as <c>other</c>).</summary>
    internal static void Error(OperationKind kind, CrabKvErrorCode code)
    {
        if (!Errors.Enabled)
        {
            return;
        }
        var byCode = ErrorTags[(int)(kind == OperationKind.None ? OperationKind.Other : kind)];
        var c = (int)code;
        Errors.Add(1, c < byCode.Length ? byCode[c] : [KindTags[(int)kind][0], new("code", code.ToString())]);
    }

    /// <summary>A request refused before it reached a partition (e.g. while the partition moves): one operation and one error.</summary>
    internal static void Refused(object request, CrabKvErrorCode code)
    {
        var kind = KindOf(request);
        Operation(kind);
        Error(kind, code);
    }

    /// <summary>Records <paramref name="count"/> fsyncs; <paramref name="elapsed"/> when they were one timed fsync, <paramref name="records"/> made durable.</summary>
    internal static void Fsynced(long count, TimeSpan? elapsed, long records)
    {
        if (count <= 0)
        {
            return;
        }
        if (Fsyncs.Enabled)
        {
            Fsyncs.Add(count);
        }
        if (elapsed is { } e && FsyncDuration.Enabled)
        {
            FsyncDuration.Record(e.TotalSeconds);
        }
        if (records > 0 && FsyncRecords.Enabled)
        {
            FsyncRecords.Record(records);
        }
    }

    /// <summary>A merge finished: its input and output bytes and its time.</summary>
    internal static void Compacted(long bytesBefore, long bytesAfter, TimeSpan elapsed)
    {
        if (CompactionBytes.Enabled)
        {
            CompactionBytes.Add(bytesBefore, StageBefore);
            CompactionBytes.Add(bytesAfter, StageAfter);
        }
        if (CompactionDuration.Enabled)
        {
            CompactionDuration.Record(elapsed.TotalSeconds, OutcomeOk);
        }
    }

    /// <summary>A merge failed after <paramref name="elapsed"/>.</summary>
    internal static void CompactionFailed(TimeSpan elapsed)
    {
        if (CompactionDuration.Enabled)
        {
            CompactionDuration.Record(elapsed.TotalSeconds, OutcomeFailed);
        }
    }

    /// <summary>A partition moved: <paramref name="incoming"/> for a pull to this node, else the handed-off copy here was deleted.</summary>
    internal static void PartitionMoved(bool incoming, bool completed)
    {
        if (PartitionMoves.Enabled)
        {
            PartitionMoves.Add(1, MoveTags[(incoming ? 0 : 2) + (completed ? 0 : 1)]);
        }
    }

    private static KeyValuePair<string, object?>[][] BuildKindTags()
    {
        var kinds = Enum.GetValues<OperationKind>();
        var tags = new KeyValuePair<string, object?>[kinds.Length][];
        foreach (var kind in kinds)
        {
            tags[(int)kind] = [new("kind", KindName(kind))];
        }
        return tags;
    }

    private static KeyValuePair<string, object?>[][][] BuildErrorTags()
    {
        var codes = Enum.GetValues<CrabKvErrorCode>();
        var maxCode = codes.Max(c => (int)c);
        var kinds = Enum.GetValues<OperationKind>();
        var tags = new KeyValuePair<string, object?>[kinds.Length][][];
        foreach (var kind in kinds)
        {
            tags[(int)kind] = new KeyValuePair<string, object?>[maxCode + 1][];
            for (var c = 0; c <= maxCode; c++)
            {
                tags[(int)kind][c] = [new("kind", KindName(kind)), new("code", ((CrabKvErrorCode)c).ToString())];
            }
        }
        return tags;
    }

    private static string KindName(OperationKind kind) => kind switch
    {
        OperationKind.Put => "put",
        OperationKind.Get => "get",
        OperationKind.Delete => "delete",
        OperationKind.Batch => "batch",
        OperationKind.Flush => "flush",
        OperationKind.Compact => "compact",
        _ => "other",
    };
}

/// <summary>The <c>kind</c> tag of <see cref="CrabKvMetrics"/> operations and errors.</summary>
internal enum OperationKind
{
    /// <summary>Not a request (an internal message): never counted as an operation.</summary>
    None,
    Put,
    Get,
    Delete,
    Batch,
    Flush,
    Compact,
    Other,
}
