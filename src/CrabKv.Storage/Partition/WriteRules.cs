using CrabKv.Storage.Caches;
using CrabKv.Storage.Format;

namespace CrabKv.Storage.Partition;

/// <summary>The limits a partition checks every write against (HOCON <c>crabkv.limits</c>, <c>segment</c>, <c>write-back</c>).</summary>
/// <param name="MaxKeyBytes">Longest key in UTF-8 bytes.</param>
/// <param name="MaxValueBytes">Longest value in bytes.</param>
/// <param name="MaxSegmentBytes">Segment roll size: one batch must fit one segment.</param>
/// <param name="DefaultTtl">TTL of writes that give none (null = never expire).</param>
/// <param name="MaxDirtyBytes">Write-back buffer limit as configured; null when write-back is off.</param>
public sealed record WriteLimits(int MaxKeyBytes, int MaxValueBytes, long MaxSegmentBytes, TimeSpan? DefaultTtl, long? MaxDirtyBytes)
{
    /// <summary>
    /// The write-back limit in force. A flush is one atomic batch, never split across segments
    /// (FORMAT.md section 4); the log rolls before it, and a flush larger than the roll size
    /// makes that one segment larger, up to the format's bound (2 GiB). So the buffer is
    /// clamped to the format's bound, not to the roll size (a small roll size must not make
    /// write-back useless). Batches a caller sends must still fit one segment (<see cref="WriteRules.CheckBatch"/>).
    /// </summary>
    public long EffectiveMaxDirtyBytes => Math.Min(MaxDirtyBytes ?? long.MaxValue, FormatConstants.MaxSegmentBytes - FormatConstants.FileHeaderSize);

    /// <summary>Records of a batch may fill one segment minus its header.</summary>
    public long MaxBatchRecordBytes => MaxSegmentBytes - FormatConstants.FileHeaderSize;
}

/// <summary>A validated write: encoded keys and absolute expiries, ready for the log or the write-back buffer.</summary>
public sealed class CheckedWrite
{
    internal CheckedWrite(string[] keys, byte[][] keyBytes, byte[]?[] values, long[] expiries, bool isBatch)
    {
        Keys = keys;
        KeyBytes = keyBytes;
        Values = values;
        Expiries = expiries;
        IsBatch = isBatch;
    }

    /// <summary>The keys.</summary>
    public string[] Keys { get; }

    /// <summary>The keys as strict UTF-8.</summary>
    public byte[][] KeyBytes { get; }

    /// <summary>The values (null = delete), as given: raw, not compressed.</summary>
    public byte[]?[] Values { get; }

    /// <summary>Absolute expiries (0 = never; deletes 0).</summary>
    public long[] Expiries { get; }

    /// <summary>True for a <c>PutBatch</c>: framed all-or-none even with one entry.</summary>
    public bool IsBatch { get; }

    /// <summary>Number of operations.</summary>
    public int Count => Keys.Length;

    /// <summary>The log records of this write.</summary>
    public LogRecord[] ToRecords()
    {
        var records = new LogRecord[Keys.Length];
        for (var i = 0; i < records.Length; i++)
        {
            records[i] = new LogRecord(KeyBytes[i], Values[i], Expiries[i]);
        }
        return records;
    }

    /// <summary>Bytes of keys and values (what an in-flight write holds in memory).</summary>
    public long PayloadBytes
    {
        get
        {
            long bytes = 0;
            for (var i = 0; i < Keys.Length; i++)
            {
                bytes += KeyBytes[i].Length + (Values[i]?.Length ?? 0);
            }
            return bytes;
        }
    }

    /// <summary>What these operations cost in a write-back buffer (<see cref="WriteBackBuffer.CostOf"/>).</summary>
    public long WriteBackCost
    {
        get
        {
            long cost = 0;
            for (var i = 0; i < Keys.Length; i++)
            {
                cost += WriteBackBuffer.CostOf(Keys[i], Values[i]);
            }
            return cost;
        }
    }
}

