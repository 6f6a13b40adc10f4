// The wire format of the public protocol (issue 10, "Wire format"). Every message that may
// cross the network (ICrabKvMessage) has a short string manifest and a hand-written layout
// of the primitives in WireFormat.cs. Requests have upper-case manifests, their replies the
// same letter in lower case.
//
//   manifest  message               layout
//   P         Put                   key:string value:bytes ttl:ttl requestId:long
//   G         Get                   key:string requestId:long
//   D         Delete                key:string requestId:long
//   B         PutBatch              count (key:string value:bytes ttl:ttl)* requestId:long
//   F         Flush                 requestId:long
//   C         Compact               requestId:long
//   CS        CompactAndShutdown    requestId:long
//   S         GetStats              requestId:long
//   X         Shutdown              requestId:long
//   p         PutOk                 requestId:long
//   g         GetResult             key:string found:bool value:bytes requestId:long
//   d         DeleteOk              existed:bool requestId:long
//   b         PutBatchOk            count:int requestId:long
//   f         FlushOk               requestId:long
//   c         CompactOk             outcome requestId:long
//   s2        StoreStats            count partitionStats* count nodeStats* requestId:long
//   x         ShutdownOk            requestId:long
//   E         CrabKvError           code:byte message:string requestId:long
//   SP        StopPartition         (empty)
//   sp        PartitionStopped      partition:int
//   CC        CompactionCompleted   partition:int outcome
//   CP        CompactionProgressed  partition:int fraction:double
//   PF        PartitionFailed       partition:int reason:string
//   TM        TransferManifestRequest  partition:int transferId:long
//   tm        TransferManifest      transferId:long partition:int formatVersion:byte count file*
//   TC        ChunkRequest          transferId:long file:string offset:long length:int
//   tc        ChunkData             transferId:long file:string offset:long bytes:bytes
//   TD        TransferDone          transferId:long
//   tr        TransferRefused       transferId:long reason:string
//   TK        TransferCompleted     partition:int bytes:long duration
//   TF        TransferFailed        partition:int reason:string
//   TP        TransferProgress      partition:int transferId:long received:long total:long
//
//   outcome         segmentsMerged:int segmentsWritten:int bytesBefore:long bytesAfter:long
//                   recordsDropped:long duration
//   partitionStats  partition:int keys:int segments:int totalBytes:long staleBytes:long
//                   keyDirectoryBytes:long activeSegment:varint puts:long gets:long
//                   deletes:long fsyncs:long walWrites:long cacheHits:long cacheMisses:long
//                   dirtyBytes:long dirtyKeys:long flushes:long compactions:long
//                   compactionProgress:double lastCompaction:outcome expiredSwept:long
//                   readOnly:bool failureReason:string node:string recoveryMode:byte
//                   segmentsFromHints:int segmentsScanned:int recoveryDuration:duration
//                   cacheEntries:long cacheBytes:long
//   nodeStats       node:string version:string uptime:duration processId:int
//                   workingSetBytes:long gcHeapBytes:long count (key:string value:string)*
//   file            name:string length:long checksum:varint (XxHash3-64 of the whole file)
//
// Worked example: Put("k", [0xAA, 0xBB], ttl: null, requestId: 7) is manifest "P" and the
// 7 bytes 02 6B 03 AA BB 00 0E (key length 1+1, 'k', value length 2+1, the value, no TTL,
// zig-zag 7 = 14).
//
// Versioning: the payload has no version byte; the manifest is the version. A layout that
// changes gets a new manifest (e.g. "P2") and the decoder keeps reading the old one for as
// long as nodes of the previous release may be in the cluster. StoreStats went from "s" to
// "s2" (node entries, recovery and cache fields) before the first release, so "s" is not read.
//
// Not serialized: TimerSyncCompleted (local event, INoSerializationVerificationNeeded) and
// GetPartitions / PartitionRefs (they carry IActorRefs and never leave the node).

using Akka.Actor;
using Akka.Serialization;
using System.Runtime.Serialization;
using System.Text;
using CrabKv.Actors.Transfer;
using CrabKv.Storage.Segments;
using CrabKv.Storage.Transfer;

