using Akka.Actor;
using Akka.Configuration;
using Akka.TestKit.Xunit2;
using CrabKv.Actors.Client;
using CrabKv.Storage.Files;
using Xunit;
using Xunit.Abstractions;

namespace CrabKv.Actors.Tests.Support;

/// <summary>
/// A TestKit with a temp data directory and helpers to start, stop, crash and restart a
/// store on it. Replies to requests sent with <see cref="Request"/> come to TestActor; events
/// of the event stream should go to a separate probe (<see cref="SubscribeProbe{T}"/>).
///
/// Crash simulation: <see cref="Crash"/> stops the store actor without the graceful path.
/// Each partition's CacheActor is stopped with it and drops its dirty write-back entries,
/// exactly as a process kill loses memory. The WAL writer still hands bytes it has already
/// accepted to the OS in PostStop: that is what a process kill does too (the OS keeps
/// written bytes; only a power loss would lose un-fsynced ones: run the store on a
/// <c>PowerLossFileLayer</c> and cut the power after the crash to simulate that).
///
/// Failures and slow disks: pass a <c>FaultyFileLayer</c> to <see cref="StartStore(string, FileLayer?)"/>
/// and make its writes or fsyncs fail, or park them (<see cref="WalSegment"/> limits a rule to
/// the WAL writer's segment files).
/// </summary>
public abstract class StoreTestBase : TestKit, IDisposable
{
    /// <summary>Generous per-message timeout: 2 cores, test classes in parallel, real fsyncs.</summary>
    protected static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    private static readonly Config TestConfig = ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.stdout-loglevel = WARNING
        akka.test.single-expect-default = 15s
        """).WithFallback(CrabKvSettings.DefaultConfig());

    private int _storeGeneration;

    protected StoreTestBase(ITestOutputHelper? output = null) : base(TestConfig, output: output)
    {
    }

    protected TempDataDir Dir { get; } = new();

    /// <summary>Settings for a store in <see cref="Dir"/> (partitions = 1 unless <paramref name="hocon"/> says otherwise).</summary>
    protected CrabKvSettings Settings(string hocon = "", FileLayer? files = null) =>
        Dir.Settings(hocon) with { Files = files ?? FileLayer.Default };

    /// <summary>Starts a store under a fresh actor name (so a restart inside a test never clashes with the old name).</summary>
    protected IActorRef StartStore(string hocon = "", FileLayer? files = null) =>
        StartStore(Settings(hocon, files));

    protected IActorRef StartStore(CrabKvSettings settings)
    {
        var generation = Interlocked.Increment(ref _storeGeneration);
        return CrabKvStore.Start(Sys, settings, name: generation == 1 ? "crabkv" : $"crabkv{generation}");
    }

    /// <summary>Graceful stop: Shutdown → ShutdownOk, then the store actor terminates (locks released).</summary>
    protected void GracefulStop(IActorRef store)
    {
        Watch(store);
        store.Tell(new Shutdown(4242), TestActor);
        ExpectMsg<ShutdownOk>(m => Assert.Equal(4242, m.RequestId), Timeout);
        ExpectTerminated(store, Timeout);
        Unwatch(store);
    }

    /// <summary>A crash: the store actor (and with it every partition) is stopped without the graceful path.</summary>
    protected void Crash(IActorRef store)
    {
        Watch(store);
        Sys.Stop(store);
        ExpectTerminated(store, Timeout);
        Unwatch(store);
    }

    /// <summary>Sends <paramref name="request"/> from TestActor and returns the one reply.</summary>
    protected object Request(IActorRef target, object request)
    {
        target.Tell(request, TestActor);
        return ExpectMsg<object>(Timeout);
    }

    /// <summary>Sends <paramref name="request"/> and asserts the reply type.</summary>
    protected T Request<T>(IActorRef target, object request)
    {
        var reply = Request(target, request);
        return Assert.IsType<T>(reply);
    }

    protected CrabKvError ExpectError(IActorRef target, object request, CrabKvErrorCode code)
    {
        var error = Request<CrabKvError>(target, request);
        Assert.Equal(code, error.Code);
        return error;
    }

    protected StoreStats Stats(IActorRef store) => Request<StoreStats>(store, new GetStats());

    protected PartitionStats Stats0(IActorRef store) => Assert.Single(Stats(store).Partitions);

    /// <summary>A partition actor of a local store, through the internal routing shortcut (not part of the protocol).</summary>
    protected static IActorRef PartitionRef(IActorRef store, int partition = 0)
    {
        var partitions = Internal.LocalStores.PartitionsOf(store) ?? throw new InvalidOperationException($"{store.Path} is not a local store actor.");
        Assert.True(partitions.Wait(Timeout), "the store never created its partitions");
        return partitions.Result[partition];
    }

    protected static Task<CrabKvClient> Connect(IActorRef store) => CrabKvClient.ConnectAsync(store, Timeout);

    protected Akka.TestKit.TestProbe SubscribeProbe<T>()
    {
        var probe = CreateTestProbe();
        Sys.EventStream.Subscribe(probe.Ref, typeof(T));
        return probe;
    }

    /// <summary>
    /// Path filter for fault rules: the WAL writer's segment files (<c>seg-*.data</c>). Merge
    /// outputs are written as <c>*.data.tmp</c> and hints as <c>*.hint.tmp</c>, so a rule
    /// with this filter never hits the compactor.
    /// </summary>
    protected static bool WalSegment(string path) => path.EndsWith(".data", StringComparison.Ordinal);

    protected static byte[] Bytes(string s) => System.Text.Encoding.UTF8.GetBytes(s);

    protected static string Text(byte[]? b) => b is null ? "<null>" : System.Text.Encoding.UTF8.GetString(b);

    /// <summary>Segment data files of partition <paramref name="partition"/> (name, size).</summary>
    protected IReadOnlyList<FileInfo> SegmentFiles(int partition = 0) =>
        new DirectoryInfo(Storage.DataDirectory.PartitionDirectory(Dir.Path, partition))
            .GetFiles("seg-*.data")
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .ToList();

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            Dir.Dispose();
        }
    }
}
