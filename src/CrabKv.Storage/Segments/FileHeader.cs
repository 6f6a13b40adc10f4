using System.Buffers.Binary;
using CrabKv.Storage.Format;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage.Segments;

/// <summary>The 16-byte header of segment and hint files (FORMAT.md section 2).</summary>
internal static class FileHeader
{
    public static void Write(Span<byte> destination, uint magic, SegmentId id)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, magic);
        destination[4] = FormatConstants.Version;
        destination[5] = destination[6] = destination[7] = 0;
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], id.Value);
    }

    /// <summary>Validates a header read from <paramref name="path"/>; throws <see cref="NotASegmentException"/>.</summary>
    public static void Validate(ReadOnlySpan<byte> header, uint magic, SegmentId expected, string path)
    {
        if (header.Length < FormatConstants.FileHeaderSize)
        {
            throw new NotASegmentException(path, $"shorter than the {FormatConstants.FileHeaderSize}-byte header", noCrabKvHeader: true);
        }
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != magic)
        {
            throw new NotASegmentException(path, "wrong magic number", noCrabKvHeader: true);
        }
        if (header[4] != FormatConstants.Version)
        {
            throw new NotASegmentException(path, $"unknown format version {header[4]} (this build reads {FormatConstants.Version})");
        }
        var id = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
        if (id != expected.Value)
        {
            throw new NotASegmentException(path, $"header names segment {new SegmentId(id)}, the file name {expected}");
        }
    }

    public static void Validate(Files.FileLayer files, SafeFileHandle handle, uint magic, SegmentId expected, string path)
    {
        Span<byte> header = stackalloc byte[FormatConstants.FileHeaderSize];
        var read = files.Read(handle, header, 0);
        Validate(header[..read], magic, expected, path);
    }
}
