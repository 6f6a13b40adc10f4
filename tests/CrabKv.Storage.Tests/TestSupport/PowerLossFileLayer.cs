using System.Runtime.CompilerServices;
using CrabKv.Storage.Files;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage.Tests.TestSupport;

/// <summary>
/// Records what the layer beneath has made durable and, on <see cref="CutPower"/>, rewrites
/// the real files to what a power cut would leave.
/// </summary>
/// <remarks>
/// <para>The model (a strict one: a real disk may keep more, never less):</para>
/// <list type="bullet">
/// <item>A file's content is durable as of its last <see cref="SyncData"/> or
/// <see cref="FlushToDisk"/>; writes, truncations and preallocations since then are dropped
/// whole (no torn sectors). A new file never synced reverts to empty.</item>
/// <item>A directory's entries (files created, renamed, deleted) are durable as of its last
/// <see cref="SyncDirectory"/>: a file created since then disappears, a rename reverts to the
/// old name, a deleted file comes back, each with its durable content.</item>
/// <item>A directory created through the layer exists once its parent is fsynced; otherwise
/// it disappears with everything in it.</item>
/// <item>Files and directories that existed before the layer first touched their directory
/// are durable as found.</item>
/// </list>
/// <para>Use: run the store through this layer, drop it as a crash would
/// (<c>SimulateCrash</c>, or stop the actors; every handle must be closed), call
/// <see cref="CutPower"/>, then reopen. Afterwards, writes through handles opened before the
/// cut throw, and the layer starts over with what is on disk as durable. Thread safe (one
/// lock); content is kept in memory, so for small test stores only.</para>
/// </remarks>
public sealed class PowerLossFileLayer(FileLayer inner) : WrappingFileLayer(inner)
{
    private readonly object _gate = new();
    private readonly Dictionary<string, DirectoryState> _directories = new(StringComparer.Ordinal);
    private readonly Dictionary<string, bool> _createdDirectories = new(StringComparer.Ordinal); // path → entry durable in its parent
    private readonly ConditionalWeakTable<SafeFileHandle, Tracked> _handles = new();
    private int _generation;

    /// <summary>Power cuts so far.</summary>
    public int Cuts { get; private set; }

    public override SafeFileHandle Open(string path, FileMode mode, FileAccess access, FileShare share)
    {
        lock (_gate)
        {
            var full = Path.GetFullPath(path);
            var dir = DirectoryOf(full);
            var name = Path.GetFileName(full);
            var existed = File.Exists(full);
            Inode? inode = null;
            if (existed)
            {
                inode = dir.Find(name);
                if ((access & FileAccess.Write) != 0)
                {
                    Capture(inode, full); // its content before any change through this handle
                }
            }
            var handle = Inner.Open(path, mode, access, share);
            if (inode is null)
            {
                inode = new Inode { Known = true, Durable = new Image() };
                dir.Current[name] = inode;
            }
            else if (mode is FileMode.Create or FileMode.Truncate)
            {
                inode.Pending.Add(Change.Length(0));
            }
            if ((access & FileAccess.Write) != 0)
            {
                _handles.AddOrUpdate(handle, new Tracked(inode, _generation));
            }
            return handle;
        }
    }

    public override void Write(SafeFileHandle file, ReadOnlySpan<byte> source, long offset)
    {
        lock (_gate)
        {
            var inode = Track(file);
            Inner.Write(file, source, offset);
            inode?.Pending.Add(Change.Write(offset, source.ToArray()));
        }
    }

    public override void SetLength(SafeFileHandle file, long length)
    {
        lock (_gate)
        {
            var inode = Track(file);
            Inner.SetLength(file, length);
            inode?.Pending.Add(Change.Length(length));
        }
    }

    public override bool TryPreallocate(SafeFileHandle file, long length)
    {
        lock (_gate)
        {
            var inode = Track(file);
            var done = Inner.TryPreallocate(file, length);
            if (done)
            {
                inode?.Pending.Add(Change.Extend(length));
            }
            return done;
        }
    }

    /// <summary>
    /// Strict model of <c>RWF_DSYNC</c>: these bytes are durable at once; earlier writes still
    /// pending stay pending (they are dropped by a cut, replayed in order by the next sync).
    /// </summary>
    public override void WriteDurable(SafeFileHandle file, ReadOnlySpan<byte> source, long offset)
    {
        lock (_gate)
        {
            var inode = Track(file);
            Inner.WriteDurable(file, source, offset);
            if (inode is not null)
            {
                var bytes = source.ToArray();
                Change.Write(offset, bytes).ApplyTo(inode.Durable);
                inode.Pending.Add(Change.Write(offset, bytes));
            }
        }
    }