/// <summary>
/// Every rule a write must pass before anything is written (ARCHITECTURE.md "Bad input gets a
/// clear error and changes nothing"), as pure functions returning a <see cref="Refusal"/>
/// instead of throwing: the embedded engine throws it, the partition actor replies it. The
/// one place these rules and their messages live.
/// </summary>
public static class WriteRules
{
    /// <summary>Checks a key (FORMAT.md section 3: 1..max-key-bytes of strict UTF-8) and returns its UTF-8 length.</summary>
    public static Refusal? CheckKey(string? key, int maxKeyBytes, out int byteCount)
    {
        byteCount = string.IsNullOrEmpty(key) ? 0 : KeyRules.ByteCount(key);
        return byteCount switch
        {
            0 => new Refusal(CrabKvErrorCode.EmptyKey, RefusalSubject.Key, KeyRules.EmptyMessage),
            < 0 => new Refusal(CrabKvErrorCode.InvalidRequest, RefusalSubject.Key, KeyRules.NotTextMessage),
            _ when byteCount > maxKeyBytes => new Refusal(CrabKvErrorCode.KeyTooLarge, RefusalSubject.Key,
                KeyRules.TooLargeMessage(byteCount, "crabkv.limits.max-key-bytes", maxKeyBytes)),
            _ => null,
        };
    }

    /// <summary>Checks a key given as UTF-8 bytes: the same rules as a string key's.</summary>
    public static Refusal? CheckKey(ReadOnlySpan<byte> utf8Key, int maxKeyBytes) =>
        CheckKeyLength(utf8Key, maxKeyBytes) ?? (System.Text.Unicode.Utf8.IsValid(utf8Key)
            ? null
            : new Refusal(CrabKvErrorCode.InvalidRequest, RefusalSubject.Key, KeyRules.NotUtf8Message));

    /// <summary>
    /// The length rules of <see cref="CheckKey(ReadOnlySpan{byte}, int)"/> alone. A read may
    /// look a key up after this check and leave the UTF-8 check to a miss: a key found is equal
    /// to a stored key, and every stored key passed the whole check when it was written.
    /// </summary>
    public static Refusal? CheckKeyLength(ReadOnlySpan<byte> utf8Key, int maxKeyBytes) => utf8Key.Length switch
    {
        0 => new Refusal(CrabKvErrorCode.EmptyKey, RefusalSubject.Key, KeyRules.EmptyMessage),
        _ when utf8Key.Length > maxKeyBytes => new Refusal(CrabKvErrorCode.KeyTooLarge, RefusalSubject.Key,
            KeyRules.TooLargeMessage(utf8Key.Length, "crabkv.limits.max-key-bytes", maxKeyBytes)),
        _ => null,
    };

    /// <summary>Checks a key and encodes it.</summary>
    public static Refusal? CheckKey(string? key, int maxKeyBytes, out byte[] keyBytes)
    {
        keyBytes = [];
        var refusal = CheckKey(key, maxKeyBytes, out int _);
        if (refusal is null)
        {
            keyBytes = KeyRules.Utf8.GetBytes(key!);
        }
        return refusal;
    }

    /// <summary>Checks a value's length.</summary>
    public static Refusal? CheckValue(string key, int length, int maxValueBytes) =>
        length > maxValueBytes
            ? new Refusal(CrabKvErrorCode.ValueTooLarge, RefusalSubject.Size,
                $"Value of '{Shorten(key)}' is {length} bytes; the limit (crabkv.limits.max-value-bytes) is {maxValueBytes}.")
            : null;

    /// <summary>The absolute expiry of a put at <paramref name="nowMs"/>: its TTL, else the default TTL, else never.</summary>
    public static Refusal? ExpiryFor(string key, TimeSpan? ttl, TimeSpan? defaultTtl, long nowMs, out long expiry)
    {
        expiry = 0;
        var t = ttl ?? defaultTtl;
        if (t is not { } span)
        {
            return null;
        }
        if (span <= TimeSpan.Zero)
        {
            return new Refusal(CrabKvErrorCode.InvalidRequest, RefusalSubject.Ttl, $"TTL of '{Shorten(key)}' must be positive, got {span}.");
        }
        expiry = Expiry.After(span, nowMs);
        return null;
    }

    /// <summary>Checks one put (key, value, TTL) without allocating; <paramref name="expiry"/> is its absolute expiry.</summary>
    public static Refusal? CheckPut(WriteLimits limits, string key, byte[]? value, TimeSpan? ttl, long nowMs, out long expiry)
    {
        expiry = 0;
        var refusal = CheckKey(key, limits.MaxKeyBytes, out int _);
        if (refusal is null && value is null)
        {
            refusal = new Refusal(CrabKvErrorCode.InvalidRequest, RefusalSubject.Request, $"Value of '{Shorten(key)}' is null.");
        }
        return refusal ?? CheckValue(key, value!.Length, limits.MaxValueBytes) ?? ExpiryFor(key, ttl, limits.DefaultTtl, nowMs, out expiry);
    }

