using CrabKv.Storage.Tests.TestSupport;
using Xunit;

namespace CrabKv.Storage.Tests;

/// <summary>
/// The data directory of a node (FORMAT.md section 9): one lock for the whole directory, the
/// partition count recorded durably, <c>partitions = 0</c> keeping the recorded count, and a
/// damaged <c>PARTITIONS</c> file that never hides intact partitions.
/// </summary>
public sealed class DataDirectoryTests : IDisposable
{
    private readonly TempDirectory _dir = new("datadir");

    public void Dispose() => _dir.Dispose();

    private string Marker => _dir.Combine(DataDirectory.PartitionsFileName);

    private void MakePartitions(params string[] names)
    {
        foreach (var name in names)
        {
            _dir.Subdirectory(name);
        }
    }

    [Fact]
    public void Partition_directories_are_named_p_and_three_digits()
    {
        Assert.Equal("p-000", DataDirectory.PartitionDirectoryName(0));
        Assert.Equal("p-042", DataDirectory.PartitionDirectoryName(42));
        Assert.Equal("p-1023", DataDirectory.PartitionDirectoryName(1023));
        Assert.Equal(Path.Combine("/data", "p-007"), DataDirectory.PartitionDirectory("/data", 7));
    }

    [Fact]
    public void A_new_directory_records_its_count_and_gets_every_partition_directory()
    {
        var path = _dir.Combine("a", "b", "data");
        using (var d = DataDirectory.Open(path, requestedPartitions: 0, defaultPartitions: 3))
        {
            Assert.Equal(3, d.Partitions);
            Assert.Equal(Path.GetFullPath(path), d.Path);
            Assert.Empty(d.Notes);
            Assert.Equal(["p-000", "p-001", "p-002"], Directory.GetDirectories(path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            Assert.Equal(Path.Combine(path, "p-002"), d.PartitionPath(2));
            Assert.Throws<ArgumentOutOfRangeException>(() => d.PartitionPath(3));
        }
        Assert.Equal("3\n", File.ReadAllText(Path.Combine(path, DataDirectory.PartitionsFileName)));
        Assert.False(File.Exists(Path.Combine(path, DataDirectory.PartitionsFileName + ".tmp")));
    }

    [Fact]
    public void An_explicit_count_is_recorded()
    {
        using var d = DataDirectory.Open(_dir.Path, 5, defaultPartitions: 2);
        Assert.Equal(5, d.Partitions);
        Assert.Equal("5", File.ReadAllText(Marker).Trim());
    }

    [Fact]
    public void Partitions_0_keeps_the_recorded_count_whatever_the_core_count()
    {
        DataDirectory.Open(_dir.Path, 3, defaultPartitions: 8).Dispose();
        // Another machine, another core count: "one per core" would be 8 (or 1); the directory says 3.
        using var d = DataDirectory.Open(_dir.Path, 0, defaultPartitions: 8);
        Assert.Equal(3, d.Partitions);
        d.Dispose();
        using var again = DataDirectory.Open(_dir.Path, 0, defaultPartitions: 1);
        Assert.Equal(3, again.Partitions);
    }

    [Fact]
    public void An_explicit_different_count_is_refused_naming_both_and_changes_nothing()
    {
        DataDirectory.Open(_dir.Path, 1, defaultPartitions: 2).Dispose();
        var e = Assert.Throws<PartitionCountMismatchException>(() => DataDirectory.Open(_dir.Path, 2, defaultPartitions: 2));
        Assert.Equal(2, e.Requested);
        Assert.Equal(1, e.Recorded);
        Assert.Contains("created with 1 partitions, not 2", e.Message);
        Assert.Equal("1", File.ReadAllText(Marker).Trim());
        Assert.False(Directory.Exists(_dir.Combine("p-001")));
        // The refusal released the lock.
        using var d = DataDirectory.Open(_dir.Path, 1, defaultPartitions: 2);
        Assert.Equal(1, d.Partitions);
    }

    [Fact]
    public void A_second_open_is_refused_as_a_whole_naming_the_holder()
    {
        using (var first = DataDirectory.Open(_dir.Path, 2, defaultPartitions: 2))
        {
            var e = Assert.Throws<StoreLockedException>(() => DataDirectory.Open(_dir.Path, 2, defaultPartitions: 2));
            Assert.StartsWith($"pid {Environment.ProcessId} on {Environment.MachineName} since ", e.Holder);
            Assert.Contains(e.Holder!, e.Message);
            Assert.True(DateTimeOffset.TryParse(e.Holder!.Split(" since ")[1], System.Globalization.CultureInfo.InvariantCulture, out _));
            // The partition locks are untouched: the lock is on the whole directory only.
            Assert.False(File.Exists(_dir.Combine("p-000", DirectoryLock.FileName)));
        }
        using var second = DataDirectory.Open(_dir.Path, 2, defaultPartitions: 2);
        Assert.Equal(2, second.Partitions);
    }

    [Theory]
    [InlineData("")]        // a power cut after the create, before the data reached the disk
    [InlineData("\n")]
    [InlineData("\0\0\0\0")]
    [InlineData("four")]
    [InlineData("0")]
    [InlineData("99999")]
    public void A_damaged_PARTITIONS_file_is_rebuilt_from_the_partition_directories(string damaged)
    {
        DataDirectory.Open(_dir.Path, 4, defaultPartitions: 1).Dispose();
        File.WriteAllText(Marker, damaged);
        using var d = DataDirectory.Open(_dir.Path, 0, defaultPartitions: 2);
        Assert.Equal(4, d.Partitions);
        Assert.Equal("4\n", File.ReadAllText(Marker));
        Assert.Contains(d.Notes, n => n.Contains("rebuilt") && n.Contains("4 partitions"));
    }

    [Fact]
    public void A_missing_PARTITIONS_file_beside_partitions_is_rebuilt()
    {
        MakePartitions("p-000", "p-001");
        using var d = DataDirectory.Open(_dir.Path, 2, defaultPartitions: 8);
        Assert.Equal(2, d.Partitions);
        Assert.Equal("2\n", File.ReadAllText(Marker));
        Assert.Contains(d.Notes, n => n.Contains("no PARTITIONS file"));
    }

    [Fact]
    public void A_rebuilt_count_still_refuses_an_explicit_different_one()
    {
        MakePartitions("p-000", "p-001", "p-002");
        File.WriteAllText(Marker, "");
        var e = Assert.Throws<PartitionCountMismatchException>(() => DataDirectory.Open(_dir.Path, 2, defaultPartitions: 2));
        Assert.Equal(3, e.Recorded);
        Assert.Equal("", File.ReadAllText(Marker));
    }

    [Fact]
    public void A_damaged_PARTITIONS_file_with_no_partition_yet_takes_the_asked_count()
    {
        File.WriteAllText(Marker, "");
        using var d = DataDirectory.Open(_dir.Path, 0, defaultPartitions: 2);
        Assert.Equal(2, d.Partitions);
        Assert.Equal("2\n", File.ReadAllText(Marker));
        Assert.Single(d.Notes);
    }

    [Theory]
    [InlineData("p-000", "p-002")]            // a gap
    [InlineData("p-001")]                     // no p-000
    [InlineData("p-000", "p-01")]             // not the canonical name
    [InlineData("p-000", "p-backup")]
    public void A_damaged_PARTITIONS_file_that_cannot_be_rebuilt_unambiguously_is_refused(params string[] partitions)
    {
        MakePartitions(partitions);
        File.WriteAllText(Marker, "x");
        var e = Assert.Throws<DataDirectoryException>(() => DataDirectory.Open(_dir.Path, 0, defaultPartitions: 2));
        Assert.Contains("damaged PARTITIONS file ('x')", e.Message);
        Assert.Contains("cannot be rebuilt", e.Message);
        Assert.Equal("x", File.ReadAllText(Marker));
        // Refused, and the lock released.
        Assert.Throws<DataDirectoryException>(() => DataDirectory.Open(_dir.Path, 0, defaultPartitions: 2));
    }

    [Fact]
    public void A_gap_is_named_in_the_refusal()
    {
        MakePartitions("p-000", "p-002");
        var e = Assert.Throws<DataDirectoryException>(() => DataDirectory.Open(_dir.Path, 0, defaultPartitions: 2));
        Assert.Contains("p-001 missing", e.Message);
    }

    [Fact]
    public void Partition_directories_past_the_recorded_count_are_refused_not_hidden()
    {
        // Observed before: PARTITIONS saying 16 beside 64 partition directories opened as 16
        // partitions, and the keys of the other 48 were silently not found (verify said clean).
        File.WriteAllText(Marker, "2\n");
        MakePartitions("p-000", "p-001", "p-002", "p-003", "p-004");
        foreach (var p in new[] { "p-002", "p-003" })
        {
            File.WriteAllBytes(_dir.Combine(p, "seg-00000001-000000.data"), [1, 2, 3]); // only its existence counts here
        }
        // p-004 is empty: it hides no key, so it is not refused (nor named).

        var problem = DataDirectory.CountProblem(_dir.Path);
        var e = Assert.Throws<DataDirectoryException>(() => DataDirectory.Open(_dir.Path, 0, defaultPartitions: 1));

        Assert.NotNull(problem);
        Assert.Contains("past them (p-002, p-003)", problem);
        Assert.DoesNotContain("p-004", problem);
        Assert.Contains(problem!, e.Message);
        Assert.Equal("2\n", File.ReadAllText(Marker)); // changed nothing
        File.WriteAllText(Marker, "4\n");
        Assert.Null(DataDirectory.CountProblem(_dir.Path));
    }

    [Fact]
    public void The_count_check_of_verify_reports_what_an_open_would_refuse_and_nothing_it_would_rebuild()
    {
        MakePartitions("p-000", "p-001");
        Assert.Null(DataDirectory.CountProblem(_dir.Path)); // no PARTITIONS beside p-000, p-001: rebuilt as 2 by the open
        MakePartitions("p-001.incoming", "p-000.deleting"); // a transfer's leftovers: the open settles them before counting
        Assert.Null(DataDirectory.CountProblem(_dir.Path));
        MakePartitions("p-003");
        Assert.Contains("p-002 missing", DataDirectory.CountProblem(_dir.Path));
        Assert.False(File.Exists(Marker)); // reads only
    }

    [Fact]
    public void Missing_partition_directories_of_a_recorded_count_are_created()
    {
        File.WriteAllText(Marker, "3\n");
        MakePartitions("p-000");
        using var d = DataDirectory.Open(_dir.Path, 0, defaultPartitions: 1);
        Assert.Equal(3, d.Partitions);
        Assert.True(Directory.Exists(_dir.Combine("p-002")));
    }

    [Fact]
    public void A_power_cut_right_after_the_first_open_keeps_the_directory_openable()
    {
        // Regression: PARTITIONS was written with File.WriteAllText and never fsynced, nor its
        // directory; after a power cut it came back empty and the store refused to open.
        var path = _dir.Combine("fresh", "data");
        var power = new PowerLossFileLayer(Files.FileLayer.Default);
        DataDirectory.Open(path, requestedPartitions: 3, defaultPartitions: 8, power).Dispose();
        power.CutPower(); // drops every write and directory entry that was not made durable

        Assert.Equal("3", File.ReadAllText(Path.Combine(path, DataDirectory.PartitionsFileName)).Trim());
        Assert.Equal(["p-000", "p-001", "p-002"], Directory.GetDirectories(path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using var d = DataDirectory.Open(path, requestedPartitions: 0, defaultPartitions: 8, power);
        Assert.Equal(3, d.Partitions);
        Assert.Empty(d.Notes); // nothing had to be rebuilt
    }
}
