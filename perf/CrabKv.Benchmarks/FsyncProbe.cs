using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Benchmarks;

/// <summary>
/// `-- fsync`: the disk's floor under the fsync rows. Appends records of 131 bytes (one put)
/// and 13,100 bytes (a batch of 100) to a 64 MiB file and times each durable append, for
/// three ways of preparing the file — fallocate (unwritten extents on ext4), zero-filled
/// (written extents, size durable), no preallocation (the file grows) — and, in the
/// zero-filled file, three ways of making an append durable: <c>pwrite</c> + <c>fdatasync</c>
/// (two syscalls, what SegmentWriter did), <c>pwrite</c> on an <c>O_DSYNC</c> descriptor, and
/// <c>pwritev2(..., RWF_DSYNC)</c> (one syscall each; what SegmentWriter now does inside its
/// synced zero-filled region). <c>O_DIRECT|O_DSYNC</c> rewrites the 4 KiB blocks the
/// append touches (aligned), for what the device allows without the page cache. Linux only.
/// </summary>
internal static unsafe partial class FsyncProbe
{
    private const long FileBytes = 64L << 20;
    private const int O_RDWR = 2;
    private const int O_DSYNC = 0x1000;
    private const int O_DIRECT = 0x4000;
    private const int RWF_DSYNC = 2;

    private enum How { WriteFdatasync, ODsync, RwfDsync, DirectDsync }

    public static int Run(string[] args)
    {
        if (!OperatingSystem.IsLinux())
        {
            Console.WriteLine("fsync probe: Linux only.");
            return 1;
        }
        var dir = args.Length > 0 ? args[0] : Path.GetTempPath();
        Console.WriteLine($"durable append latency in {dir}: write + sync, timed together (median / p90 / mean, µs)");
        foreach (var record in new[] { 131, 13_100 })
        {
            var count = record == 131 ? 3000 : 1500;
            Measure(dir, "fallocate, write + fdatasync", record, count, How.WriteFdatasync, h => fallocate(Fd(h), 0, 0, FileBytes));
            Measure(dir, "no preallocation (grows), write + fdatasync", record, count, How.WriteFdatasync, _ => { });
            Measure(dir, "zero-filled, write + fdatasync", record, count, How.WriteFdatasync, ZeroFill);
            Measure(dir, "zero-filled, O_DSYNC write", record, count, How.ODsync, ZeroFill);
            Measure(dir, "zero-filled, pwritev2 RWF_DSYNC", record, count, How.RwfDsync, ZeroFill);
            Measure(dir, "zero-filled, O_DIRECT|O_DSYNC 4K blocks", record, count, How.DirectDsync, ZeroFill);
        }
        return 0;
    }

    private static void ZeroFill(SafeFileHandle h)
    {
        var zeros = new byte[1 << 20];
        for (long o = 0; o < FileBytes; o += zeros.Length)
        {
            RandomAccess.Write(h, zeros, o);
        }
        fdatasync(Fd(h));
    }

    private static void Measure(string dir, string label, int recordBytes, int count, How how, Action<SafeFileHandle> prepare)
    {
        var path = Path.Combine(dir, $"crabkv-fsync-probe-{Guid.NewGuid():N}");
        try
        {
            using (var h = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                prepare(h);
            }
            sync(); // start from a quiet disk: the preparation's own writeback is done
            var flags = O_RDWR | how switch { How.ODsync => O_DSYNC, How.DirectDsync => O_DSYNC | O_DIRECT, _ => 0 };
            var fd = open(path, flags);
            if (fd < 0)
            {
                Console.WriteLine($"  {recordBytes,6} B appends, {label,-44} open failed (errno {Marshal.GetLastPInvokeError()})");
                return;
            }
            try
            {
                // O_DIRECT needs an aligned buffer: the 4 KiB blocks the append touches, rewritten whole.
                var block = 4096;
                var bufferBytes = recordBytes + 2 * block;
                var buffer = (byte*)NativeMemory.AlignedAlloc((nuint)bufferBytes, (nuint)block);
                try
                {
                    new Random(1).NextBytes(new Span<byte>(buffer, bufferBytes));
                    var latencies = new double[count];
                    long offset = 16;
                    for (var i = 0; i < count; i++)
                    {
                        var start = Stopwatch.GetTimestamp();
                        nint n;
                        switch (how)
                        {
                            case How.WriteFdatasync:
                                n = pwrite(fd, buffer, recordBytes, offset);
                                if (n == recordBytes && fdatasync(fd) != 0)
                                {
                                    n = -1;
                                }
                                break;
                            case How.ODsync:
                                n = pwrite(fd, buffer, recordBytes, offset);
                                break;
                            case How.RwfDsync:
                                var iov = new IoVec { Base = buffer, Length = (nuint)recordBytes };
                                n = pwritev2(fd, &iov, 1, offset, RWF_DSYNC);
                                break;
                            default:
                                var first = offset / block * block;
                                var end = (offset + recordBytes + block - 1) / block * block;
                                n = pwrite(fd, buffer, (nint)(end - first), first) == end - first ? recordBytes : -1;
                                break;
                        }
                        latencies[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
                        if (n != recordBytes)
                        {
                            Console.WriteLine($"  {recordBytes,6} B appends, {label,-44} failed (errno {Marshal.GetLastPInvokeError()})");
                            return;
                        }
                        offset += recordBytes;
                    }
                    Array.Sort(latencies);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  {recordBytes,6} B appends, {label,-44} {latencies[count / 2],6:F0} / {latencies[count * 9 / 10],6:F0} / {latencies.Average(),6:F0}"));
                }
                finally
                {
                    NativeMemory.AlignedFree(buffer);
                }
            }
            finally
            {
                close(fd);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static int Fd(SafeFileHandle h) => (int)h.DangerousGetHandle();

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint pwrite(int fd, byte* buffer, nint count, long offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint pwritev2(int fd, IoVec* iov, int iovcnt, long offset, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(int fd, int mode, long offset, long len);

    [LibraryImport("libc")]
    private static partial void sync();
}
