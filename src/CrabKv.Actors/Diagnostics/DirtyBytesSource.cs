using System.Collections.Concurrent;

namespace CrabKv.Actors.Diagnostics;

/// <summary>
/// One write-back buffer's dirty bytes as the <c>crabkv.write_back.dirty</c> instrument reads
/// them. The owning CacheActor publishes its count after each change (<see cref="Set"/>, one
/// volatile write) and disposes the source when it stops, whatever the reason (graceful stop,
/// crash, a failed partition, the actor system terminating): the observable instrument sums
/// the sources alive at the moment it is read, so several partitions and stores in one
/// process add up and a stopped partition leaves nothing behind.
/// </summary>
internal sealed class DirtyBytesSource : IDisposable
{
    private static readonly ConcurrentDictionary<DirtyBytesSource, byte> Live = new();

    private long _bytes;

    private DirtyBytesSource()
    {
    }

    /// <summary>The number of sources alive (tests: none may outlive its partition).</summary>
    internal static int LiveCount => Live.Count;

    /// <summary>A new source, counted until disposed.</summary>
    public static DirtyBytesSource Register()
    {
        var source = new DirtyBytesSource();
        Live.TryAdd(source, 0);
        return source;
    }

    /// <summary>Publishes the buffer's current dirty bytes.</summary>
    public void Set(long bytes) => Volatile.Write(ref _bytes, bytes);

    /// <summary>The sum over live sources (called by the instrument on the listener's thread).</summary>
    internal static long SumOfLive()
    {
        long sum = 0;
        foreach (var source in Live.Keys)
        {
            sum += Volatile.Read(ref source._bytes);
        }
        return sum;
    }

    /// <summary>Stops counting this source.</summary>
    public void Dispose() => Live.TryRemove(this, out _);
}
