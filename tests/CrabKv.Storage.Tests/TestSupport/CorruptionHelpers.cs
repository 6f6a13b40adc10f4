using System.Buffers.Binary;
using System.Text;
using CrabKv.Storage.Format;
using CrabKv.Storage.Segments;
using Xunit;

namespace CrabKv.Storage.Tests.TestSupport;

/// <summary>One record as found on disk by <see cref="CorruptionHelpers.ReadRecords"/>.</summary>
public sealed record DiskRecord(long Offset, int Size, RecordFlags Flags, long Expiry, string Key, int StoredValueLength)
{
    /// <summary>Offset of the first value byte.</summary>
    public long ValueOffset => Offset + FormatConstants.RecordHeaderSize + Encoding.UTF8.GetByteCount(Key);
}

/// <summary>
/// Byte-level damage, in the style of LevelDB's corruption tests: flip, overwrite, shrink,
/// and re-checksum a record so that "valid CRC but bad content" can be built.
/// </summary>
public static class CorruptionHelpers
{
    /// <summary>XORs the byte at <paramref name="offset"/> with <paramref name="mask"/>.</summary>
    public static void FlipByte(string path, long offset, byte mask = 0xFF)
    {
        using var h = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        Span<byte> b = stackalloc byte[1];
        Assert.Equal(1, RandomAccess.Read(h, b, offset));
        b[0] ^= mask;
        RandomAccess.Write(h, b, offset);
    }

    /// <summary>Writes <paramref name="bytes"/> at <paramref name="offset"/>.</summary>
    public static void WriteBytes(string path, long offset, ReadOnlySpan<byte> bytes)
    {
        using var h = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        RandomAccess.Write(h, bytes, offset);
    }

    /// <summary>Reads one byte.</summary>
    public static byte ReadByte(string path, long offset)
    {
        using var h = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        Span<byte> b = stackalloc byte[1];
        Assert.Equal(1, RandomAccess.Read(h, b, offset));
        return b[0];
    }

    /// <summary>Cuts <paramref name="bytes"/> off the end of the file.</summary>
    public static void ShrinkFile(string path, long bytes)
    {
        using var h = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        var length = RandomAccess.GetLength(h);
        Assert.True(bytes <= length, $"cannot cut {bytes} bytes off a {length}-byte file");
        RandomAccess.SetLength(h, length - bytes);
    }

    /// <summary>
    /// Recomputes the CRC of the record at <paramref name="recordOffset"/> from its (raw,
    /// possibly invalid) header fields, so a record with edited content verifies again.
    /// </summary>
    public static void FixChecksum(string path, long recordOffset)
    {
        var bytes = File.ReadAllBytes(path);
        var head = bytes.AsSpan((int)recordOffset, FormatConstants.RecordHeaderSize);
        var size = FormatConstants.RecordHeaderSize + BinaryPrimitives.ReadUInt16LittleEndian(head[13..]) + (int)BinaryPrimitives.ReadUInt32LittleEndian(head[15..]);
        Assert.True(recordOffset + size <= bytes.Length, "record runs past the end of the file");
        var crc = Crc32C.Compute(bytes.AsSpan((int)recordOffset + 4, size - 4));
        Span<byte> c = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(c, crc);
        WriteBytes(path, recordOffset, c);
    }

    /// <summary>Sets a record's flags byte and re-checksums it.</summary>
    public static void SetFlagsWithValidChecksum(string path, long recordOffset, byte flags)
    {
        WriteBytes(path, recordOffset + 4, [flags]);
        FixChecksum(path, recordOffset);
    }

    /// <summary>Parses the records of a segment file front to back (stops at the first bad one).</summary>
    public static List<DiskRecord> ReadRecords(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var list = new List<DiskRecord>();
        long pos = FormatConstants.FileHeaderSize;
        while (pos + FormatConstants.RecordHeaderSize <= bytes.Length)
        {
            var span = bytes.AsSpan((int)pos);
            if (!RecordCodec.TryReadHeader(span, out var h) || pos + h.Size > bytes.Length || !RecordCodec.Verify(span[..h.Size], h))
            {
                break;
            }
            list.Add(new DiskRecord(pos, h.Size, h.Flags, h.Expiry, Encoding.UTF8.GetString(RecordCodec.KeyOf(span, h)), h.ValueLength));
            pos += h.Size;
        }
        return list;
    }

    /// <summary>The data segment files of a directory, in id order.</summary>
    public static List<string> SegmentFiles(string directory) =>
        Directory.GetFiles(directory, "seg-*.data").OrderBy(p => p, StringComparer.Ordinal).ToList();

    /// <summary>Path of segment <paramref name="sequence"/>/<paramref name="sub"/>.</summary>
    public static string SegmentPath(string directory, uint sequence, int sub = 0) =>
        Path.Combine(directory, SegmentId.From(sequence, sub).DataFileName);

    /// <summary>Every file of a directory except <c>LOCK</c> (whose text names the last opener), with its bytes.</summary>
    public static SortedDictionary<string, byte[]> Snapshot(string directory)
    {
        var d = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var f in Directory.GetFiles(directory))
        {
            var name = Path.GetFileName(f);
            if (name != DirectoryLock.FileName)
            {
                d[name] = File.ReadAllBytes(f);
            }
        }
        return d;
    }

    /// <summary>Asserts two snapshots hold the same files with the same bytes.</summary>
    public static void AssertUnchanged(SortedDictionary<string, byte[]> before, SortedDictionary<string, byte[]> after)
    {
        Assert.Equal(before.Keys, after.Keys);
        foreach (var (name, bytes) in before)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(after[name]), $"file '{name}' changed");
        }
    }

    /// <summary>Options for small, fast test stores: no preallocation.</summary>
    public static StoreOptions Small(bool compression = false) => new()
    {
        PreallocateSegments = false,
        Compression = compression,
    };

    /// <summary>Opens a store, runs <paramref name="body"/>, disposes it (one session = one sealed segment).</summary>
    public static void Session(string directory, Action<EmbeddedStore> body, StoreOptions? options = null)
    {
        using var store = EmbeddedStore.Open(directory, options ?? Small());
        body(store);
    }

    /// <summary>A deterministic value for a key and a version.</summary>
    public static string ValueOf(string key, int version) => $"{key}=v{version}:" + new string((char)('a' + (key.Length + version) % 26), 20 + version % 7);
}
