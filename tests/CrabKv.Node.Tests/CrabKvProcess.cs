using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using Xunit;

namespace CrabKv.Node.Tests;

/// <summary>
/// The real <c>crabkv</c> executable (the CrabKv.Node build output, run with <c>dotnet crabkv.dll</c>)
/// in a child process, its stdout and stderr collected line by line. Waits are bounded and
/// driven by what the process prints or by its exit, never by sleeping.
/// </summary>
public sealed partial class CrabKvProcess : IDisposable
{
    /// <summary>What a <c>serve</c> process does first.</summary>
    public enum Outcome { Serving, Exited }

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _stdout = new();
    private readonly ConcurrentQueue<string> _stderr = new();
    private readonly TaskCompletionSource _serving = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<(string Text, int Count, TaskCompletionSource Seen)> _stderrWaiters = new(); // under its own lock
    private readonly Dictionary<string, int> _stderrCounts = new();                                     // lines containing each waited-for text

    private CrabKvProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }
            _stdout.Enqueue(e.Data);
            if (e.Data.StartsWith("crabkv node ready", StringComparison.Ordinal))
            {
                _serving.TrySetResult();
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                _stderr.Enqueue(e.Data);
                lock (_stderrWaiters)
                {
                    foreach (var text in _stderrCounts.Keys.ToList())
                    {
                        if (e.Data.Contains(text, StringComparison.Ordinal))
                        {
                            _stderrCounts[text]++;
                        }
                    }
                    _stderrWaiters.RemoveAll(w => _stderrCounts[w.Text] >= w.Count && w.Seen.TrySetResult());
                }
            }
        };
    }

    /// <summary>
    /// The built crabkv.dll (path recorded at build time by the test project), or the one named
    /// by <c>CRABKV_NODE_DLL</c> (to run these tests against another build, e.g. an older one).
    /// </summary>
    public static string Dll
    {
        get
        {
            var path = Environment.GetEnvironmentVariable("CRABKV_NODE_DLL") is { Length: > 0 } other
                ? other
                : typeof(CrabKvProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "CrabKvNodeDll").Value!;
            Assert.True(File.Exists(path), $"crabkv is not built at '{path}'");
            return path;
        }
    }

    public int Id => _process.Id;

    public string Stdout => string.Join("\n", _stdout);

    public string Stderr => string.Join("\n", _stderr);

    public int ExitCode => _process.ExitCode;

    private static ProcessStartInfo StartInfo(string[] args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true, // no terminal: progress is printed as plain lines
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Dll);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        return info;
    }

    /// <summary>
    /// Runs a command to its end (bounded by <paramref name="timeout"/>; killed past it): exit
    /// code, stdout exactly as bytes, stderr as text.
    /// </summary>
    public static Task<Completed> RunAsync(TimeSpan timeout, params string[] args) => RunAsync(timeout, [], args);

    /// <summary><see cref="RunAsync(TimeSpan, string[])"/> in <paramref name="workingDirectory"/> (for the defaults relative to it).</summary>
    public static Task<Completed> RunInAsync(string workingDirectory, TimeSpan timeout, params string[] args) => RunAsync(timeout, [], args, workingDirectory);

    /// <summary><see cref="RunAsync(TimeSpan, string[])"/> with <paramref name="stdin"/> written to its standard input, which is then closed.</summary>
    public static Task<Completed> RunAsync(TimeSpan timeout, byte[] stdin, params string[] args) => RunAsync(timeout, stdin, args, null);

    private static async Task<Completed> RunAsync(TimeSpan timeout, byte[] stdin, string[] args, string? workingDirectory)
    {
        var info = StartInfo(args);
        if (workingDirectory is not null)
        {
            info.WorkingDirectory = workingDirectory;
        }
        using var process = Process.Start(info)!;
        var input = process.StandardInput.BaseStream;
        try
        {
            await input.WriteAsync(stdin).AsTask().WaitAsync(timeout);
            await input.FlushAsync();
        }
        catch (IOException)
        {
            // The command exited without reading all of it (a usage error): its exit code says so.
        }
        process.StandardInput.Close();
        var stdout = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"crabkv {string.Join(' ', args)} did not exit within {timeout}");
        }
        await copy;
        return new Completed(process.ExitCode, stdout.ToArray(), await stderr);
    }

    /// <summary>A finished command.</summary>
    public sealed record Completed(int ExitCode, byte[] StdoutBytes, string Stderr)
    {
        public string Stdout => System.Text.Encoding.UTF8.GetString(StdoutBytes);

        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
    }

    /// <summary>A TCP port free right now (the OS picks it; released for the node to take).</summary>
    public static int FreePort()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Starts <c>dotnet crabkv.dll</c> with <paramref name="args"/>.</summary>
    public static CrabKvProcess Start(params string[] args)
    {
        var info = StartInfo(args);
        var process = new CrabKvProcess(new Process { StartInfo = info });
        process._process.Start();
        process._process.StandardInput.Close();
        process._process.BeginOutputReadLine();
        process._process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Waits (bounded) until the process says it serves or exits.</summary>
    public async Task<Outcome> ServingOrExitAsync(TimeSpan timeout)
    {
        var exited = _process.WaitForExitAsync();
        var first = await Task.WhenAny(_serving.Task, exited).WaitAsync(timeout);
        if (first == exited)
        {
            await exited; // stdout and stderr fully read
            return Outcome.Exited;
        }
        return Outcome.Serving;
    }

    /// <summary>Lines of stderr so far that contain <paramref name="text"/>; from the first call on, later lines are counted as they arrive.</summary>
    public int StderrLines(string text)
    {
        lock (_stderrWaiters)
        {
            if (!_stderrCounts.TryGetValue(text, out var count))
            {
                count = _stderr.Count(l => l.Contains(text, StringComparison.Ordinal));
                _stderrCounts[text] = count;
            }
            return count;
        }
    }

    /// <summary>Completes when stderr holds <paramref name="count"/> lines containing <paramref name="text"/> (call <see cref="StderrLines"/> first to learn the current count).</summary>
    public Task StderrLinesAsync(string text, int count)
    {
        lock (_stderrWaiters)
        {
            if (StderrLines(text) >= count)
            {
                return Task.CompletedTask;
            }
            var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _stderrWaiters.Add((text, count, seen));
            return seen.Task;
        }
    }

    /// <summary>Waits (bounded) for the exit and returns its code.</summary>
    public async Task<int> ExitAsync(TimeSpan timeout)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout);
        return _process.ExitCode;
    }

    /// <summary>Kills the process at once (SIGKILL): nothing flushed, nothing sealed.</summary>
    public void KillHard()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(30_000);
    }

    /// <summary>Sends SIGTERM (a graceful stop; <c>Process.Kill</c> would be SIGKILL).</summary>
    /// <remarks>Sent with kill(2) itself, not by starting the <c>kill</c> program.</remarks>
    public void Terminate() =>
        Assert.True(kill(_process.Id, SIGTERM) == 0, $"kill({_process.Id}, SIGTERM) failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");

    private const int SIGTERM = 15;

    [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    /// <summary>Kills a process a failed test left running (a crash is fine here: cleanup only).</summary>
    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }
        _process.Dispose();
    }
}

/// <summary>A temp directory deleted with everything in it on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "crabkv-node-" + Guid.NewGuid().ToString("N"));

    public TempDir() => Directory.CreateDirectory(Path);

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A process still closing; the OS temp cleaner takes it.
        }
    }
}
