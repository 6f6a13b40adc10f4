using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Benchmarks;

/// <summary>
/// `-- fsync`: the disk's floor under the fsync rows. Appends records of 131 bytes (one put)
/// and 13,100 bytes (a batch of 100) to a 64 MiB file and times each fdatasync, for three
/// ways of preparing the file: fallocate (what SegmentWriter does: unwritten extents on
/// ext4), zero-filled (written extents), and no preallocation (the file grows). Linux only.
/// </summary>
internal static partial class FsyncProbe
{
    private const long FileBytes = 64L << 20;

    public static int Run(string[] args)
    {
        if (!OperatingSystem.IsLinux())
        {
            Console.WriteLine("fsync probe: Linux only.");
            return 1;
        }
        var dir = args.Length > 0 ? args[0] : Path.GetTempPath();
        Console.WriteLine($"fdatasync latency in {dir} (median / p90 / mean, µs)");
        foreach (var record in new[] { 131, 13_100 })
        {
            var count = record == 131 ? 3000 : 1500;
            Measure(dir, "fallocate (SegmentWriter's preallocation)", record, count, h => fallocate(Fd(h), 0, 0, FileBytes));
            Measure(dir, "zero-filled", record, count, h =>
            {
                var zeros = new byte[1 << 20];
                for (long o = 0; o < FileBytes; o += zeros.Length)
                {
                    RandomAccess.Write(h, zeros, o);
                }
            });
            Measure(dir, "no preallocation (file grows)", record, count, _ => { });
        }
        return 0;
    }

    private static void Measure(string dir, string label, int recordBytes, int count, Action<SafeFileHandle> prepare)
    {
        var path = Path.Combine(dir, $"crabkv-fsync-probe-{Guid.NewGuid():N}");
        try
        {
            using var h = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite);
            prepare(h);
            sync(); // start from a quiet disk: the preparation's own writeback is done
            var record = new byte[recordBytes];
            new Random(1).NextBytes(record);
            var latencies = new double[count];
            long offset = 16;
            for (var i = 0; i < count; i++)
            {
                RandomAccess.Write(h, record, offset);
                offset += recordBytes;
                var start = Stopwatch.GetTimestamp();
                if (fdatasync(Fd(h)) != 0)
                {
                    throw new IOException($"fdatasync failed (errno {Marshal.GetLastPInvokeError()})");
                }
                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }
            Array.Sort(latencies);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {recordBytes,6} B appends, {label,-42} {latencies[count / 2],6:F0} / {latencies[count * 9 / 10],6:F0} / {latencies.Average(),6:F0}"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static int Fd(SafeFileHandle h) => (int)h.DangerousGetHandle();

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(int fd, int mode, long offset, long len);

    [LibraryImport("libc")]
    private static partial void sync();
}
