using Akka.Actor;

namespace CrabKv.Actors.Partition;

/// <summary>Test hook: make the writer's next writes/fsyncs fail ("write" / "sync").</summary>
internal sealed record InjectFaults(Func<string, bool>? FailWhen) : INoSerializationVerificationNeeded;
