using System.Text;
using CrabKv.Storage.Recovery;
using CrabKv.Storage.Tests.TestSupport;
using CrabKv.Storage.Transfer;
using Xunit;
using static CrabKv.Storage.Tests.TestSupport.CorruptionHelpers;

namespace CrabKv.Storage.Tests;

/// <summary>
/// FORMAT.md section 10: a stopped partition exported and imported through chunks, verified,
/// installed atomically; staging left by a crash installed or discarded; the source deleted.
/// </summary>
public sealed class TransferTests : IDisposable
{
    private const int Chunk = 4096;
    private readonly TempDirectory _dir = new("transfer");

    public void Dispose() => _dir.Dispose();

    private string Source => _dir.Combine("src", "p-003");

    private string Target => _dir.Combine("dst", "p-003");

    private string Staging => Target + PartitionImport.StagingSuffix;

    /// <summary>
    /// A real partition: compressed and plain values, TTLs, batches, deletes, a compaction
    /// (so hint files exist) and writes after it; stopped gracefully. Returns every key's
    /// expected value (null: absent).
    /// </summary>
    private Dictionary<string, byte[]?> WritePartition(string directory, int keys = 600)
    {
        var expected = new Dictionary<string, byte[]?>();
        var random = new Random(42);
        var options = Small(compression: true) with { MaxSegmentBytes = 32 << 10 };
        using (var store = EmbeddedStore.Open(directory, options))
        {
            for (var i = 0; i < keys; i++)
            {
                var key = $"k:{i:D5}";
                byte[] value;
                if (i % 3 == 0)
                {
                    value = Encoding.UTF8.GetBytes(new string((char)('a' + i % 26), 300 + i % 200)); // compresses
                }
                else
                {
                    value = new byte[20 + random.Next(400)];
                    random.NextBytes(value); // stays plain
                }
                store.Put(key, value, i % 5 == 0 ? TimeSpan.FromDays(30) : null);
                expected[key] = value;
            }
            for (var b = 0; b < 20; b++)
            {
                var batch = Enumerable.Range(0, 5).Select(j => BatchEntry.Put($"batch:{b}:{j}", Encoding.UTF8.GetBytes($"b{b}j{j}"), j == 0 ? TimeSpan.FromDays(1) : null)).ToList();
                batch.Add(BatchEntry.Delete($"k:{b * 7:D5}"));
                store.PutBatch(batch);
                foreach (var e in batch)
                {
                    expected[e.Key] = e.Value;
                }
            }
            for (var i = 0; i < keys; i += 11)
            {
                var v = Encoding.UTF8.GetBytes(ValueOf($"k:{i:D5}", 2));
                store.Put($"k:{i:D5}", v);
                expected[$"k:{i:D5}"] = v;
            }
            store.Compact();
            for (var i = 1; i < keys; i += 13)
            {
                store.Delete($"k:{i:D5}");
                expected[$"k:{i:D5}"] = null;
                store.Put($"late:{i}", Encoding.UTF8.GetBytes($"late {i}"));
                expected[$"late:{i}"] = Encoding.UTF8.GetBytes($"late {i}");
            }
        }
        Assert.NotEmpty(Directory.GetFiles(directory, "seg-*.hint"));
        return expected;
    }

    private static void AssertContents(string directory, Dictionary<string, byte[]?> expected)
    {
        using var store = EmbeddedStore.Open(directory, Small(compression: true));
        Assert.Equal(expected.Count(e => e.Value is not null), store.Count);
        foreach (var (key, value) in expected)
        {
            var got = store.Get(key);
            Assert.True(value is null ? got is null : got is not null && got.AsSpan().SequenceEqual(value), $"key {key}");
        }
    }

    /// <summary>Every chunk of every file of the manifest: (file, offset, length).</summary>
    private static List<(string File, long Offset, int Length)> Chunks(PartitionManifest manifest, int chunk = Chunk)
    {
        var list = new List<(string, long, int)>();
        foreach (var f in manifest.Files)
        {
            for (long at = 0; at < f.Length; at += chunk)
            {
                list.Add((f.Name, at, (int)Math.Min(chunk, f.Length - at)));
            }
        }
        return list;
    }