namespace CrabKv.Actors.Serialization;

/// <summary>
/// Compact binary serializer of the CrabKv protocol, bound to <see cref="ICrabKvMessage"/> in
/// the reference configuration. Identifier <see cref="SerializerIdentifier"/> (4242).
/// A malformed payload throws <see cref="SerializationException"/>; nothing is allocated
/// from a length before that length is checked against the bytes that remain.
/// </summary>
public sealed class CrabKvSerializer : SerializerWithStringManifest
{
    /// <summary>
    /// The serializer's identifier, fixed for the life of the format: it travels in every
    /// remote envelope. Akka reserves 0–40 for its own serializers; 4242 is in the user range
    /// and clashes with no Akka module.
    /// </summary>
    public const int SerializerIdentifier = 4242;

    // Smallest encodings, used to bound counts before allocating a list:
    // batch entry = key length 1 + value length 1 + ttl flag 1;
    // outcome = 5 ints/longs of 1 byte + duration 1;
    // partition stats = 18 ints/longs of 1 byte + progress 8 + outcome 6 + expiredSwept 1 + readOnly 1 + reason length 1
    //   + node length 1 + recovery mode 1 + 2 segment counts + recovery duration 1 + 2 cache sizes;
    // node stats = node length 1 + version length 1 + uptime 1 + process id 1 + 2 memory sizes + configuration count 1;
    // configuration entry = key length 1 + value length 1.
    private const int MinBatchEntryBytes = 1 + 1 + 1;
    private const int MinOutcomeBytes = 5 + 1;
    private const int MinPartitionStatsBytes = 18 + 8 + MinOutcomeBytes + 1 + 1 + 1 + 1 + 1 + 2 + 1 + 2;
    private const int MinNodeStatsBytes = 1 + 1 + 1 + 1 + 2 + 1;
    private const int MinConfigurationEntryBytes = 1 + 1;
    // transfer file = name length 1 + length 1 + checksum 1.
    private const int MinTransferFileBytes = 1 + 1 + 1;

    /// <summary>The manifests (see the table at the top of this file).</summary>
    internal static class Manifests
    {
        public const string Put = "P";
        public const string Get = "G";
        public const string Delete = "D";
        public const string PutBatch = "B";
        public const string Flush = "F";
        public const string Compact = "C";
        public const string CompactAndShutdown = "CS";
        public const string GetStats = "S";
        public const string Shutdown = "X";
        public const string PutOk = "p";
        public const string GetResult = "g";
        public const string DeleteOk = "d";
        public const string PutBatchOk = "b";
        public const string FlushOk = "f";
        public const string CompactOk = "c";
        public const string StoreStats = "s2";
        public const string ShutdownOk = "x";
        public const string Error = "E";
        public const string StopPartition = "SP";
        public const string PartitionStopped = "sp";
        public const string CompactionCompleted = "CC";
        public const string CompactionProgressed = "CP";
        public const string PartitionFailed = "PF";
        public const string TransferManifestRequest = "TM";
        public const string TransferManifest = "tm";
        public const string ChunkRequest = "TC";
        public const string ChunkData = "tc";
        public const string TransferDone = "TD";
        public const string TransferRefused = "tr";
        public const string TransferCompleted = "TK";
        public const string TransferFailed = "TF";
        public const string TransferProgress = "TP";
        public const string ProtocolBatch = "MB";
    }

    /// <summary>Created by Akka's serialization extension from the HOCON binding.</summary>
    public CrabKvSerializer(ExtendedActorSystem system) : base(system)
    {
    }

    /// <inheritdoc />
    public override int Identifier => SerializerIdentifier;

    /// <inheritdoc />
    public override string Manifest(object o) => ManifestOf(o);

