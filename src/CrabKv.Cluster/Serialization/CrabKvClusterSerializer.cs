// The wire format of CrabKv.Cluster's own messages (ICrabKvClusterMessage), with the
// primitives of CrabKv.Actors' WireFormat.cs (varints, length-prefixed strings and bytes).
//
//   manifest  message               layout
//   PE        PartitionEnvelope     partition:int serializerId:int manifest:string payload:bytes
//   PQ        PartitionCountQuery   partitions:int
//   pq        PartitionCountReply   partitions:int
//   DC        DeletePartitionCopy   partition:int newHolder:string epoch:long
//   SP        StartPartition        partition:int
//   sp        StartPartitionAnswer  accepted:int (1 or 0)
//
// The envelope's message is serialized by whatever serializer the actor system binds to its
// type (the crabkv serializer, 4242, for the public protocol), so the envelope never needs to
// change when a message is added. Versioning as in CrabKvSerializer: the manifest is the
// version; a changed layout gets a new manifest.

using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using CrabKv.Actors.Serialization;

namespace CrabKv.Cluster.Serialization;

/// <summary>
/// Binary serializer of <see cref="ICrabKvClusterMessage"/>, bound in the cluster reference
/// configuration. Identifier <see cref="SerializerIdentifier"/> (4243). A malformed payload
/// throws <see cref="SerializationException"/>.
/// </summary>
public sealed class CrabKvClusterSerializer : SerializerWithStringManifest
{
    /// <summary>The serializer's identifier, fixed for the life of the format (next to the crabkv serializer's 4242).</summary>
    public const int SerializerIdentifier = 4243;

    /// <summary>The manifests (see the table at the top of this file).</summary>
    internal static class Manifests
    {
        public const string PartitionEnvelope = "PE";
        public const string PartitionCountQuery = "PQ";
        public const string PartitionCountReply = "pq";
        public const string DeletePartitionCopy = "DC";
        public const string StartPartition = "SP";
        public const string StartPartitionAnswer = "sp";
    }

    /// <summary>Created by Akka's serialization extension from the HOCON binding.</summary>
    public CrabKvClusterSerializer(ExtendedActorSystem system) : base(system)
    {
    }

    /// <inheritdoc />
    public override int Identifier => SerializerIdentifier;

    /// <inheritdoc />
    public override string Manifest(object o) => o switch
    {
        PartitionEnvelope => Manifests.PartitionEnvelope,
        PartitionCountQuery => Manifests.PartitionCountQuery,
        PartitionCountReply => Manifests.PartitionCountReply,
        DeletePartitionCopy => Manifests.DeletePartitionCopy,
        StartPartition => Manifests.StartPartition,
        StartPartitionAnswer => Manifests.StartPartitionAnswer,
        _ => throw CannotSerialize(o),
    };

    /// <inheritdoc />
    public override byte[] ToBinary(object obj)
    {
        switch (obj)
        {
            case PartitionEnvelope e:
            {
                var inner = system.Serialization.FindSerializerFor(e.Message);
                var manifest = Akka.Serialization.Serialization.ManifestFor(inner, e.Message);
                var payload = inner.ToBinary(e.Message);
                var measure = WireWriter.Measuring();
                WriteEnvelope(ref measure, e.Partition, inner.Identifier, manifest, payload);
                var bytes = GC.AllocateUninitializedArray<byte>(measure.Position);
                var writer = WireWriter.Into(bytes);
                WriteEnvelope(ref writer, e.Partition, inner.Identifier, manifest, payload);
                return bytes;
            }
            case PartitionCountQuery q:
                return Int(q.Partitions);
            case PartitionCountReply r:
                return Int(r.Partitions);
            case StartPartition sp:
                return Int(sp.Partition);
            case StartPartitionAnswer a:
                return Int(a.Accepted ? 1 : 0);
            case DeletePartitionCopy d:
            {
                var measure = WireWriter.Measuring();
                measure.Int(d.Partition);
                measure.String(d.NewHolder);
                measure.Long(d.Epoch);
                var bytes = new byte[measure.Position];
                var writer = WireWriter.Into(bytes);
                writer.Int(d.Partition);
                writer.String(d.NewHolder);
                writer.Long(d.Epoch);
                return bytes;
            }
            default:
                throw CannotSerialize(obj);
        }
    }

    /// <inheritdoc />
    public override object FromBinary(byte[] bytes, string manifest)
    {
        var r = new WireReader(bytes, manifest);
        object message;
        switch (manifest)
        {
            case Manifests.PartitionEnvelope:
                var partition = r.Int();
                var serializerId = r.Int();
                var innerManifest = r.String() ?? "";
                var payload = r.Bytes() ?? throw new SerializationException("PartitionEnvelope without a payload.");
                message = new PartitionEnvelope(partition, system.Serialization.Deserialize(payload, serializerId, innerManifest));
                break;
            case Manifests.PartitionCountQuery:
                message = new PartitionCountQuery(r.Int());
                break;
            case Manifests.PartitionCountReply:
                message = new PartitionCountReply(r.Int());
                break;
            case Manifests.StartPartition:
                message = new StartPartition(r.Int());
                break;
            case Manifests.StartPartitionAnswer:
                message = new StartPartitionAnswer(r.Int() switch
                {
                    0 => false,
                    1 => true,
                    var other => throw new SerializationException($"StartPartitionAnswer with accepted = {other} (expected 0 or 1)."),
                });
                break;
            case Manifests.DeletePartitionCopy:
                var deleted = r.Int();
                var holder = r.String() ?? throw new SerializationException("DeletePartitionCopy without a holder.");
                message = new DeletePartitionCopy(deleted, holder, r.Long());
                break;
            default:
                throw new SerializationException($"Unknown CrabKv.Cluster manifest '{manifest}' ({bytes.Length} bytes): sent by a node with another version of CrabKv.Cluster?");
        }
        r.End();
        return message;
    }

    private static void WriteEnvelope(ref WireWriter w, int partition, int serializerId, string manifest, byte[] payload)
    {
        w.Int(partition);
        w.Int(serializerId);
        w.String(manifest);
        w.Bytes(payload);
    }

    private static byte[] Int(int value)
    {
        var measure = WireWriter.Measuring();
        measure.Int(value);
        var bytes = new byte[measure.Position];
        var writer = WireWriter.Into(bytes);
        writer.Int(value);
        return bytes;
    }

    private static ArgumentException CannotSerialize(object o) =>
        new($"{nameof(CrabKvClusterSerializer)} cannot serialize {o.GetType().FullName}: it is not a CrabKv.Cluster message (see the manifest table in CrabKvClusterSerializer.cs).", nameof(o));
}