    private static void CopyAll(PartitionExport export, PartitionImport import, IEnumerable<(string File, long Offset, int Length)> chunks)
    {
        foreach (var (file, offset, length) in chunks)
        {
            import.Write(file, offset, export.ReadChunk(file, offset, length));
        }
    }

    // ------------------------------------------------------------------ round trip

    [Fact]
    public void Round_trip_with_chunks_out_of_order_and_duplicated_opens_with_identical_contents()
    {
        var expected = WritePartition(Source);
        var before = Snapshot(Source);
        using (var export = PartitionExport.Open(Source))
        {
            Assert.Equal(before.Keys, export.Manifest.Files.Select(f => f.Name));
            Assert.Equal(before.Values.Sum(b => (long)b.Length), export.Manifest.TotalBytes);
            using var import = PartitionImport.Begin(Target, export.Manifest);
            var chunks = Chunks(export.Manifest);
            var shuffled = chunks.OrderBy(_ => Random.Shared.Next()).ToList();
            CopyAll(export, import, shuffled.Take(shuffled.Count / 2));
            CopyAll(export, import, shuffled.Take(5)); // duplicates: accepted, counted once
            Assert.False(import.AllPresent);
            Assert.NotEmpty(export.Manifest.Files.SelectMany(f => import.Missing(f.Name)));
            // Resume: ask for exactly what is missing, in pieces that straddle received chunks.
            foreach (var f in export.Manifest.Files)
            {
                foreach (var (start, end) in import.Missing(f.Name).ToList())
                {
                    for (var at = start; at < end; at += 3000)
                    {
                        var n = (int)Math.Min(3000, end - at);
                        import.Write(f.Name, at, export.ReadChunk(f.Name, at, n));
                    }
                }
            }
            Assert.True(import.AllPresent);
            Assert.Equal(export.Manifest.TotalBytes, import.BytesPresent);
            import.Complete();
        }
        Assert.False(Directory.Exists(Staging));
        Assert.False(File.Exists(Path.Combine(Target, PartitionImport.CompleteFileName)));
        AssertUnchanged(before, Snapshot(Target));
        AssertContents(Target, expected);
        AssertContents(Source, expected); // the source is untouched until DeleteSource
    }

    [Fact]
    public void Export_holds_the_partition_lock_so_no_store_opens_it_and_a_running_store_is_refused()
    {
        WritePartition(Source, keys: 50);
        using (var export = PartitionExport.Open(Source))
        {
            Assert.Throws<StoreLockedException>(() => EmbeddedStore.Open(Source, Small()));
        }
        using var store = EmbeddedStore.Open(Source, Small());
        Assert.Throws<StoreLockedException>(() => PartitionExport.Open(Source));
    }

    // ------------------------------------------------------------------ refusals

    [Fact]
    public void An_unsealed_active_segment_is_refused()
    {
        WritePartition(Source, keys: 50);
        var newest = SegmentFiles(Source).Where(p => p.EndsWith("-000000.data", StringComparison.Ordinal)).Last();
        // What a crash leaves after the last record: a torn record (or preallocated zeros).
        WriteBytes(newest, new FileInfo(newest).Length, new byte[] { 1, 2, 3, 4, 0, 0, 0 });
        var e = Assert.Throws<TransferRefusedException>(() => PartitionExport.Open(Source));
        Assert.Contains("unsealed", e.Message);
        Assert.Contains(Path.GetFileName(newest), e.Message);
        ShrinkFile(newest, 7);
        File.WriteAllBytes(Path.Combine(newest + ".x"), []);
        File.Move(newest + ".x", Path.Combine(Source, "seg-00000099-000000.data.tmp"));
        Assert.Contains(".tmp", Assert.Throws<TransferRefusedException>(() => PartitionExport.Open(Source)).Message);
    }

