using System.Runtime.CompilerServices;
using CrabKv.Storage.Files;
using Microsoft.Win32.SafeHandles;

namespace CrabKv.Storage.Tests.TestSupport;

/// <summary>Kinds of file operation a <see cref="FaultyFileLayer"/> rule applies to.</summary>
[Flags]
public enum FileOps
{
    None = 0,
    /// <summary>Open or create a file.</summary>
    Open = 1 << 0,
    /// <summary>Positional write.</summary>
    Write = 1 << 1,
    /// <summary>Positional read.</summary>
    Read = 1 << 2,
    /// <summary>Truncate or extend.</summary>
    SetLength = 1 << 3,
    /// <summary>fdatasync or fsync of a file.</summary>
    Sync = 1 << 4,
    /// <summary>fallocate.</summary>
    Preallocate = 1 << 5,
    /// <summary>fsync of a directory.</summary>
    SyncDirectory = 1 << 6,
    /// <summary>Rename.</summary>
    Move = 1 << 7,
    /// <summary>Delete a file.</summary>
    Delete = 1 << 8,
    /// <summary>Create a directory.</summary>
    CreateDirectory = 1 << 9,
    /// <summary>
    /// A write that is durable when it returns (<see cref="FileLayer.WriteDurable"/>, one
    /// <c>pwritev2(RWF_DSYNC)</c>). Rules for <see cref="Write"/> or <see cref="Sync"/> apply
    /// to it too: it is both.
    /// </summary>
    DurableWrite = 1 << 10,
}

/// <summary>
/// Fault injection by wrapping the file layer (Garnet's <c>SimulatedFlakyDevice</c>): makes
/// the next or every operation of some kinds (optionally only on paths a predicate accepts)
/// throw an <see cref="IOException"/> whose message starts with "Injected", and parks the
/// thread of the next matching operation until <see cref="Release"/> — a deterministic gate
/// instead of timing. The hold comes before the fault check, and the failed operation does
/// nothing. Thread safe: the storage engine calls it from writer, reader and merge threads.
/// Dispose heals and releases.
/// </summary>
public sealed class FaultyFileLayer(FileLayer inner) : WrappingFileLayer(inner), IDisposable
{
    /// <summary>Longest a held operation waits: a test that forgets to release fails instead of hanging.</summary>
    private static readonly TimeSpan HoldLimit = TimeSpan.FromSeconds(20);

    private readonly object _gate = new();
    private readonly List<Rule> _rules = new();
    private readonly ConditionalWeakTable<SafeFileHandle, string> _paths = new();
    private readonly ManualResetEventSlim _released = new(initialState: true);
    private readonly ManualResetEventSlim _held = new(initialState: false);
    private volatile bool _armed; // fast path: no lock while nothing is configured
    private FileOps _holdOps;
    private Func<string, bool>? _holdPath;
    private int _injected;
    private int _durableWrites;

    private sealed record Rule(FileOps Ops, Func<string, bool>? Path, bool Once);

    /// <summary>Durable writes (<see cref="WriteDurable"/>) that got past the fault rules.</summary>
    public int DurableWrites => Volatile.Read(ref _durableWrites);

    /// <summary>Faults thrown so far.</summary>
    public int FailuresInjected => Volatile.Read(ref _injected);

    /// <summary>The next operation of <paramref name="ops"/> (on a path <paramref name="path"/> accepts) fails.</summary>
    public FaultyFileLayer FailNext(FileOps ops, Func<string, bool>? path = null) => AddRule(new Rule(ops, path, Once: true));

    /// <summary>Every operation of <paramref name="ops"/> (on a path <paramref name="path"/> accepts) fails until <see cref="Heal"/>.</summary>
    public FaultyFileLayer FailEvery(FileOps ops, Func<string, bool>? path = null) => AddRule(new Rule(ops, path, Once: false));

    /// <summary>Removes every fault rule (a held operation stays held).</summary>
    public void Heal()
    {
        lock (_gate)
        {
            _rules.Clear();
            _armed = _holdOps != FileOps.None;
        }
    }

    /// <summary>The next operation of <paramref name="ops"/> (on a path <paramref name="path"/> accepts) parks its thread until <see cref="Release"/>.</summary>
    public void HoldNext(FileOps ops, Func<string, bool>? path = null)
    {
        lock (_gate)
        {
            _held.Reset();
            _released.Reset();
            _holdOps = ops;
            _holdPath = path;
            _armed = true;
        }
    }