    private static string ManifestOf(object o) => o switch
    {
        Put => Manifests.Put,
        Get => Manifests.Get,
        Delete => Manifests.Delete,
        PutBatch => Manifests.PutBatch,
        Flush => Manifests.Flush,
        Compact => Manifests.Compact,
        CompactAndShutdown => Manifests.CompactAndShutdown,
        GetStats => Manifests.GetStats,
        Shutdown => Manifests.Shutdown,
        PutOk => Manifests.PutOk,
        GetResult => Manifests.GetResult,
        DeleteOk => Manifests.DeleteOk,
        PutBatchOk => Manifests.PutBatchOk,
        FlushOk => Manifests.FlushOk,
        CompactOk => Manifests.CompactOk,
        StoreStats => Manifests.StoreStats,
        ShutdownOk => Manifests.ShutdownOk,
        CrabKvError => Manifests.Error,
        StopPartition => Manifests.StopPartition,
        PartitionStopped => Manifests.PartitionStopped,
        CompactionCompleted => Manifests.CompactionCompleted,
        CompactionProgressed => Manifests.CompactionProgressed,
        PartitionFailed => Manifests.PartitionFailed,
        TransferManifestRequest => Manifests.TransferManifestRequest,
        TransferManifest => Manifests.TransferManifest,
        ChunkRequest => Manifests.ChunkRequest,
        ChunkData => Manifests.ChunkData,
        TransferDone => Manifests.TransferDone,
        TransferRefused => Manifests.TransferRefused,
        TransferCompleted => Manifests.TransferCompleted,
        TransferFailed => Manifests.TransferFailed,
        TransferProgress => Manifests.TransferProgress,
        ProtocolBatch => Manifests.ProtocolBatch,
        _ => throw CannotSerialize(o),
    };

    /// <inheritdoc />
    public override byte[] ToBinary(object obj)
    {
        try
        {
            // Two passes over the same code: count, then write into an array of exactly that
            // size. A value is copied once, into the payload; large arrays are not zeroed first.
            var measure = WireWriter.Measuring();
            Write(ref measure, obj);
            var bytes = GC.AllocateUninitializedArray<byte>(measure.Position);
            var writer = WireWriter.Into(bytes);
            Write(ref writer, obj);
            return bytes;
        }
        catch (EncoderFallbackException e)
        {
            throw new SerializationException($"Cannot serialize {obj.GetType().Name}: a string holds invalid UTF-16 (a lone surrogate) and has no UTF-8 form.", e);
        }
    }

    /// <inheritdoc />
    public override object FromBinary(byte[] bytes, string manifest)
    {
        var r = new WireReader(bytes, manifest);
        var message = Read(ref r, manifest);
        r.End();
        return message;
    }

    private static object Read(ref WireReader r, string manifest) => manifest switch
        {
            Manifests.Put => new Put(r.String()!, r.Bytes()!, r.Ttl(), r.Long()),
            Manifests.Get => new Get(r.String()!, r.Long()),
            Manifests.Delete => new Delete(r.String()!, r.Long()),
            Manifests.PutBatch => new PutBatch(ReadEntries(ref r), r.Long()),
            Manifests.Flush => new Flush(r.Long()),
            Manifests.Compact => new Compact(r.Long()),
            Manifests.CompactAndShutdown => new CompactAndShutdown(r.Long()),
            Manifests.GetStats => new GetStats(r.Long()),
            Manifests.Shutdown => new Shutdown(r.Long()),
            Manifests.PutOk => new PutOk(r.Long()),
            Manifests.GetResult => new GetResult(r.String()!, r.Bool(), r.Bytes(), r.Long()),
            Manifests.DeleteOk => new DeleteOk(r.Bool(), r.Long()),
            Manifests.PutBatchOk => new PutBatchOk(r.Int(), r.Long()),
            Manifests.FlushOk => new FlushOk(r.Long()),
            Manifests.CompactOk => new CompactOk(ReadOutcome(ref r), r.Long()),
            Manifests.StoreStats => new StoreStats(ReadStats(ref r), ReadNodeStats(ref r), r.Long()),
            Manifests.ShutdownOk => new ShutdownOk(r.Long()),
            // A code this node does not know (added by a newer node) still reaches the caller with its message.
            Manifests.Error => new CrabKvError((CrabKvErrorCode)r.Byte(), r.String()!, r.Long()),
            Manifests.StopPartition => StopPartition.Instance,
            Manifests.PartitionStopped => new PartitionStopped(r.Int()),
            Manifests.CompactionCompleted => new CompactionCompleted(r.Int(), ReadOutcome(ref r)),
            Manifests.CompactionProgressed => new CompactionProgressed(r.Int(), r.Double()),
            Manifests.PartitionFailed => new PartitionFailed(r.Int(), r.String()!),
            Manifests.TransferManifestRequest => new TransferManifestRequest(r.Int(), r.Long()),
            Manifests.TransferManifest => new TransferManifest(r.Long(), r.Int(), r.Byte(), ReadTransferFiles(ref r)),
            Manifests.ChunkRequest => new ChunkRequest(r.Long(), r.String()!, r.Long(), r.Int()),
            Manifests.ChunkData => new ChunkData(r.Long(), r.String()!, r.Long(), r.Bytes()!),
            Manifests.TransferDone => new TransferDone(r.Long()),
            Manifests.TransferRefused => new TransferRefused(r.Long(), r.String()!),
            Manifests.TransferCompleted => new TransferCompleted(r.Int(), r.Long(), r.Duration()),
            Manifests.TransferFailed => new TransferFailed(r.Int(), r.String()!),
            Manifests.TransferProgress => new TransferProgress(r.Int(), r.Long(), r.Long(), r.Long()),
            Manifests.ProtocolBatch => ReadBatch(ref r),
            _ => throw new SerializationException($"Unknown CrabKv manifest '{manifest}' ({r.Length} bytes): sent by a node with another version of CrabKv.Actors?"),
        };

