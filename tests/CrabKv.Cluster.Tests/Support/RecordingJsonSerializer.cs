using System.Collections.Concurrent;
using Akka.Actor;
using Akka.Configuration;
using Akka.Serialization;

namespace CrabKv.Cluster.Tests.Support;

/// <summary>
/// Akka's default JSON serializer, recording the type of everything it serializes: bound in
/// place of "json" in the cluster tests, it shows whether any message fell back to JSON on its
/// way over the wire.
/// </summary>
public sealed class RecordingJsonSerializer : NewtonSoftJsonSerializer
{
    /// <summary>Every type serialized with JSON, by any actor system of the test process.</summary>
    public static ConcurrentDictionary<Type, int> Serialized { get; } = new();

    public RecordingJsonSerializer(ExtendedActorSystem system) : base(system)
    {
    }

    public RecordingJsonSerializer(ExtendedActorSystem system, Config config) : base(system, config)
    {
    }

    public override int Identifier => 1;

    public override byte[] ToBinary(object obj)
    {
        Serialized.AddOrUpdate(obj.GetType(), 1, (_, n) => n + 1);
        return base.ToBinary(obj);
    }
}