    [Fact]
    public void A_store_that_crashed_with_a_preallocated_tail_is_refused_until_opened_and_stopped()
    {
        using (var store = EmbeddedStore.Open(Source, Small() with { PreallocateSegments = true }))
        {
            store.Put("a", "1");
            store.Flush();
            store.SimulateCrash();
        }
        var newest = SegmentFiles(Source).Last();
        var records = ReadRecords(newest);
        if (new FileInfo(newest).Length == records[^1].Offset + records[^1].Size)
        {
            return; // this file system did not preallocate: nothing distinguishes the file from a sealed one
        }
        Assert.Throws<TransferRefusedException>(() => PartitionExport.Open(Source));
        Session(Source, _ => { });
        using var export = PartitionExport.Open(Source);
        Assert.NotEmpty(export.Manifest.Files);
    }

    [Fact]
    public void Chunks_outside_a_file_or_differing_from_received_bytes_are_refused()
    {
        WritePartition(Source, keys: 50);
        using var export = PartitionExport.Open(Source);
        using var import = PartitionImport.Begin(Target, export.Manifest);
        var f = export.Manifest.Files[0];
        Assert.Throws<TransferRefusedException>(() => export.ReadChunk(f.Name, f.Length - 10, 11));
        Assert.Throws<TransferRefusedException>(() => export.ReadChunk("LOCK", 0, 1));
        Assert.Throws<TransferRefusedException>(() => import.Write(f.Name, f.Length - 10, new byte[11]));
        Assert.Throws<TransferRefusedException>(() => import.Write(f.Name, -1, new byte[1]));
        Assert.Throws<TransferRefusedException>(() => import.Write("seg-00000077-000000.data", 0, new byte[1]));
        var chunk = export.ReadChunk(f.Name, 0, 64);
        import.Write(f.Name, 0, chunk);
        Assert.Equal(0, import.Write(f.Name, 0, chunk));
        var other = (byte[])chunk.Clone();
        other[40] ^= 1;
        Assert.Throws<TransferRefusedException>(() => import.Write(f.Name, 32, other.AsSpan(32, 32)));
        var incomplete = Assert.Throws<TransferRefusedException>(import.Complete);
        Assert.Contains("never received", incomplete.Message);
    }

    [Fact]
    public void A_flipped_byte_in_a_chunk_is_refused_naming_the_file_and_the_record_offset()
    {
        WritePartition(Source);
        using var export = PartitionExport.Open(Source);
        var victim = export.Manifest.Files.First(f => f.Name.EndsWith(".data", StringComparison.Ordinal));
        var record = ReadRecords(Path.Combine(Source, victim.Name))[3];
        var flipAt = record.ValueOffset + 1;
        using var import = PartitionImport.Begin(Target, export.Manifest);
        foreach (var (file, offset, length) in Chunks(export.Manifest))
        {
            var bytes = export.ReadChunk(file, offset, length);
            if (file == victim.Name && flipAt >= offset && flipAt < offset + length)
            {
                bytes[flipAt - offset] ^= 0x10;
            }
            import.Write(file, offset, bytes);
        }
        var e = Assert.Throws<TransferVerificationException>(import.Complete);
        Assert.Equal(victim.Name, e.File);
        Assert.Equal(record.Offset, e.Offset);
        Assert.Contains(victim.Name, e.Message);
        Assert.False(Directory.Exists(Target));
        Assert.False(File.Exists(Path.Combine(Staging, PartitionImport.CompleteFileName)));
        import.Abort();
        Assert.False(Directory.Exists(Staging));
    }

    [Fact]
    public void A_damaged_record_in_the_source_is_refused_by_the_record_check_even_when_the_checksums_agree()
    {
        WritePartition(Source);
        var victim = SegmentFiles(Source)[0];
        var record = ReadRecords(victim)[5];
        FlipByte(victim, record.ValueOffset); // the manifest's checksum is taken over the damaged file
        using var export = PartitionExport.Open(Source);
        using var import = PartitionImport.Begin(Target, export.Manifest);
        CopyAll(export, import, Chunks(export.Manifest));
        var e = Assert.Throws<TransferVerificationException>(import.Complete);
        Assert.Equal(Path.GetFileName(victim), e.File);
        Assert.Equal(record.Offset, e.Offset);
        Assert.Contains("checksum mismatch", e.Message);
        Assert.False(Directory.Exists(Target));
    }