    public override void SyncData(SafeFileHandle file)
    {
        lock (_gate)
        {
            var inode = Track(file);
            Inner.SyncData(file);
            inode?.MakeDurable();
        }
    }

    public override void FlushToDisk(SafeFileHandle file)
    {
        lock (_gate)
        {
            var inode = Track(file);
            Inner.FlushToDisk(file);
            inode?.MakeDurable();
        }
    }

    public override void SyncDirectory(string directory)
    {
        lock (_gate)
        {
            Inner.SyncDirectory(directory);
            var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
            if (_directories.TryGetValue(full, out var dir))
            {
                dir.Durable = new Dictionary<string, Inode>(dir.Current, StringComparer.Ordinal);
            }
            foreach (var created in _createdDirectories.Keys.ToList())
            {
                if (Path.GetDirectoryName(created) == full)
                {
                    _createdDirectories[created] = true;
                }
            }
        }
    }

    public override void Move(string source, string destination, bool overwrite)
    {
        lock (_gate)
        {
            var from = Path.GetFullPath(source);
            var to = Path.GetFullPath(destination);
            var fromDir = DirectoryOf(from);
            var toDir = DirectoryOf(to);
            var inode = fromDir.Find(Path.GetFileName(from));
            Capture(inode, from);
            if (File.Exists(to))
            {
                Capture(toDir.Find(Path.GetFileName(to)), to);
            }
            Inner.Move(source, destination, overwrite);
            fromDir.Current.Remove(Path.GetFileName(from));
            toDir.Current[Path.GetFileName(to)] = inode;
        }
    }

    public override void Delete(string path)
    {
        lock (_gate)
        {
            var full = Path.GetFullPath(path);
            if (!File.Exists(full))
            {
                Inner.Delete(path);
                return;
            }
            var dir = DirectoryOf(full);
            Capture(dir.Find(Path.GetFileName(full)), full);
            Inner.Delete(path);
            dir.Current.Remove(Path.GetFileName(full));
        }
    }