    /// <summary>A batch: a count, then per message its manifest and its fields (every field is self-delimiting).</summary>
    private static ProtocolBatch ReadBatch(ref WireReader r)
    {
        var count = r.Count(minItemBytes: 2);
        var messages = new ICrabKvMessage[count];
        for (var i = 0; i < count; i++)
        {
            var manifest = r.String() ?? throw new SerializationException("A batched message has no manifest.");
            if (manifest == Manifests.ProtocolBatch)
            {
                throw new SerializationException("A batch inside a batch is not allowed.");
            }
            messages[i] = (ICrabKvMessage)Read(ref r, manifest);
        }
        return new ProtocolBatch(messages);
    }

    private static void Write(ref WireWriter w, object obj)
    {
        switch (obj)
        {
            case Put m:
                w.String(m.Key);
                w.Bytes(m.Value);
                w.Ttl(m.Ttl);
                w.Long(m.RequestId);
                break;
            case Get m:
                w.String(m.Key);
                w.Long(m.RequestId);
                break;
            case Delete m:
                w.String(m.Key);
                w.Long(m.RequestId);
                break;
            case PutBatch m:
                w.Count(m.Entries.Count);
                foreach (var e in m.Entries)
                {
                    w.String(e.Key);
                    w.Bytes(e.Value);
                    w.Ttl(e.Ttl);
                }
                w.Long(m.RequestId);
                break;
            case Flush m:
                w.Long(m.RequestId);
                break;
            case Compact m:
                w.Long(m.RequestId);
                break;
            case CompactAndShutdown m:
                w.Long(m.RequestId);
                break;
            case GetStats m:
                w.Long(m.RequestId);
                break;
            case Shutdown m:
                w.Long(m.RequestId);
                break;
            case PutOk m:
                w.Long(m.RequestId);
                break;
            case GetResult m:
                w.String(m.Key);
                w.Bool(m.Found);
                w.Bytes(m.Value);
                w.Long(m.RequestId);
                break;
            case DeleteOk m:
                w.Bool(m.Existed);
                w.Long(m.RequestId);
                break;
            case PutBatchOk m:
                w.Int(m.Count);
                w.Long(m.RequestId);
                break;
            case FlushOk m:
                w.Long(m.RequestId);
                break;
            case CompactOk m:
                WriteOutcome(ref w, m.Outcome);
                w.Long(m.RequestId);
                break;
            case StoreStats m:
                w.Count(m.Partitions.Count);
                foreach (var p in m.Partitions)
                {
                    WriteStats(ref w, p);
                }
                w.Count(m.Nodes.Count);
                foreach (var n in m.Nodes)
                {
                    WriteNodeStats(ref w, n);
                }
                w.Long(m.RequestId);
                break;
            case ShutdownOk m:
                w.Long(m.RequestId);
                break;
            case CrabKvError m:
                w.Byte((byte)m.Code);
                w.String(m.Message);
                w.Long(m.RequestId);
                break;
            case StopPartition:
                break;
            case PartitionStopped m:
                w.Int(m.Partition);
                break;
            case CompactionCompleted m:
                w.Int(m.Partition);
                WriteOutcome(ref w, m.Outcome);
                break;
            case CompactionProgressed m:
                w.Int(m.Partition);
                w.Double(m.Fraction);
                break;
            case PartitionFailed m:
                w.Int(m.Partition);
                w.String(m.Reason);
                break;
            case TransferManifestRequest m:
                w.Int(m.Partition);
                w.Long(m.TransferId);
                break;
            case TransferManifest m:
                w.Long(m.TransferId);
                w.Int(m.Partition);
                w.Byte(m.FormatVersion);
                w.Count(m.Files.Count);
                foreach (var f in m.Files)
                {
                    w.String(f.Name);
                    w.Long(f.Length);
                    w.VarUInt(f.Checksum);
                }
                break;
            case ChunkRequest m:
                w.Long(m.TransferId);
                w.String(m.File);
                w.Long(m.Offset);
                w.Int(m.Length);
                break;
            case ChunkData m:
                w.Long(m.TransferId);
                w.String(m.File);
                w.Long(m.Offset);
                w.Bytes(m.Bytes);
                break;
            case TransferDone m:
                w.Long(m.TransferId);
                break;
            case TransferRefused m:
                w.Long(m.TransferId);
                w.String(m.Reason);
                break;
            case TransferCompleted m:
                w.Int(m.Partition);
                w.Long(m.Bytes);
                w.Duration(m.Duration);
                break;
            case TransferFailed m:
                w.Int(m.Partition);
                w.String(m.Reason);
                break;
            case ProtocolBatch m:
                w.Count(m.Messages.Count);
                foreach (var inner in m.Messages)
                {
                    if (inner is ProtocolBatch)
                    {
                        throw new ArgumentException("A batch inside a batch is not allowed.", nameof(obj));
                    }
                    w.String(ManifestOf(inner));
                    Write(ref w, inner);
                }
                break;
            case TransferProgress m:
                w.Int(m.Partition);
                w.Long(m.TransferId);
                w.Long(m.BytesReceived);
                w.Long(m.BytesTotal);
                break;
            default:
                throw CannotSerialize(obj);
        }
    }

