using System.Buffers;
using Snappier;

namespace CrabKv.Storage.Format;

/// <summary>Per-record Snappy compression (raw block format), used only when it pays.</summary>
public static class ValueCompression
{
    /// <summary>
    /// Compresses <paramref name="value"/> into a new array when compression is worth it:
    /// the value is at least <paramref name="minValueBytes"/> long and the result is strictly
    /// smaller. Returns null otherwise (store the value as it is).
    /// </summary>
    public static byte[]? TryCompress(ReadOnlySpan<byte> value, int minValueBytes)
    {
        if (value.Length < minValueBytes || value.Length == 0)
        {
            return null;
        }
        var buffer = ArrayPool<byte>.Shared.Rent(Snappy.GetMaxCompressedLength(value.Length));
        try
        {
            var written = Snappy.Compress(value, buffer);
            return written >= value.Length ? null : buffer.AsSpan(0, written).ToArray();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Decompresses a stored value; throws <see cref="InvalidDataException"/> on bad input.</summary>
    public static byte[] Decompress(ReadOnlySpan<byte> stored)
    {
        var output = new byte[UncompressedLength(stored)];
        Decompress(stored, output);
        return output;
    }

    /// <summary>
    /// Decompresses a stored value into <paramref name="destination"/>; returns its length.
    /// Throws <see cref="InvalidDataException"/> on bad input.
    /// </summary>
    public static int DecompressInto(ReadOnlySpan<byte> stored, IBufferWriter<byte> destination)
    {
        var length = UncompressedLength(stored);
        Decompress(stored, destination.GetSpan(length)[..length]);
        destination.Advance(length);
        return length;
    }

    private static int UncompressedLength(ReadOnlySpan<byte> stored)
    {
        int length;
        try
        {
            length = Snappy.GetUncompressedLength(stored);
        }
        catch (Exception e)
        {
            throw new InvalidDataException("Compressed value does not decompress.", e);
        }
        if (length < 0 || length > FormatConstants.MaxValueBytes)
        {
            throw new InvalidDataException($"Compressed value claims {length} bytes, beyond the format's bound.");
        }
        return length;
    }

    private static void Decompress(ReadOnlySpan<byte> stored, Span<byte> output)
    {
        try
        {
            Snappy.Decompress(stored, output);
        }
        catch (Exception e)
        {
            throw new InvalidDataException("Compressed value does not decompress.", e);
        }
    }
}
