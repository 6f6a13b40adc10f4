using Akka.Actor;
using Akka.Event;
using CrabKv.Actors.Cache;
using CrabKv.Actors.Internal;
using CrabKv.Actors.Wal;
using CrabKv.Storage.Caches;
using CrabKv.Storage.Index;
using CrabKv.Storage.Partition;

namespace CrabKv.Actors.Partition;

// Writes: validation by WriteRules, then write-through (in flight to the writer, indexed on
// the ack) or write-back (buffered by the cache, flushed as one atomic batch).
internal sealed partial class PartitionActor
{
    private void OnPut(Put m)
    {
        if (RefuseOverloaded(m.RequestId)
            || Refuse(WriteRules.CheckPut(_limits, m.Key, m.Value, m.Ttl, NowIfExpiring(m.Ttl), out var expiry), m.RequestId)
            || RefuseForeignKey(m.Key, m.RequestId))
        {
            return;
        }
        if (_settings.WriteBackEnabled)
        {
            if (WriteRules.NeverFitsWriteBack(_limits, m.Key, m.Value))
            {
                Refuse(WriteRules.WriteBackTooSmall(_limits, m.Key, m.Value.Length), m.RequestId);
                return;
            }
            _puts++;
            _cache.Tell(new BufferWrite(m.Key, m.Value, expiry, false, Sender, m.RequestId));
            return;
        }
        _puts++;
        Append([m.Key], [new LogRecord(KeyRules.Utf8.GetBytes(m.Key), m.Value, expiry)], isBatch: false, Sender, new PutOk(m.RequestId), m.RequestId);
    }

    private void OnDelete(Delete m)
    {
        if (RefuseOverloaded(m.RequestId)
            || Refuse(WriteRules.CheckKey(m.Key, _limits.MaxKeyBytes, out byte[] keyBytes), m.RequestId)
            || RefuseForeignKey(m.Key, m.RequestId))
        {
            return;
        }
        _deletes++;
        var now = Now;
        var existed = _inFlight.TryGet(m.Key, out var pending) ? pending.IsLiveAt(now) : _index.ContainsLive(keyBytes, now);
        if (_settings.WriteBackEnabled)
        {
            _cache.Tell(new BufferWrite(m.Key, null, 0, existed, Sender, m.RequestId));
            return;
        }
        if (!_index.HasRecord(keyBytes) && !_inFlight.Contains(m.Key))
        {
            Sender.Tell(new DeleteOk(false, m.RequestId)); // nothing on disk or in flight to hide
            return;
        }
        Append([m.Key], [new LogRecord(keyBytes, null, 0)], isBatch: false, Sender, new DeleteOk(existed, m.RequestId), m.RequestId);
    }

    private void OnPutBatch(PutBatch m)
    {
        if (RefuseOverloaded(m.RequestId)
            || Refuse(WriteRules.CheckBatch(_limits, m.Entries, Now, out var write), m.RequestId)
            || RefuseForeignKeys(write, m.RequestId)
            || RefuseNeverFitsWriteBack(write, m.RequestId))
        {
            return;
        }
        _puts += write.Count;
        if (_settings.WriteBackEnabled)
        {
            var entries = new (string Key, byte[]? Value, long Expiry)[write.Count];
            for (var i = 0; i < entries.Length; i++)
            {
                entries[i] = (write.Keys[i], write.Values[i], write.Expiries[i]);
            }
            _cache.Tell(new BufferBatch(entries, Sender, m.RequestId));
            return;
        }
        Append(write.Keys, write.ToRecords(), isBatch: true, Sender, new PutBatchOk(write.Count, m.RequestId), m.RequestId);
    }

    private void OnFlush(Flush m)
    {
        if (_settings.WriteBackEnabled)
        {
            _cache.Tell(new FlushDirty(Sender, m.RequestId));
        }
        else
        {
            _writer.Tell(new WalSync(Sender, new FlushOk(m.RequestId)));
        }
    }