    /// <summary>
    /// Checks a batch: at least one entry, no null entry, every key, value and TTL, and that its
    /// records fit one segment (a batch is never split across segments). Checked on raw value
    /// sizes, so compression can only help. Duplicate keys are allowed: the last entry wins.
    /// </summary>
    public static Refusal? CheckBatch(WriteLimits limits, IReadOnlyList<BatchEntry>? entries, long nowMs, out CheckedWrite write)
    {
        write = null!;
        if (entries is null || entries.Count == 0)
        {
            return new Refusal(CrabKvErrorCode.InvalidRequest, RefusalSubject.Request, "A batch needs at least one entry.");
        }
        var n = entries.Count;
        var keys = new string[n];
        var keyBytes = new byte[n][];
        var values = new byte[]?[n];
        var expiries = new long[n];
        long recordBytes = 0;
        for (var i = 0; i < n; i++)
        {
            var e = entries[i];
            if (e is null)
            {
                return new Refusal(CrabKvErrorCode.InvalidRequest, RefusalSubject.Request, $"Batch entry {i} is null; nothing was written.");
            }
            var refusal = CheckKey(e.Key, limits.MaxKeyBytes, out keyBytes[i]);
            if (refusal is null && e.Value is not null)
            {
                refusal = CheckValue(e.Key, e.Value.Length, limits.MaxValueBytes) ?? ExpiryFor(e.Key, e.Ttl, limits.DefaultTtl, nowMs, out expiries[i]);
            }
            if (refusal is not null)
            {
                return refusal;
            }
            keys[i] = e.Key;
            values[i] = e.Value;
            recordBytes += RecordCodec.SizeOf(keyBytes[i].Length, e.Value?.Length ?? 0);
        }
        if (recordBytes > limits.MaxBatchRecordBytes)
        {
            return new Refusal(CrabKvErrorCode.ValueTooLarge, RefusalSubject.Size,
                $"The batch is {recordBytes} bytes of records; one batch must fit one segment (crabkv.segment.max-bytes = {limits.MaxSegmentBytes}) and is never split across segments. Nothing was written.");
        }
        write = new CheckedWrite(keys, keyBytes, values, expiries, isBatch: true);
        return null;
    }

    /// <summary>
    /// Write-back on: a write larger than the whole buffer can never be buffered. (The engine
    /// writes such a write through; the partition actor refuses it, see src/README.md.)
    /// </summary>
    public static bool NeverFitsWriteBack(WriteLimits limits, CheckedWrite write) =>
        limits.MaxDirtyBytes is not null && write.WriteBackCost > limits.EffectiveMaxDirtyBytes;

    /// <summary>Write-back on: one put larger than the whole buffer can never be buffered.</summary>
    public static bool NeverFitsWriteBack(WriteLimits limits, string key, byte[]? value) =>
        limits.MaxDirtyBytes is not null && WriteBackBuffer.CostOf(key, value) > limits.EffectiveMaxDirtyBytes;

    /// <summary>The refusal for a batch that can never fit the write-back buffer.</summary>
    public static Refusal WriteBackTooSmall(WriteLimits limits, CheckedWrite write) =>
        new(CrabKvErrorCode.ValueTooLarge, RefusalSubject.Size,
            $"The batch ({write.WriteBackCost} bytes buffered) can never fit the write-back buffer ({limits.EffectiveMaxDirtyBytes} bytes: the partition's share of crabkv.write-back.max-dirty-bytes); split it or raise that limit. Nothing was written.");

    /// <summary>The refusal for a put that can never fit the write-back buffer.</summary>
    public static Refusal WriteBackTooSmall(WriteLimits limits, string key, int valueLength) =>
        new(CrabKvErrorCode.ValueTooLarge, RefusalSubject.Size,
            $"Value of '{Shorten(key)}' ({valueLength} bytes) can never fit the write-back buffer ({limits.EffectiveMaxDirtyBytes} bytes: the partition's share of crabkv.write-back.max-dirty-bytes); raise that limit.");

    /// <summary>A key for a message: long keys are cut.</summary>
    private static string Shorten(string key) => key.Length <= 64 ? key : string.Concat(key.AsSpan(0, 61), "...");
}
