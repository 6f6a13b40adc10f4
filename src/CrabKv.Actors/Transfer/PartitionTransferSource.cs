using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using CrabKv.Storage;
using CrabKv.Storage.Transfer;

namespace CrabKv.Actors.Transfer;

/// <summary>
/// Serves partitions of one data directory to <see cref="PartitionTransferSink"/>s on any
/// node: a <see cref="TransferManifestRequest"/> opens a <see cref="PartitionExport"/> (the
/// partition's LOCK is taken, so it must have been stopped with <see cref="StopPartition"/>),
/// <see cref="ChunkRequest"/>s are answered with <see cref="ChunkData"/>, and the export is
/// released on <see cref="TransferDone"/>, when the sink stops, or after
/// <c>transfer.idle-timeout</c> without a request. Errors are <see cref="TransferRefused"/>.
/// <see cref="GetTransferActivity"/> tells what it is serving.
/// Runs on <c>crabkv.io-dispatcher</c> (every request reads files).
/// </summary>
public sealed class PartitionTransferSource : ReceiveActor, IWithTimers
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly string _dataDir;
    private readonly TransferSettings _settings;
    private readonly Dictionary<long, Held> _held = new();
    private long _chunksServed;

    /// <summary>Creates the source for <paramref name="dataDir"/> (a node's data directory).</summary>
    public PartitionTransferSource(string dataDir, TransferSettings settings)
    {
        _dataDir = Path.GetFullPath(dataDir);
        _settings = settings;
        Receive<TransferManifestRequest>(OnManifestRequest);
        Receive<ChunkRequest>(OnChunkRequest);
        Receive<TransferDone>(m => Release(m.TransferId, "done"));
        Receive<GetTransferActivity>(_ => Sender.Tell(new TransferActivity(_held.Count, _chunksServed)));
        Receive<Terminated>(t =>
        {
            foreach (var id in _held.Where(h => h.Value.Sink.Equals(t.ActorRef)).Select(h => h.Key).ToList())
            {
                Release(id, "its sink stopped");
            }
        });
        Receive<IdleCheck>(_ =>
        {
            foreach (var id in _held.Where(h => h.Value.Idle.Elapsed >= _settings.IdleTimeout).Select(h => h.Key).ToList())
            {
                Release(id, $"no request for {_settings.IdleTimeout}");
            }
        });
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>Props on the I/O dispatcher of <paramref name="settings"/>.</summary>
    public static Props Props(string dataDir, TransferSettings settings) =>
        Akka.Actor.Props.Create(() => new PartitionTransferSource(dataDir, settings)).WithDispatcher(settings.IoDispatcher);

    private void OnManifestRequest(TransferManifestRequest m)
    {
        if (_held.TryGetValue(m.TransferId, out var again))
        {
            again.Idle.Restart(); // the sink's request was retried: same answer
            Sender.Tell(ManifestOf(m.TransferId, again));
            return;
        }
        var directory = DataDirectory.PartitionDirectory(_dataDir, m.Partition);
        PartitionExport export;
        try
        {
            export = PartitionExport.Open(directory, _settings.Files);
        }
        catch (Exception e) when (e is CrabKvException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            _log.Warning("Transfer {0} of partition {1} refused: {2}", m.TransferId, m.Partition, e.Message);
            Sender.Tell(new TransferRefused(m.TransferId, e.Message));
            return;
        }
        var held = new Held(m.Partition, export, Sender, Stopwatch.StartNew());
        _held.Add(m.TransferId, held);
        Context.Watch(Sender);
        if (_held.Count == 1)
        {
            var every = TimeSpan.FromTicks(Math.Max(_settings.IdleTimeout.Ticks / 4, TimeSpan.FromMilliseconds(10).Ticks));
            Timers.StartPeriodicTimer(IdleCheck.Instance, IdleCheck.Instance, every);
        }
        _log.Info("Transfer {0}: serving partition {1} ({2} files, {3} bytes) to {4}", m.TransferId, m.Partition, export.Manifest.Files.Count, export.Manifest.TotalBytes, Sender.Path);
        Sender.Tell(ManifestOf(m.TransferId, held));
    }

    private void OnChunkRequest(ChunkRequest m)
    {
        if (!_held.TryGetValue(m.TransferId, out var held))
        {
            Sender.Tell(new TransferRefused(m.TransferId, $"Transfer {m.TransferId} is not held here (released after {_settings.IdleTimeout} idle, or never started)."));
            return;
        }
        held.Idle.Restart();
        _chunksServed++;
        try
        {
            Sender.Tell(new ChunkData(m.TransferId, m.File, m.Offset, held.Export.ReadChunk(m.File, m.Offset, m.Length)));
        }
        catch (Exception e) when (e is CrabKvException or IOException)
        {
            _log.Warning("Transfer {0} of partition {1}: chunk {2}@{3} refused: {4}", m.TransferId, held.Partition, m.File, m.Offset, e.Message);
            Sender.Tell(new TransferRefused(m.TransferId, e.Message));
            if (e is IOException)
            {
                Release(m.TransferId, "an I/O error");
            }
        }
    }

    private void Release(long transferId, string why)
    {
        if (!_held.Remove(transferId, out var held))
        {
            return;
        }
        held.Export.Dispose();
        if (!_held.Values.Any(h => h.Sink.Equals(held.Sink)))
        {
            Context.Unwatch(held.Sink);
        }
        if (_held.Count == 0)
        {
            Timers.Cancel(IdleCheck.Instance);
        }
        _log.Info("Transfer {0}: released partition {1} ({2})", transferId, held.Partition, why);
        Context.System.EventStream.Publish(new TransferReleased(held.Partition, transferId, why));
    }

    private static TransferManifest ManifestOf(long transferId, Held held) =>
        new(transferId, held.Partition, held.Export.Manifest.FormatVersion, held.Export.Manifest.Files);

    /// <inheritdoc />
    protected override void PostStop()
    {
        foreach (var h in _held.Values)
        {
            h.Export.Dispose();
        }
        _held.Clear();
    }

    private sealed record Held(int Partition, PartitionExport Export, IActorRef Sink, Stopwatch Idle);

    private sealed class IdleCheck : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly IdleCheck Instance = new();
    }
}
