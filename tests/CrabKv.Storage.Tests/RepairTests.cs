using CrabKv.Storage.Files;
using CrabKv.Storage.Format;
using CrabKv.Storage.Recovery;
using CrabKv.Storage.Tests.TestSupport;
using Xunit;
using static CrabKv.Storage.Tests.TestSupport.CorruptionHelpers;

namespace CrabKv.Storage.Tests;

/// <summary>FORMAT.md section 8, rule 7: verify reports, repair keeps every record that verifies.</summary>
public sealed class RepairTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static void AssertContents(EmbeddedStore store, IReadOnlyDictionary<string, string> model, params string[] absent)
    {
        foreach (var (k, v) in model)
        {
            if (absent.Contains(k))
            {
                Assert.Null(store.Get(k));
            }
            else
            {
                Assert.Equal(v, store.GetString(k));
            }
        }
        Assert.Equal(model.Count - absent.Length, store.Count);
    }

    [Fact]
    public void VerifyReportsDamagedRecordWithoutChangingFiles()
    {
        CorruptionTests.WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 1);
        var rec = ReadRecords(seg).Single(r => r.Key == "k025");
        FlipByte(seg, rec.ValueOffset + 2);
        var before = Snapshot(_dir.Path);

        var report = Repair.Verify(_dir.Path);

        Assert.False(report.Clean);
        Assert.Equal(3, report.SegmentsChecked);
        Assert.Empty(report.NotSegments);
        var damage = Assert.Single(report.Damaged);
        Assert.Equal(seg, damage.Path);
        Assert.Equal([(rec.Offset, rec.Offset + rec.Size)], damage.DamagedRanges);
        Assert.Equal(39, damage.RecordsKept);
        Assert.Equal(0, damage.RecordsDropped);
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    [Fact]
    public void RunMovesAsideAFileNamedLikeASegmentThatIsNoCrabKvFileAndKeepsOneOfAnotherVersion()
    {
        // Observed before: verify said "0 damaged segments" and exit 1, repair changed nothing,
        // and the partition still would not open: the user was sent round in a loop.
        var model = CorruptionTests.WriteThreeSegments(_dir.Path);
        var foreign = Path.Combine(_dir.Path, "seg-00000099-000000.data");
        File.WriteAllBytes(foreign, Enumerable.Range(0, 300).Select(i => (byte)(i * 7 + 1)).ToArray());
        var newer = Path.Combine(_dir.Path, "seg-00000098-000000.data");
        var header = new byte[64];
        CrabKv.Storage.Segments.FileHeader.Write(header, FormatConstants.SegmentMagic, CrabKv.Storage.Segments.SegmentId.From(98, 0));
        header[4] = FormatConstants.Version + 1; // a CrabKv segment of a later format version
        File.WriteAllBytes(newer, header);

        var verify = Repair.Verify(_dir.Path);
        Assert.False(verify.Clean);
        Assert.Equal(2, verify.NotSegments.Count);
        Assert.True(File.Exists(foreign)); // verify changes nothing

        var repaired = Repair.Run(_dir.Path);
        Assert.Contains(repaired.MovedAside!, m => m.Contains("wrong magic number", StringComparison.Ordinal));
        Assert.False(File.Exists(foreign));
        Assert.Equal(300, new FileInfo(foreign + Repair.MovedAsideSuffix).Length); // kept, renamed
        var left = Assert.Single(repaired.NotSegments); // another version: not ours to move
        Assert.Contains("unknown format version", left);
        Assert.True(File.Exists(newer));

        File.Delete(newer); // its owner's decision; then the partition opens with every record
        Assert.True(Repair.Verify(_dir.Path).Clean);
        using var store = EmbeddedStore.Open(_dir.Path);
        AssertContents(store, model);
    }

    [Fact]
    public void ADirectoryNamedLikeASegmentIsReportedByVerifyMovedAsideByRepairAndNamedByOpen()
    {
        // Observed before: verify and repair said "clean" (they list files only), and the store
        // then failed when its writer could not create that file: "already exists".
        var model = CorruptionTests.WriteThreeSegments(_dir.Path);
        var dir = Path.Combine(_dir.Path, "seg-00000099-000000.data");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "note.txt"), "someone's file");
        var hintDir = Path.Combine(_dir.Path, "seg-00000097-000001.hint");
        Directory.CreateDirectory(hintDir);

        var open = Assert.Throws<NotASegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));
        Assert.Contains("it is a directory, not a file", open.Message);
        var verify = Repair.Verify(_dir.Path);
        Assert.False(verify.Clean);
        Assert.Equal(2, verify.NotSegments.Count);
        Assert.True(Directory.Exists(dir)); // verify changes nothing

        var repaired = Repair.Run(_dir.Path);
        Assert.Equal(2, repaired.MovedAside!.Count);
        Assert.True(repaired.Clean);
        Assert.False(Directory.Exists(dir));
        Assert.Equal("someone's file", File.ReadAllText(Path.Combine(dir + Repair.MovedAsideSuffix, "note.txt"))); // kept, renamed
        Assert.True(Directory.Exists(hintDir + Repair.MovedAsideSuffix));
        Assert.True(Repair.Verify(_dir.Path).Clean);
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        AssertContents(store, model);
    }

    [Fact]
    public void RunRewritesDamagedSegmentAndEveryOtherRecordReadsItsLatestValue()
    {
        var model = CorruptionTests.WriteThreeSegments(_dir.Path);
        // k025 lives only in seg 1; k005 is in seg 1 and overwritten in seg 2.
        var seg = SegmentPath(_dir.Path, 1);
        var records = ReadRecords(seg);
        var damaged = records.Single(r => r.Key == "k025");
        var overwritten = records.Single(r => r.Key == "k005");
        FlipByte(seg, damaged.ValueOffset);
        FlipByte(seg, overwritten.Offset + 1);
        Assert.Throws<CorruptSegmentException>(() => EmbeddedStore.Open(_dir.Path, Small()));
        var untouched = Snapshot(_dir.Path);
        untouched.Remove(Path.GetFileName(seg));

        var report = Repair.Run(_dir.Path);

        var damage = Assert.Single(report.Damaged);
        Assert.Equal(seg, damage.Path);
        Assert.Equal([(overwritten.Offset, overwritten.Offset + overwritten.Size), (damaged.Offset, damaged.Offset + damaged.Size)], damage.DamagedRanges);
        Assert.Equal(38, damage.RecordsKept);
        // The other segments are not rewritten.
        var after = Snapshot(_dir.Path);
        after.Remove(Path.GetFileName(seg));
        AssertUnchanged(untouched, after);
        // The rewritten segment holds exactly the intact records, byte for byte.
        var kept = ReadRecords(seg);
        Assert.Equal(records.Where(r => r.Key is not ("k025" or "k005")).Select(r => r.Key), kept.Select(r => r.Key));
        Assert.Equal(new FileInfo(seg).Length, FormatConstants.FileHeaderSize + kept.Sum(r => (long)r.Size));

        Assert.True(Repair.Verify(_dir.Path).Clean);
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        AssertContents(store, model, "k025");
        Assert.Equal(model["k005"], store.GetString("k005")); // seg 2's version
    }

    [Fact]
    public void RunSkipsDamageAtTheStartOfASegment()
    {
        var model = CorruptionTests.WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 2);
        var first = ReadRecords(seg)[0];
        Assert.Equal("m000", first.Key);
        FlipByte(seg, first.Offset);

        var report = Repair.Run(_dir.Path);

        Assert.Equal((first.Offset, first.Offset + first.Size), Assert.Single(Assert.Single(report.Damaged).DamagedRanges));
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        AssertContents(store, model, "m000");
    }

    [Fact]
    public void RunCutsTrailingPartialRecordOfSealedSegment()
    {
        var model = CorruptionTests.WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 2);
        var last = ReadRecords(seg)[^1];
        Assert.Equal("k009", last.Key);
        ShrinkFile(seg, 3);
        var length = new FileInfo(seg).Length;

        var report = Repair.Run(_dir.Path);

        Assert.Equal((last.Offset, length), Assert.Single(Assert.Single(report.Damaged).DamagedRanges));
        Assert.Equal(last.Offset, new FileInfo(seg).Length);
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        // k009's seg-2 version is gone; its older seg-1 version is what the files now say.
        model["k009"] = ValueOf("k009", 1);
        AssertContents(store, model);
    }

    /// <summary>Seg 1: p0, batch b0..b4, p1; seg 2: q. Returns seg 1's records.</summary>
    private List<DiskRecord> WriteBatch(Dictionary<string, string> model)
    {
        Session(_dir.Path, s =>
        {
            s.Put("p0", model["p0"] = "plain-0");
            var ops = new List<BatchEntry>();
            for (var i = 0; i < 5; i++)
            {
                ops.Add(BatchEntry.Put($"b{i}", System.Text.Encoding.UTF8.GetBytes(model[$"b{i}"] = $"batch-{i}")));
            }
            s.PutBatch(ops);
            s.Put("p1", model["p1"] = "plain-1");
        });
        Session(_dir.Path, s => s.Put("q", model["q"] = "later"));
        return ReadRecords(SegmentPath(_dir.Path, 1));
    }

    [Fact]
    public void DamagedLastBatchMemberDropsItsWholeBatch()
    {
        var model = new Dictionary<string, string>();
        var records = WriteBatch(model);
        var seg = SegmentPath(_dir.Path, 1);
        var end = records.Single(r => r.Key == "b4");
        FlipByte(seg, end.ValueOffset);

        var report = Repair.Run(_dir.Path);

        var damage = Assert.Single(report.Damaged);
        Assert.Equal(4, damage.RecordsDropped);
        Assert.Equal(2, damage.RecordsKept);
        Assert.Equal((end.Offset, end.Offset + end.Size), Assert.Single(damage.DamagedRanges));
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        AssertContents(store, model, "b0", "b1", "b2", "b3", "b4");
    }

    [Theory]
    [InlineData("b0")]
    [InlineData("b2")]
    public void DamagedBatchMemberDropsItsWholeBatch(string damagedKey)
    {
        var model = new Dictionary<string, string>();
        var records = WriteBatch(model);
        var seg = SegmentPath(_dir.Path, 1);
        FlipByte(seg, records.Single(r => r.Key == damagedKey).ValueOffset);

        var report = Repair.Run(_dir.Path);

        var damage = Assert.Single(report.Damaged);
        Assert.Equal(4, damage.RecordsDropped);
        Assert.Equal(2, damage.RecordsKept);
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        AssertContents(store, model, "b0", "b1", "b2", "b3", "b4");
    }

    [Fact]
    public void UnendedBatchInSealedSegmentIsDroppedByRepair()
    {
        var model = new Dictionary<string, string>();
        var records = WriteBatch(model);
        var seg = SegmentPath(_dir.Path, 1);
        SetFlagsWithValidChecksum(seg, records.Single(r => r.Key == "b4").Offset, (byte)RecordFlags.InBatch);

        var report = Repair.Run(_dir.Path);

        var damage = Assert.Single(report.Damaged);
        Assert.Empty(damage.DamagedRanges);
        Assert.Equal(5, damage.RecordsDropped);
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        AssertContents(store, model, "b0", "b1", "b2", "b3", "b4");
    }

    [Fact]
    public void RepairNeverInventsARecordFromInsideADamagedValue()
    {
        // A value that happens to contain the bytes of a valid record (a backup, a replication
        // log, a test fixture...). Its record's CRC breaks: repair must drop the value, not
        // salvage the record-shaped bytes inside it.
        var inner = new byte[RecordCodec.SizeOf(7, 3)];
        RecordCodec.Encode(inner, RecordFlags.None, 0, "phantom"u8, "boo"u8);
        var value = new byte[200];
        inner.CopyTo(value, 50);
        Session(_dir.Path, s =>
        {
            s.Put("before", "1");
            s.Put("outer", value);
            s.Put("after", "2");
        });
        Session(_dir.Path, s => s.Put("later", "3"));
        var seg = SegmentPath(_dir.Path, 1);
        var outer = ReadRecords(seg).Single(r => r.Key == "outer");
        FlipByte(seg, outer.ValueOffset + 150); // after the embedded record

        var report = Repair.Run(_dir.Path);

        var damage = Assert.Single(report.Damaged);
        Assert.Equal((outer.Offset, outer.Offset + outer.Size), Assert.Single(damage.DamagedRanges));
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Null(store.Get("phantom"));
        Assert.Null(store.Get("outer"));
        Assert.Equal("1", store.GetString("before"));
        Assert.Equal("2", store.GetString("after"));
        Assert.Equal("3", store.GetString("later"));
    }

    [Fact]
    public void RepairOnCleanDirectoryReportsCleanAndChangesNothing()
    {
        var model = CorruptionTests.WriteThreeSegments(_dir.Path);
        using (var s = EmbeddedStore.Open(_dir.Path, Small()))
        {
            s.Compact(); // a merge output with its hint, too
            s.Put("after-compact", model["after-compact"] = "x");
        }
        var before = Snapshot(_dir.Path);

        var verify = Repair.Verify(_dir.Path);
        var run = Repair.Run(_dir.Path);

        Assert.True(verify.Clean);
        Assert.True(run.Clean);
        Assert.Equal(2, run.SegmentsChecked);
        Assert.Empty(run.Damaged);
        AssertUnchanged(before, Snapshot(_dir.Path));
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        AssertContents(store, model);
    }

    [Fact]
    public void VerifyAfterCrashTreatsZeroFilledTailOfNewestSegmentAsOpenDoes()
    {
        var options = Small() with { PreallocateSegments = true, MaxSegmentBytes = 1 << 20 };
        var store = EmbeddedStore.Open(_dir.Path, options);
        store.Put("a", "1");
        store.Flush();
        store.SimulateCrash();
        var seg = SegmentFiles(_dir.Path).Single();
        Assert.Equal(1 << 20, new FileInfo(seg).Length); // the zero-filled, never written region

        var report = Repair.Verify(_dir.Path);

        Assert.True(report.Clean, string.Join("; ", report.Damaged.Select(d => $"{d.Path} {string.Join(",", d.DamagedRanges)}")));
        using var reopened = EmbeddedStore.Open(_dir.Path, options);
        Assert.Null(reopened.LastRecovery.TornTail); // open does not call it damage either
        Assert.Equal("1", reopened.GetString("a"));
    }

    [Fact]
    public void RepairListsNotASegmentAndLeavesItAlone()
    {
        CorruptionTests.WriteThreeSegments(_dir.Path);
        var seg = SegmentPath(_dir.Path, 2);
        WriteBytes(seg, 0, "NOPE"u8);
        var before = Snapshot(_dir.Path);

        var report = Repair.Run(_dir.Path);

        Assert.False(report.Clean);
        Assert.Empty(report.Damaged);
        Assert.Contains(seg, Assert.Single(report.NotSegments));
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    [Fact]
    public void RepairOfDamagedMergeOutputDeletesItsStaleHint()
    {
        var model = CorruptionTests.WriteThreeSegments(_dir.Path);
        using (var s = EmbeddedStore.Open(_dir.Path, Small()))
        {
            s.Compact();
        }
        Session(_dir.Path, s => s.Put("later", model["later"] = "z"));
        var output = SegmentPath(_dir.Path, 3, 1);
        var hint = Path.ChangeExtension(output, ".hint");
        Assert.True(File.Exists(hint));
        var rec = ReadRecords(output).Single(r => r.Key == "m030");
        FlipByte(output, rec.ValueOffset);

        var report = Repair.Run(_dir.Path);

        Assert.Equal(output, Assert.Single(report.Damaged).Path);
        Assert.False(File.Exists(hint));
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal(0, store.LastRecovery.SegmentsFromHints);
        AssertContents(store, model, "m030");
    }

    [Theory]
    [InlineData(false)] // a partial plain record at the end
    [InlineData(true)]  // a batch whose end record never reached the disk
    public void VerifyCallsATornTailOfTheActiveSegmentWhatOpenCutsNotDamage(bool batch)
    {
        // Found on a full disk: a write that fails part way leaves a partial record or batch at
        // the end of the active segment; open cuts it (rule 4), verify called it damage.
        Session(_dir.Path, s =>
        {
            s.Put("a", "1");
            s.Put("b", "2");
            if (batch)
            {
                s.PutBatch([BatchEntry.Put("x", "10"u8.ToArray()), BatchEntry.Put("y", "20"u8.ToArray()), BatchEntry.Put("z", "30"u8.ToArray())]);
            }
            else
            {
                s.Put("c", "3");
            }
        }, Small());
        var seg = Assert.Single(SegmentFiles(_dir.Path));
        var records = ReadRecords(seg);
        ShrinkFile(seg, records[^1].Size / 2); // the last record, half written
        var tornFrom = batch ? records[^3].Offset : records[^1].Offset;
        var before = Snapshot(_dir.Path);

        var verified = Repair.Verify(_dir.Path);

        Assert.True(verified.Clean, string.Join("; ", verified.Damaged.Select(d => string.Join(",", d.DamagedRanges))));
        Assert.Contains($"bytes [{tornFrom}, {new FileInfo(seg).Length})", Assert.Single(verified.TornTails));
        AssertUnchanged(before, Snapshot(_dir.Path));
        Assert.True(Repair.Run(_dir.Path).Clean);
        AssertUnchanged(before, Snapshot(_dir.Path)); // left for the open, which cuts it and says so

        using var store = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal(tornFrom, store.LastRecovery.TornTail!.Value.Offset);
        Assert.Equal("1", store.GetString("a"));
        Assert.Equal("2", store.GetString("b"));
        Assert.All(new[] { "c", "x", "y", "z" }, k => Assert.Null(store.GetString(k)));
    }

    [Fact]
    public void VerifyReportsADamagedHintOfAnIntactSegmentAndRepairWritesItAgainFromTheRecords()
    {
        var model = CorruptionTests.WriteThreeSegments(_dir.Path);
        using (var s = EmbeddedStore.Open(_dir.Path, Small()))
        {
            s.Compact();
        }
        var output = SegmentPath(_dir.Path, 3, 1);
        var hint = Path.ChangeExtension(output, ".hint");
        var original = File.ReadAllBytes(hint);
        FlipByte(hint, original.Length / 2);
        using (var store = EmbeddedStore.Open(_dir.Path, Small()))
        {
            Assert.Equal(0, store.LastRecovery.SegmentsFromHints); // ignored: every open scans the segment
        }
        var before = Snapshot(_dir.Path);

        var verified = Repair.Verify(_dir.Path);

        Assert.False(verified.Clean);
        Assert.Empty(verified.Damaged);
        Assert.Contains(hint, Assert.Single(verified.BadHints!));
        AssertUnchanged(before, Snapshot(_dir.Path));

        var repaired = Repair.Run(_dir.Path);

        Assert.True(repaired.Clean);
        Assert.Contains("rewritten", Assert.Single(repaired.BadHints!));
        Assert.Equal(original, File.ReadAllBytes(hint)); // the same entries as the merge wrote
        Assert.True(Repair.Verify(_dir.Path).Clean);
        using var reopened = EmbeddedStore.Open(_dir.Path, Small());
        Assert.Equal(1, reopened.LastRecovery.SegmentsFromHints);
        AssertContents(reopened, model);
    }

    [Fact]
    public void RepairDeletesLeftoverTemporaryFilesButVerifyDoesNot()
    {
        CorruptionTests.WriteThreeSegments(_dir.Path);
        var tmp = _dir.Combine("seg-00000002-000000.data.repair.tmp");
        File.WriteAllText(tmp, "half-written");

        Assert.True(Repair.Verify(_dir.Path).Clean);
        Assert.True(File.Exists(tmp));
        Assert.True(Repair.Run(_dir.Path).Clean);
        Assert.False(File.Exists(tmp));
    }

    [Fact]
    public void RepairRefusesWhileStoreIsOpen()
    {
        using var store = EmbeddedStore.Open(_dir.Path, Small());
        store.Put("a", "b");

        Assert.Throws<StoreLockedException>(() => Repair.Verify(_dir.Path));
        Assert.Throws<StoreLockedException>(() => Repair.Run(_dir.Path));
        Assert.Equal("b", store.GetString("a"));
    }

    [Fact]
    public void VerifyCreatesAndWritesNothingNotEvenALockFile()
    {
        // Observed before: verify re-created every partition's LOCK file (and on a read-only
        // copy it could not run at all).
        CorruptionTests.WriteThreeSegments(_dir.Path);
        var lockFile = Path.Combine(_dir.Path, DirectoryLock.FileName);
        File.Delete(lockFile);
        var before = Snapshot(_dir.Path);

        Assert.True(Repair.Verify(_dir.Path).Clean);

        Assert.False(File.Exists(lockFile));
        AssertUnchanged(before, Snapshot(_dir.Path));
    }

    /// <summary>Every open for writing fails as on a read-only file system (EROFS, errno 30).</summary>
    private sealed class ReadOnlyFileSystem() : WrappingFileLayer(FileLayer.Default)
    {
        public int ReadOnlyOpens;

        public override Microsoft.Win32.SafeHandles.SafeFileHandle Open(string path, FileMode mode, FileAccess access, FileShare share)
        {
            if ((access & FileAccess.Write) != 0)
            {
                throw new IOException($"Read-only file system : '{path}'", 30);
            }
            ReadOnlyOpens++;
            return base.Open(path, mode, access, share);
        }
    }

    [Fact]
    public void OnAReadOnlyFileSystemVerifyRunsAndTheLockIsNotCalledHeldByAnotherProcess()
    {
        // Observed before: verify, repair and serve each said the directory was "in use by
        // another process", naming the pid of a process long gone.
        CorruptionTests.WriteThreeSegments(_dir.Path);
        var readOnly = new ReadOnlyFileSystem();

        Assert.True(Repair.Verify(_dir.Path, readOnly).Clean);
        Assert.True(readOnly.ReadOnlyOpens > 0);
        var e = Assert.Throws<IOException>(() => DirectoryLock.Acquire(readOnly, _dir.Path));
        Assert.IsNotType<StoreLockedException>(e);
        Assert.Contains("Read-only file system", e.Message);
        Assert.Throws<IOException>(() => Repair.Run(_dir.Path, files: readOnly));
    }

    [Fact]
    public void VerifyThroughAnExistingLockFileLeavesItsHolderLineAlone()
    {
        CorruptionTests.WriteThreeSegments(_dir.Path);
        var lockFile = Path.Combine(_dir.Path, DirectoryLock.FileName);
        var holder = File.ReadAllText(lockFile);

        Assert.True(Repair.Verify(_dir.Path).Clean);

        Assert.Equal(holder, File.ReadAllText(lockFile));
    }

    [Fact]
    public void RepairOfMissingDirectoryThrows()
    {
        Assert.Throws<DirectoryNotFoundException>(() => Repair.Verify(_dir.Combine("nope")));
        Assert.False(Directory.Exists(_dir.Combine("nope")));
    }
}
