using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage.Files;

/// <summary>
/// The few file-system calls .NET does not expose, behind <see cref="OsFileLayer"/>: <c>fdatasync</c>, <c>fallocate</c>,
/// <c>pwritev2(RWF_DSYNC)</c> and a directory fsync, on Linux. Elsewhere they fall back to the portable equivalents.
/// </summary>
internal static partial class NativeFile
{
    private const int RWF_DSYNC = 2;
    private const int EINTR = 4;
    private const int EINVAL = 22;
    private const int ENOSYS = 38;
    private const int EOPNOTSUPP = 95;

    private static readonly bool IsLinux = OperatingSystem.IsLinux();
    private static volatile bool s_noDsyncWrites = !OperatingSystem.IsLinux();

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint pwritev2(int fd, IoVec* iov, int iovcnt, long offset, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(int fd, int mode, long offset, long len);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int munmap(nint address, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(nint address, nuint length, int advice);

    private const int ProtRead = 0x1;   // PROT_READ
    private const int MapShared = 0x01; // MAP_SHARED: the page cache itself, so every write through the handle is seen

    /// <summary>
    /// Maps the first <paramref name="capacity"/> bytes of a file read-only and shared
    /// (<c>mmap</c>), or returns null where that is not available (not Linux, or the call
    /// failed: callers then read positionally). The capacity may pass the file's end.
    /// </summary>
    public static MappedRegion? TryMap(SafeFileHandle handle, long capacity)
    {
        if (!IsLinux || capacity <= 0 || handle.IsClosed)
        {
            return null;
        }
        var address = mmap(0, (nuint)capacity, ProtRead, MapShared, (int)handle.DangerousGetHandle(), 0);
        return address == -1 || address == 0 ? null : new MappedRegion(address, capacity);
    }

    /// <summary>
    /// Asks Linux to back the whole 2 MiB pages inside [<paramref name="address"/>,
    /// +<paramref name="length"/>) of anonymous memory with huge pages (<c>MADV_HUGEPAGE</c>),
    /// so random reads over a large table miss the TLB less. Advice only: false, and nothing
    /// changed, where it is refused or not Linux.
    /// </summary>
    public static bool AdviseHugePages(nint address, long length)
    {
        const long HugePage = 2L << 20;
        const int MADV_HUGEPAGE = 14;
        var start = (address + HugePage - 1) & ~(HugePage - 1);
        var end = (address + length) & ~(HugePage - 1);
        return IsLinux && end > start && madvise((nint)start, (nuint)(end - start), MADV_HUGEPAGE) == 0;
    }

    /// <summary>Removes a mapping made by <see cref="TryMap"/>.</summary>
    public static bool Unmap(nint address, long capacity) => munmap(address, (nuint)capacity) == 0;

    /// <summary>Makes written data durable. Data only (plus the size when it changed): fdatasync.</summary>
    public static void SyncData(SafeFileHandle handle)
    {
        if (IsLinux)
        {
            var fd = (int)handle.DangerousGetHandle();
            if (fdatasync(fd) != 0)
            {
                throw new IOException($"fdatasync failed (errno {Marshal.GetLastPInvokeError()}).");
            }
            return;
        }
        RandomAccess.FlushToDisk(handle);
    }

    /// <summary>
    /// Writes <paramref name="source"/> at <paramref name="offset"/> and makes it durable in the
    /// same system call: <c>pwritev2(..., RWF_DSYNC)</c>, which on Linux completes like a write
    /// followed by an <c>fdatasync</c> of the range written (data, and the metadata needed to
    /// read it back). Returns false, having written nothing, where that call does not exist
    /// (not Linux, kernel before 4.7, a file system that refuses the flag): the caller then
    /// writes and syncs in two calls.
    /// </summary>
    public static unsafe bool TryWriteDurable(SafeFileHandle handle, ReadOnlySpan<byte> source, long offset)
    {
        if (s_noDsyncWrites)
        {
            return false;
        }
        var fd = (int)handle.DangerousGetHandle();
        var wrote = 0;
        fixed (byte* p = source)
        {
            while (wrote < source.Length)
            {
                var iov = new IoVec { Base = p + wrote, Length = (nuint)(source.Length - wrote) };
                var n = pwritev2(fd, &iov, 1, offset + wrote, RWF_DSYNC);
                if (n >= 0)
                {
                    wrote += (int)n; // a short write: each call made its own part durable; go on
                    continue;
                }
                var errno = Marshal.GetLastPInvokeError();
                if (errno == EINTR)
                {
                    continue;
                }
                if (wrote == 0 && errno is ENOSYS or EOPNOTSUPP or EINVAL)
                {
                    s_noDsyncWrites = true; // not supported here: two calls from now on
                    return false;
                }
                throw new IOException($"pwritev2(RWF_DSYNC) of {source.Length} bytes at offset {offset} failed (errno {errno}).");
            }
        }
        return true;
    }

    /// <summary>Reserves <paramref name="length"/> bytes of disk for a new file (best effort).</summary>
    public static bool TryPreallocate(SafeFileHandle handle, long length)
    {
        if (!IsLinux || length <= 0)
        {
            return false;
        }
        return fallocate((int)handle.DangerousGetHandle(), 0, 0, length) == 0;
    }

    /// <summary>Makes a directory's entries (a new or renamed file) durable.</summary>
    public static void SyncDirectory(string directory)
    {
        if (!IsLinux)
        {
            return;
        }
        var fd = open(directory, 0 /* O_RDONLY */);
        if (fd < 0)
        {
            throw new IOException($"Cannot open directory '{directory}' to fsync it (errno {Marshal.GetLastPInvokeError()}).");
        }
        try
        {
            if (fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory '{directory}' failed (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            close(fd);
        }
    }

    /// <summary>
    /// Reads up to <paramref name="maxBytes"/> of a small file that another process may hold
    /// with an exclusive <c>flock</c> (a <c>LOCK</c> file): .NET's own open takes a shared
    /// <c>flock</c> and fails there. Null when the file cannot be read.
    /// </summary>
    public static unsafe byte[]? TryReadIgnoringLock(string path, int maxBytes)
    {
        if (!IsLinux)
        {
            try
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                var bytes = new byte[maxBytes];
                return bytes[..stream.ReadAtLeast(bytes, maxBytes, throwOnEndOfStream: false)];
            }
            catch (IOException)
            {
                return null;
            }
        }
        var fd = open(path, 0 /* O_RDONLY */);
        if (fd < 0)
        {
            return null;
        }
        try
        {
            var buffer = new byte[maxBytes];
            var total = 0;
            fixed (byte* p = buffer)
            {
                while (total < maxBytes)
                {
                    var n = read(fd, p + total, maxBytes - total);
                    if (n <= 0)
                    {
                        break;
                    }
                    total += (int)n;
                }
            }
            return buffer[..total];
        }
        finally
        {
            close(fd);
        }
    }
}
