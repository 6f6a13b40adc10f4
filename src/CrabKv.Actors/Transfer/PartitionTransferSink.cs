using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using CrabKv.Storage;
using CrabKv.Storage.Transfer;

namespace CrabKv.Actors.Transfer;

/// <summary>
/// Pulls one partition from a <see cref="PartitionTransferSource"/> into a data directory:
/// asks for the manifest, then for chunks of <c>transfer.chunk-bytes</c>, at most
/// <c>transfer.window</c> outstanding; writes them through a <see cref="PartitionImport"/>
/// (staging directory <c>p-NNN.incoming</c>); verifies and installs; tells the requester
/// <see cref="TransferCompleted"/> or <see cref="TransferFailed"/>, the source
/// <see cref="TransferDone"/>, and stops. Progress goes to the event stream
/// (<see cref="TransferProgress"/>). Runs on <c>crabkv.io-dispatcher</c>.
/// </summary>
/// <remarks>
/// <code>
///  AwaitingManifest ──TransferManifest──► Pulling ──last chunk──► verify + install ──► TransferCompleted, stop
///        │                                   │
///        └── refused / I/O error / (max-retries + 1) × chunk-timeout without progress
///                      ──► staging deleted, TransferFailed, stop
/// </code>
/// A silence of <c>chunk-timeout</c> re-requests the manifest or every outstanding chunk
/// (a lost message); any progress resets the count. A chunk that arrives twice is written
/// once. Stopped from outside (its node going down), the sink leaves the staging directory
/// as a crash would: without <c>COMPLETE</c>, so the next <see cref="DataDirectory.Open"/>
/// discards it.
/// </remarks>
public sealed class PartitionTransferSink : ReceiveActor, IWithTimers
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IActorRef _source;
    private readonly int _partition;
    private readonly string _target;
    private readonly IActorRef _requester;
    private readonly TransferSettings _settings;
    private readonly long _transferId = Random.Shared.NextInt64(1, long.MaxValue);
    private readonly Stopwatch _elapsed = new();
    private readonly Queue<(string File, long Offset, int Length)> _toRequest = new();
    private readonly Dictionary<(string File, long Offset), int> _outstanding = new();
    private PartitionImport? _import;
    private long _total;
    private int _silences;
    private bool _finished;

    /// <summary>Creates the sink; it starts on its own.</summary>
    public PartitionTransferSink(IActorRef source, int partition, string dataDir, IActorRef requester, TransferSettings settings)
    {
        _source = source;
        _partition = partition;
        _target = DataDirectory.PartitionDirectory(Path.GetFullPath(dataDir), partition);
        _requester = requester;
        _settings = settings;
        AwaitingManifest();
    }

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>
    /// Props on the I/O dispatcher: pull <paramref name="partition"/> from <paramref name="source"/>
    /// into <paramref name="dataDir"/>, and tell <paramref name="requester"/> how it ended.
    /// </summary>
    public static Props Props(IActorRef source, int partition, string dataDir, IActorRef requester, TransferSettings settings) =>
        Akka.Actor.Props.Create(() => new PartitionTransferSink(source, partition, dataDir, requester, settings)).WithDispatcher(settings.IoDispatcher);

    /// <inheritdoc />
    protected override void PreStart()
    {
        _elapsed.Start();
        _source.Tell(new TransferManifestRequest(_partition, _transferId));
        Timers.StartSingleTimer(Silence.Instance, Silence.Instance, _settings.ChunkTimeout);
    }

    private void AwaitingManifest()
    {
        Receive<TransferManifest>(m => m.TransferId == _transferId, OnManifest);
        Receive<TransferRefused>(m => m.TransferId == _transferId, m => Fail($"the source refused: {m.Reason}"));
        Receive<Silence>(_ =>
        {
            if (Silent())
            {
                _source.Tell(new TransferManifestRequest(_partition, _transferId));
            }
        });
        ReceiveAny(Ignore);
    }

    private void Pulling()
    {
        Receive<ChunkData>(m => m.TransferId == _transferId, OnChunk);
        Receive<TransferRefused>(m => m.TransferId == _transferId, m => Fail($"the source refused: {m.Reason}"));
        Receive<Silence>(_ =>
        {
            if (Silent())
            {
                foreach (var ((file, offset), length) in _outstanding)
                {
                    _source.Tell(new ChunkRequest(_transferId, file, offset, length));
                }
            }
        });
        ReceiveAny(Ignore);
    }

    private void OnManifest(TransferManifest m)
    {
        var manifest = m.ToPartitionManifest();
        try
        {
            _import = PartitionImport.Begin(_target, manifest, _settings.Files);
        }
        catch (Exception e) when (e is CrabKvException or IOException or UnauthorizedAccessException)
        {
            Fail($"cannot stage the partition: {e.Message}");
            return;
        }
        _total = manifest.TotalBytes;
        foreach (var f in manifest.Files)
        {
            for (long at = 0; at < f.Length; at += _settings.ChunkBytes)
            {
                _toRequest.Enqueue((f.Name, at, (int)Math.Min(_settings.ChunkBytes, f.Length - at)));
            }
        }
        _log.Info("Transfer {0}: pulling partition {1} ({2} files, {3} bytes) from {4}", _transferId, _partition, manifest.Files.Count, _total, _source.Path);
        Progressed();
        Become(Pulling);
        RequestMore();
    }

    private void OnChunk(ChunkData m)
    {
        if (!_outstanding.Remove((m.File, m.Offset), out var length))
        {
            return; // a duplicate of a chunk asked for twice
        }
        if (m.Bytes.Length != length)
        {
            Fail($"chunk {m.File}@{m.Offset} has {m.Bytes.Length} bytes, {length} were asked for");
            return;
        }
        try
        {
            _import!.Write(m.File, m.Offset, m.Bytes);
        }
        catch (Exception e) when (e is CrabKvException or IOException)
        {
            Fail($"writing {m.File}@{m.Offset} failed: {e.Message}");
            return;
        }
        Progressed();
        Context.System.EventStream.Publish(new TransferProgress(_partition, _transferId, _import.BytesPresent, _total));
        RequestMore();
    }

    private void RequestMore()
    {
        while (_outstanding.Count < _settings.Window && _toRequest.TryDequeue(out var c))
        {
            _outstanding.Add((c.File, c.Offset), c.Length);
            _source.Tell(new ChunkRequest(_transferId, c.File, c.Offset, c.Length));
        }
        if (_outstanding.Count == 0)
        {
            Finish();
        }
    }

    private void Finish()
    {
        try
        {
            _import!.Complete();
        }
        catch (Exception e) when (e is CrabKvException or IOException or UnauthorizedAccessException)
        {
            Fail($"verification or install failed: {e.Message}");
            return;
        }
        _finished = true;
        _source.Tell(new TransferDone(_transferId));
        _log.Info("Transfer {0}: partition {1} installed in '{2}' ({3} bytes in {4})", _transferId, _partition, _target, _total, _elapsed.Elapsed);
        _requester.Tell(new TransferCompleted(_partition, _total, _elapsed.Elapsed));
        Context.Stop(Self);
    }

    /// <summary>Nothing was installed: the staging directory is deleted, the source released.</summary>
    private void Fail(string reason)
    {
        _finished = true;
        try
        {
            _import?.Abort();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _import?.Dispose(); // left without COMPLETE: the next open of the data directory discards it
            _log.Warning("Transfer {0}: could not delete the staging directory: {1}", _transferId, e.Message);
        }
        _source.Tell(new TransferDone(_transferId));
        _log.Warning("Transfer {0} of partition {1} failed: {2}", _transferId, _partition, reason);
        _requester.Tell(new TransferFailed(_partition, reason));
        Context.Stop(Self);
    }

    private void Progressed()
    {
        _silences = 0;
        Timers.StartSingleTimer(Silence.Instance, Silence.Instance, _settings.ChunkTimeout);
    }

    /// <summary>Counts a silence; true to ask again, false (after failing) when the retries are spent.</summary>
    private bool Silent()
    {
        if (++_silences > _settings.MaxRetries)
        {
            Fail($"no answer from {_source.Path} after {_settings.MaxRetries + 1} waits of {_settings.ChunkTimeout}");
            return false;
        }
        _log.Warning("Transfer {0}: nothing received for {1}; asking again ({2} of {3})", _transferId, _settings.ChunkTimeout, _silences, _settings.MaxRetries);
        Timers.StartSingleTimer(Silence.Instance, Silence.Instance, _settings.ChunkTimeout);
        return true;
    }

    private void Ignore(object message) => _log.Debug("Transfer {0}: ignored {1}", _transferId, message.GetType().Name);

    /// <inheritdoc />
    protected override void PostStop()
    {
        if (!_finished)
        {
            _import?.Dispose(); // as a crash would leave it: no COMPLETE, discarded at the next open
            _source.Tell(new TransferDone(_transferId));
        }
    }

    private sealed class Silence : INoSerializationVerificationNeeded, IDeadLetterSuppression
    {
        public static readonly Silence Instance = new();
    }
}