    public override void CreateDirectory(string path)
    {
        lock (_gate)
        {
            var missing = new List<string>();
            for (var d = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)); d is not null && !Directory.Exists(d); d = Path.GetDirectoryName(d))
            {
                missing.Add(d);
            }
            Inner.CreateDirectory(path);
            foreach (var d in missing)
            {
                _createdDirectories[d] = false;
            }
        }
    }

    /// <summary>Not modelled (directory renames and deletes): refused, so a test cannot trust a model that does not cover them.</summary>
    public override void MoveDirectory(string source, string destination) =>
        throw new NotSupportedException($"{nameof(PowerLossFileLayer)} does not model directory renames.");

    /// <summary>Not modelled: refused (see <see cref="MoveDirectory"/>).</summary>
    public override void DeleteDirectory(string path) =>
        throw new NotSupportedException($"{nameof(PowerLossFileLayer)} does not model directory deletes.");

    /// <summary>
    /// Rewrites the real files to what the last syncs made durable (see the model above) and
    /// starts over. The store must be dropped first: no handle of it may still be open.
    /// </summary>
    public void CutPower()
    {
        lock (_gate)
        {
            var lost = _createdDirectories.Where(d => !d.Value || IsUnder(d.Key, _createdDirectories)).Select(d => d.Key).ToList();
            foreach (var (path, dir) in _directories)
            {
                if (!Directory.Exists(path) || lost.Any(l => path == l || path.StartsWith(l + Path.DirectorySeparatorChar, StringComparison.Ordinal)))
                {
                    continue;
                }
                foreach (var name in dir.Current.Keys)
                {
                    if (!dir.Durable.ContainsKey(name))
                    {
                        File.Delete(Path.Combine(path, name));
                    }
                }
                foreach (var (name, inode) in dir.Durable)
                {
                    var file = Path.Combine(path, name);
                    if (inode.Known)
                    {
                        inode.Durable.WriteTo(file);
                    }
                    else if (!dir.Current.TryGetValue(name, out var now) || now != inode)
                    {
                        throw new InvalidOperationException($"'{file}' changed without its content being captured.");
                    }
                }
            }
            foreach (var path in lost.OrderBy(p => p.Length))
            {
                if (Directory.Exists(path))
                {
                    Directory.Delete(path, recursive: true);
                }
            }
            _directories.Clear();
            _createdDirectories.Clear();
            _generation++;
            Cuts++;
        }
    }

    /// <summary>True when an ancestor of <paramref name="path"/> was created and is not durable.</summary>
    private static bool IsUnder(string path, Dictionary<string, bool> created)
    {
        for (var d = Path.GetDirectoryName(path); d is not null; d = Path.GetDirectoryName(d))
        {
            if (created.TryGetValue(d, out var durable) && !durable)
            {
                return true;
            }
        }
        return false;
    }

    private Inode? Track(SafeFileHandle file)
    {
        if (!_handles.TryGetValue(file, out var tracked))
        {
            return null;
        }
        if (tracked.Generation != _generation)
        {
            throw new IOException("The power is off: this handle was opened before the cut.");
        }
        return tracked.Inode;
    }

    private DirectoryState DirectoryOf(string fullPath)
    {
        var path = Path.GetDirectoryName(fullPath)!;
        if (!_directories.TryGetValue(path, out var dir))
        {
            dir = new DirectoryState();
            foreach (var file in Directory.EnumerateFiles(path))
            {
                var inode = new Inode(); // durable as found; content read when first needed
                dir.Current[Path.GetFileName(file)] = inode;
                dir.Durable[Path.GetFileName(file)] = inode;
            }
            _directories.Add(path, dir);
        }
        return dir;
    }

    /// <summary>Reads a file's content as its durable content, the first time it is about to change.</summary>
    private static void Capture(Inode inode, string path)
    {
        if (inode.Known)
        {
            return;
        }
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        inode.Durable = Image.Of(bytes);
        inode.Known = true;
    }

    private sealed record Tracked(Inode Inode, int Generation);

    private sealed class DirectoryState
    {
        public Dictionary<string, Inode> Current { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, Inode> Durable { get; set; } = new(StringComparer.Ordinal);

        /// <summary>The inode named <paramref name="name"/>; a file that appeared behind the layer's back counts as durable.</summary>
        public Inode Find(string name)
        {
            if (!Current.TryGetValue(name, out var inode))
            {
                inode = new Inode();
                Current[name] = inode;
                Durable[name] = inode;
            }
            return inode;
        }
    }

    /// <summary>One file, whatever its name: its durable content and the changes since.</summary>
    private sealed class Inode
    {
        /// <summary>False until the content is captured (files found on disk, not yet changed).</summary>
        public bool Known { get; set; }

        public Image Durable { get; set; } = new();

        public List<Change> Pending { get; } = new();

        public void MakeDurable()
        {
            foreach (var c in Pending)
            {
                c.ApplyTo(Durable);
            }
            Pending.Clear();
        }
    }

    private readonly record struct Change(int Kind, long Offset, byte[]? Bytes)
    {
        public static Change Write(long offset, byte[] bytes) => new(0, offset, bytes);

        public static Change Length(long length) => new(1, length, null);

        public static Change Extend(long length) => new(2, length, null);

        public void ApplyTo(Image image)
        {
            switch (Kind)
            {
                case 0:
                    image.Write(Offset, Bytes!);
                    break;
                case 1:
                    image.SetLength(Offset);
                    break;
                default:
                    image.SetLength(Math.Max(image.Length, Offset));
                    break;
            }
        }
    }

    /// <summary>File content kept up to its last non-zero byte; the rest up to <see cref="Length"/> is zeros (preallocation).</summary>
    private sealed class Image
    {
        private byte[] _data = [];
        private int _used;

        public long Length { get; private set; }

        public static Image Of(byte[] bytes)
        {
            var used = bytes.AsSpan().LastIndexOfAnyExcept((byte)0) + 1;
            return new Image { _data = bytes[..used], _used = used, Length = bytes.Length };
        }

        public void Write(long offset, byte[] bytes)
        {
            var lastNonZero = bytes.AsSpan().LastIndexOfAnyExcept((byte)0);
            var used = lastNonZero < 0 ? _used : (int)Math.Max(_used, offset + lastNonZero + 1);
            if (used > _data.Length)
            {
                Array.Resize(ref _data, Math.Max(used, _data.Length * 2));
            }
            var count = (int)Math.Min(bytes.Length, used - offset);
            if (count > 0)
            {
                bytes.AsSpan(0, count).CopyTo(_data.AsSpan((int)offset));
            }
            _used = used;
            Length = Math.Max(Length, offset + bytes.Length);
        }

        public void SetLength(long length)
        {
            if (length < _used)
            {
                Array.Clear(_data, (int)length, _used - (int)length);
                _used = (int)length;
            }
            Length = length;
        }

        public void WriteTo(string path)
        {
            using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            stream.Write(_data, 0, (int)Math.Min(_used, Length));
            stream.SetLength(Length);
        }
    }
}