    /// <summary>Waits (bounded) until a thread is parked by <see cref="HoldNext"/>.</summary>
    /// <exception cref="TimeoutException">No operation reached the hold.</exception>
    public void WaitUntilHeld(TimeSpan? timeout = null)
    {
        if (!_held.Wait(timeout ?? TimeSpan.FromSeconds(15)))
        {
            throw new TimeoutException("No file operation reached the hold.");
        }
    }

    /// <summary>Lets the held operation (if any) go on, and cancels a hold not reached yet.</summary>
    public void Release()
    {
        lock (_gate)
        {
            _holdOps = FileOps.None;
            _holdPath = null;
            _armed = _rules.Count > 0;
        }
        _released.Set();
    }

    /// <summary>Heals and releases.</summary>
    public void Dispose()
    {
        Heal();
        Release();
    }

    public override SafeFileHandle Open(string path, FileMode mode, FileAccess access, FileShare share)
    {
        Before(FileOps.Open, path);
        var handle = base.Open(path, mode, access, share);
        _paths.AddOrUpdate(handle, path);
        return handle;
    }

    public override void Write(SafeFileHandle file, ReadOnlySpan<byte> source, long offset)
    {
        Before(FileOps.Write, file);
        base.Write(file, source, offset);
    }

    /// <summary>Counts as <see cref="FileOps.DurableWrite"/>, <see cref="FileOps.Write"/> and <see cref="FileOps.Sync"/>.</summary>
    public override void WriteDurable(SafeFileHandle file, ReadOnlySpan<byte> source, long offset)
    {
        Before(FileOps.DurableWrite | FileOps.Write | FileOps.Sync, file);
        Interlocked.Increment(ref _durableWrites);
        base.WriteDurable(file, source, offset);
    }

    public override int Read(SafeFileHandle file, Span<byte> destination, long offset)
    {
        Before(FileOps.Read, file);
        return base.Read(file, destination, offset);
    }

    public override void SetLength(SafeFileHandle file, long length)
    {
        Before(FileOps.SetLength, file);
        base.SetLength(file, length);
    }

    public override void SyncData(SafeFileHandle file)
    {
        Before(FileOps.Sync, file);
        base.SyncData(file);
    }

    public override void FlushToDisk(SafeFileHandle file)
    {
        Before(FileOps.Sync, file);
        base.FlushToDisk(file);
    }

    public override bool TryPreallocate(SafeFileHandle file, long length)
    {
        Before(FileOps.Preallocate, file);
        return base.TryPreallocate(file, length);
    }

    public override void SyncDirectory(string directory)
    {
        Before(FileOps.SyncDirectory, directory);
        base.SyncDirectory(directory);
    }

    public override void Move(string source, string destination, bool overwrite)
    {
        Before(FileOps.Move, source);
        base.Move(source, destination, overwrite);
    }

    public override void Delete(string path)
    {
        Before(FileOps.Delete, path);
        base.Delete(path);
    }

    /// <summary>A directory rename counts as <see cref="FileOps.Move"/>.</summary>
    public override void MoveDirectory(string source, string destination)
    {
        Before(FileOps.Move, source);
        base.MoveDirectory(source, destination);
    }

    /// <summary>A directory delete counts as <see cref="FileOps.Delete"/>.</summary>
    public override void DeleteDirectory(string path)
    {
        Before(FileOps.Delete, path);
        base.DeleteDirectory(path);
    }

    public override void CreateDirectory(string path)
    {
        Before(FileOps.CreateDirectory, path);
        base.CreateDirectory(path);
    }

    private FaultyFileLayer AddRule(Rule rule)
    {
        lock (_gate)
        {
            _rules.Add(rule);
            _armed = true;
        }
        return this;
    }

    private void Before(FileOps op, SafeFileHandle file)
    {
        if (_armed)
        {
            Before(op, _paths.TryGetValue(file, out var path) ? path : "?");
        }
    }

    private void Before(FileOps op, string path)
    {
        if (!_armed)
        {
            return;
        }
        var hold = false;
        lock (_gate)
        {
            if ((_holdOps & op) != 0 && (_holdPath is null || _holdPath(path)))
            {
                _holdOps = FileOps.None; // only the first matching operation is parked
                _holdPath = null;
                hold = true;
            }
        }
        if (hold)
        {
            _held.Set();
            _released.Wait(HoldLimit);
        }
        lock (_gate)
        {
            var i = _rules.FindIndex(r => (r.Ops & op) != 0 && (r.Path is null || r.Path(path)));
            if (i < 0)
            {
                return;
            }
            if (_rules[i].Once)
            {
                _rules.RemoveAt(i);
            }
            _injected++;
        }
        var name = (op & FileOps.DurableWrite) != 0 ? nameof(FileOps.DurableWrite) : op.ToString();
        throw new IOException($"Injected {name} failure on '{path}'.");
    }
}