    /// <summary>The cache drained its dirty entries: write them as one atomic batch (TTLs kept), then index them on ack.</summary>
    private void OnFlushBatch(FlushBatch m)
    {
        var (keys, records) = WriteBackBuffer.FlushRecords(m.Entries, (key, keyBytes) => _index.HasRecord(keyBytes) || _inFlight.Contains(key));
        if (records.Length > 0 && _readOnlyReason is null)
        {
            var seq = _inFlight.Add(keys, records, m.FlushId, null, 0);
            _writer.Tell(new WalAppend(seq, records, IsBatch: true, null, null));
        }
        else if (m.Entries.Length > 0)
        {
            _cache.Tell(new FlushIndexed(m.FlushId));
        }
        if (m.ReplyTo is not null)
        {
            _writer.Tell(new WalSync(m.ReplyTo, new FlushOk(m.RequestId)));
        }
        if (m.ForCompact)
        {
            _writer.Tell(WalRoll.Instance); // after the flushed entries: they are merged too
        }
        if (m.ForStop)
        {
            _writer.Tell(WalClose.Instance);
        }
    }

    /// <summary>Hands a write to the writer, which answers <paramref name="replyTo"/> itself once it is written (and fsynced).</summary>
    private void Append(string[] keys, LogRecord[] records, bool isBatch, IActorRef replyTo, object reply, long requestId)
    {
        var seq = _inFlight.Add(keys, records, flushId: 0, replyTo, requestId);
        _writer.Tell(new WalAppend(seq, records, isBatch, replyTo, reply));
    }

    private void OnAcks(WalAcks m)
    {
        _fsyncs = Math.Max(_fsyncs, m.Fsyncs);
        _walWrites = m.Writes;
        var now = Now;
        foreach (var item in m.Items)
        {
            var p = _inFlight.Acknowledge(item.Seq);
            if (p is null)
            {
                _log.Error("Partition {0}: acknowledgement {1} does not match the oldest pending write", _partition, item.Seq);
                _unmatchedAcks = true;
                continue;
            }
            for (var i = 0; i < p.Records.Length; i++)
            {
                var record = p.Records[i];
                var tombstone = record.Value is null;
                _index.Apply(record.Key, new KeyLocation(item.Segment, item.Offsets[i], item.Sizes[i], record.Expiry, tombstone), tombstone, now);
            }
            if (p.FlushId != 0)
            {
                _cache.Tell(new FlushIndexed(p.FlushId));
            }
        }
    }

    /// <summary>The clock, read only when a write can expire (reading it costs more than the rest of a put's checks).</summary>
    private long NowIfExpiring(TimeSpan? ttl) => ttl is null && _limits.DefaultTtl is null ? 0 : Now;

    private bool RefuseOverloaded(long requestId)
    {
        if (!_inFlight.IsFull)
        {
            return false;
        }
        Sender.Tell(ErrorReply(CrabKvErrorCode.Overloaded, $"Partition {_partition} has {_inFlight.Bytes} bytes of writes in flight (limit {_inFlight.MaxBytes}); retry shortly.", requestId));
        return true;
    }

    /// <summary>A key of another partition would be written where no read ever looks for it: refused.</summary>
    private bool RefuseForeignKeys(CheckedWrite write, long requestId)
    {
        foreach (var key in write.Keys)
        {
            if (RefuseForeignKey(key, requestId))
            {
                return true;
            }
        }
        return false;
    }

    private bool RefuseForeignKey(string key, long requestId) =>
        RefuseForeignKey(key, KeyPartitioner.PartitionOf(key, _settings.Partitions), requestId);

    /// <summary>The check of a key already encoded (strict UTF-8): hashes the bytes, the string is not encoded again.</summary>
    private bool RefuseForeignKey(string key, ReadOnlySpan<byte> utf8Key, long requestId) =>
        RefuseForeignKey(key, KeyPartitioner.PartitionOfUtf8(utf8Key, _settings.Partitions), requestId);

    private bool RefuseForeignKey(string key, int owner, long requestId)
    {
        if (owner == _partition)
        {
            return false;
        }
        Sender.Tell(ErrorReply(CrabKvErrorCode.InvalidRequest,
            $"Key '{key}' belongs to partition {owner} of {_settings.Partitions}, not to partition {_partition}; send keyed requests to the store (or the partition KeyPartitioner names). Nothing was written.", requestId));
        return true;
    }

    /// <summary>Write-back: a batch larger than the whole buffer can never be buffered; refused (the engine writes it through instead, see src/README.md).</summary>
    private bool RefuseNeverFitsWriteBack(CheckedWrite write, long requestId) =>
        WriteRules.NeverFitsWriteBack(_limits, write) && Refuse(WriteRules.WriteBackTooSmall(_limits, write), requestId);
}