    [Fact]
    public void A_target_that_holds_data_is_never_overwritten_and_an_empty_one_is_replaced()
    {
        var expected = WritePartition(Source, keys: 60);
        Session(Target, s => s.Put("other", "data"));
        using (var export = PartitionExport.Open(Source))
        using (var import = PartitionImport.Begin(Target, export.Manifest))
        {
            CopyAll(export, import, Chunks(export.Manifest));
            Assert.Throws<TransferRefusedException>(import.Complete);
        }
        Assert.Equal("data", EmbeddedStore.Open(Target, Small()).Using(s => s.GetString("other")));

        Directory.Delete(Target, recursive: true);
        Session(Target, _ => { }); // a node created the partition directory and opened it empty: LOCK only
        using (var export = PartitionExport.Open(Source))
        using (var import = PartitionImport.Begin(Target, export.Manifest))
        {
            CopyAll(export, import, Chunks(export.Manifest));
            import.Complete();
        }
        AssertContents(Target, expected);
    }

    // ------------------------------------------------------------------ crashes

    [Fact]
    public void Staging_abandoned_before_COMPLETE_is_discarded_and_the_source_stays_authoritative()
    {
        var expected = WritePartition(Source);
        var before = Snapshot(Source);
        using (var export = PartitionExport.Open(Source))
        using (var import = PartitionImport.Begin(Target, export.Manifest))
        {
            CopyAll(export, import, Chunks(export.Manifest)); // every byte, but no Complete: a crash
        }
        Assert.True(Directory.Exists(Staging));
        var notes = PartitionImport.RecoverStaging(Path.GetDirectoryName(Target)!);
        Assert.Contains(notes, n => n.Contains("Discarded"));
        Assert.False(Directory.Exists(Staging));
        Assert.False(Directory.Exists(Target));
        AssertUnchanged(before, Snapshot(Source));
        AssertContents(Source, expected);
    }

    [Fact]
    public void A_power_cut_before_COMPLETE_leaves_nothing_installable_and_opening_the_data_directory_discards_it()
    {
        WritePartition(Source);
        var dataDir = Path.GetDirectoryName(Target)!;
        Directory.CreateDirectory(dataDir);
        var power = new PowerLossFileLayer(Storage.Files.FileLayer.Default);
        using (var export = PartitionExport.Open(Source))
        using (var import = PartitionImport.Begin(Target, export.Manifest, power))
        {
            CopyAll(export, import, Chunks(export.Manifest));
        }
        power.CutPower();
        using (var data = DataDirectory.Open(dataDir, 4, 4))
        {
            Assert.False(Directory.Exists(Staging));
            Assert.DoesNotContain(data.Notes, n => n.Contains("Installed"));
        }
        Assert.DoesNotContain(Directory.GetFiles(Target), p => Path.GetFileName(p) != DirectoryLock.FileName); // p-003 is the node's own, empty
    }

    [Fact]
    public void A_crash_after_COMPLETE_before_the_rename_is_installed_by_RecoverStaging()
    {
        var expected = WritePartition(Source);
        DataDirectory.Open(Path.GetDirectoryName(Target)!, 4, 4).Dispose(); // the node's data directory, p-003 empty
        using var faulty = new FaultyFileLayer(Storage.Files.FileLayer.Default);
        using (var export = PartitionExport.Open(Source))
        using (var import = PartitionImport.Begin(Target, export.Manifest, faulty))
        {
            CopyAll(export, import, Chunks(export.Manifest));
            faulty.FailNext(FileOps.Move, p => p.EndsWith(PartitionImport.StagingSuffix, StringComparison.Ordinal));
            Assert.Throws<IOException>(import.Complete);
        }
        Assert.True(File.Exists(Path.Combine(Staging, PartitionImport.CompleteFileName)));
        Assert.False(Directory.Exists(Target)); // the empty p-003 was removed, the rename failed
        using (var data = DataDirectory.Open(Path.GetDirectoryName(Target)!, 4, 4))
        {
            Assert.Contains(data.Notes, n => n.Contains("Installed"));
        }
        Assert.False(Directory.Exists(Staging));
        AssertContents(Target, expected);
    }