    private static void WriteOutcome(ref WireWriter w, CompactionOutcome o)
    {
        w.Int(o.SegmentsMerged);
        w.Int(o.SegmentsWritten);
        w.Long(o.BytesBefore);
        w.Long(o.BytesAfter);
        w.Long(o.RecordsDropped);
        w.Duration(o.Duration);
    }

    private static CompactionOutcome ReadOutcome(ref WireReader r) =>
        new(r.Int(), r.Int(), r.Long(), r.Long(), r.Long(), r.Duration());

    private static TransferFile[] ReadTransferFiles(ref WireReader r)
    {
        var files = new TransferFile[r.Count(MinTransferFileBytes)];
        for (var i = 0; i < files.Length; i++)
        {
            files[i] = new TransferFile(r.String()!, r.Long(), r.VarUInt());
        }
        return files;
    }

    private static BatchEntry[] ReadEntries(ref WireReader r)
    {
        var entries = new BatchEntry[r.Count(MinBatchEntryBytes)];
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = new BatchEntry(r.String()!, r.Bytes(), r.Ttl());
        }
        return entries;
    }

    private static void WriteStats(ref WireWriter w, PartitionStats p)
    {
        w.Int(p.Partition);
        w.Int(p.Keys);
        w.Int(p.Segments);
        w.Long(p.TotalBytes);
        w.Long(p.StaleBytes);
        w.Long(p.KeyDirectoryBytes);
        w.VarUInt(p.ActiveSegment.Value);
        w.Long(p.Puts);
        w.Long(p.Gets);
        w.Long(p.Deletes);
        w.Long(p.Fsyncs);
        w.Long(p.WalWrites);
        w.Long(p.CacheHits);
        w.Long(p.CacheMisses);
        w.Long(p.DirtyBytes);
        w.Long(p.DirtyKeys);
        w.Long(p.Flushes);
        w.Long(p.Compactions);
        w.Double(p.CompactionProgress);
        WriteOutcome(ref w, p.LastCompaction);
        w.Long(p.ExpiredSwept);
        w.Bool(p.ReadOnly);
        w.String(p.FailureReason);
        w.String(p.Node);
        w.Byte((byte)p.RecoveryMode);
        w.Int(p.SegmentsFromHints);
        w.Int(p.SegmentsScanned);
        w.Duration(p.RecoveryDuration);
        w.Long(p.CacheEntries);
        w.Long(p.CacheBytes);
        w.Bool(p.Unavailable);
    }

    private static void WriteNodeStats(ref WireWriter w, NodeStats n)
    {
        w.String(n.Node);
        w.String(n.Version);
        w.Duration(n.Uptime);
        w.Int(n.ProcessId);
        w.Long(n.WorkingSetBytes);
        w.Long(n.GcHeapBytes);
        w.Count(n.Configuration.Count);
        foreach (var (key, value) in n.Configuration)
        {
            w.String(key);
            w.String(value);
        }
    }

    private static NodeStats[] ReadNodeStats(ref WireReader r)
    {
        var nodes = new NodeStats[r.Count(MinNodeStatsBytes)];
        for (var i = 0; i < nodes.Length; i++)
        {
            // Object initializers run in source order: the order of WriteNodeStats.
            nodes[i] = new NodeStats
            {
                Node = r.String() ?? "",
                Version = r.String() ?? "",
                Uptime = r.Duration(),
                ProcessId = r.Int(),
                WorkingSetBytes = r.Long(),
                GcHeapBytes = r.Long(),
                Configuration = ReadConfiguration(ref r),
            };
        }
        return nodes;
    }

    private static KeyValuePair<string, string>[] ReadConfiguration(ref WireReader r)
    {
        var entries = new KeyValuePair<string, string>[r.Count(MinConfigurationEntryBytes)];
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = new KeyValuePair<string, string>(r.String() ?? "", r.String() ?? "");
        }
        return entries;
    }

    private static PartitionStats[] ReadStats(ref WireReader r)
    {
        var stats = new PartitionStats[r.Count(MinPartitionStatsBytes)];
        for (var i = 0; i < stats.Length; i++)
        {
            // Object initializers run in source order: the order of WriteStats.
            stats[i] = new PartitionStats
            {
                Partition = r.Int(),
                Keys = r.Int(),
                Segments = r.Int(),
                TotalBytes = r.Long(),
                StaleBytes = r.Long(),
                KeyDirectoryBytes = r.Long(),
                ActiveSegment = new SegmentId(r.VarUInt()),
                Puts = r.Long(),
                Gets = r.Long(),
                Deletes = r.Long(),
                Fsyncs = r.Long(),
                WalWrites = r.Long(),
                CacheHits = r.Long(),
                CacheMisses = r.Long(),
                DirtyBytes = r.Long(),
                DirtyKeys = r.Long(),
                Flushes = r.Long(),
                Compactions = r.Long(),
                CompactionProgress = r.Double(),
                LastCompaction = ReadOutcome(ref r),
                ExpiredSwept = r.Long(),
                ReadOnly = r.Bool(),
                FailureReason = r.String(),
                Node = r.String(),
                // A mode this node does not know (added by a newer node) is kept as its number.
                RecoveryMode = (RecoveryMode)r.Byte(),
                SegmentsFromHints = r.Int(),
                SegmentsScanned = r.Int(),
                RecoveryDuration = r.Duration(),
                CacheEntries = r.Long(),
                CacheBytes = r.Long(),
                Unavailable = r.Bool(),
            };
        }
        return stats;
    }

    private static ArgumentException CannotSerialize(object o) =>
        new($"{nameof(CrabKvSerializer)} cannot serialize {o.GetType().FullName}: it is not a message that crosses the network (see the manifest table in CrabKvSerializer.cs).", nameof(o));
}