    [Fact]
    public void A_live_import_is_not_discarded_by_RecoverStaging()
    {
        WritePartition(Source, keys: 30);
        using var export = PartitionExport.Open(Source);
        using var import = PartitionImport.Begin(Target, export.Manifest);
        var notes = PartitionImport.RecoverStaging(Path.GetDirectoryName(Target)!);
        Assert.Contains(notes, n => n.Contains("alone"));
        CopyAll(export, import, Chunks(export.Manifest));
        import.Complete();
        Assert.True(Directory.Exists(Target));
    }

    // ------------------------------------------------------------------ deleting the old copy

    [Fact]
    public void What_repair_moved_aside_does_not_block_a_transfer_and_is_kept_when_the_partition_leaves()
    {
        // Observed before: a partition holding a file repair had moved aside counted as not
        // cleanly stopped at every start and could not be exported ("neither a segment nor a
        // hint file"); a subdirectory made deleting the old copy fail.
        WritePartition(Source, keys: 40);
        File.WriteAllText(Path.Combine(Source, "seg-00000099-000000.data" + Repair.MovedAsideSuffix), "someone's bytes");
        Directory.CreateDirectory(Path.Combine(Source, "seg-00000098-000000.data" + Repair.MovedAsideSuffix));
        File.WriteAllText(Path.Combine(Source, "seg-00000098-000000.data" + Repair.MovedAsideSuffix, "inside.txt"), "kept too");

        Assert.True(PartitionExport.IsCleanlyStopped(Source));
        using (var export = PartitionExport.Open(Source))
        {
            Assert.DoesNotContain(export.Manifest.Files, f => Repair.IsMovedAside(f.Name));
        }
        PartitionExport.DeleteSource(Source);

        Assert.False(Directory.Exists(Source));
        var kept = Path.Combine(Path.GetDirectoryName(Source)!, Repair.KeptDirectoryName, Path.GetFileName(Source));
        Assert.Equal("someone's bytes", File.ReadAllText(Path.Combine(kept, "seg-00000099-000000.data" + Repair.MovedAsideSuffix)));
        Assert.Equal("kept too", File.ReadAllText(Path.Combine(kept, "seg-00000098-000000.data" + Repair.MovedAsideSuffix, "inside.txt")));
    }

    [Fact]
    public void DeleteSource_removes_the_partition_and_a_crash_mid_delete_never_leaves_a_partial_partition()
    {
        WritePartition(Source, keys: 80);
        using (PartitionExport.Open(Source))
        {
            Assert.Throws<StoreLockedException>(() => PartitionExport.DeleteSource(Source));
        }
        using (var faulty = new FaultyFileLayer(Storage.Files.FileLayer.Default))
        {
            faulty.FailNext(FileOps.Delete, p => p.EndsWith(".hint", StringComparison.Ordinal));
            Assert.Throws<IOException>(() => PartitionExport.DeleteSource(Source, faulty));
        }
        Assert.False(Directory.Exists(Source)); // renamed first: never a partition with some files gone
        Assert.True(Directory.Exists(Source + PartitionImport.DeletingSuffix));
        var notes = PartitionImport.RecoverStaging(Path.GetDirectoryName(Source)!);
        Assert.Contains(notes, n => n.Contains("Finished deleting"));
        Assert.Empty(Directory.GetFileSystemEntries(Path.GetDirectoryName(Source)!));

        WritePartition(Source, keys: 10);
        PartitionExport.DeleteSource(Source);
        Assert.Empty(Directory.GetFileSystemEntries(Path.GetDirectoryName(Source)!));
    }
}

/// <summary>Small helpers for these tests.</summary>
internal static class TransferTestExtensions
{
    /// <summary>Runs <paramref name="body"/> on the store and disposes it.</summary>
    public static T Using<T>(this EmbeddedStore store, Func<EmbeddedStore, T> body)
    {
        using (store)
        {
            return body(store);
        }
    }
}
