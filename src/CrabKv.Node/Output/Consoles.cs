using Spectre.Console;

namespace CrabKv.Node.Output;

/// <summary>
/// The two Spectre consoles: <see cref="Results"/> on stdout (results only: values, tables,
/// summaries) and <see cref="Diagnostics"/> on stderr (progress, warnings, errors).
/// </summary>
public static class Consoles
{
    /// <summary>stdout: what a script reads.</summary>
    public static IAnsiConsole Results { get; } = Create(Console.Out, Console.IsOutputRedirected);

    /// <summary>stderr: progress bars and messages for a person.</summary>
    public static IAnsiConsole Diagnostics { get; } = Create(Console.Error, Console.IsErrorRedirected);

    private static IAnsiConsole Create(TextWriter writer, bool redirected)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = redirected ? InteractionSupport.No : InteractionSupport.Detect,
        });
        if (redirected)
        {
            console.Profile.Width = 160; // tables are not cut to 80 columns in a file or a pipe
        }
        return console;
    }

    /// <summary>A line on stdout.</summary>
    public static void Result(string line) => Console.Out.WriteLine(line);

    /// <summary>A line on stderr.</summary>
    public static void Note(string line) => Console.Error.WriteLine(line);
}

/// <summary>
/// Progress on stderr: a Spectre progress display when stderr is a terminal; otherwise (a file,
/// a pipe, a test) one line per task when it completes, so logs stay readable.
/// </summary>
public static class ProgressDisplay
{
    /// <summary>Runs <paramref name="work"/> with a progress context on stderr.</summary>
    public static async Task<T> RunAsync<T>(Func<ProgressReporter, Task<T>> work)
    {
        if (Console.IsErrorRedirected)
        {
            return await work(new ProgressReporter(null));
        }
        T result = default!;
        await Consoles.Diagnostics.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx => result = await work(new ProgressReporter(ctx)));
        return result;
    }
}

/// <summary>Adds tasks to a progress display (or, redirected, prints a line when each completes).</summary>
public sealed class ProgressReporter(ProgressContext? context)
{
    /// <summary>A task of <paramref name="total"/> units.</summary>
    public ProgressTask Start(string description, double total) => new(context?.AddTask(description, maxValue: Math.Max(total, 1)), description, total);

    /// <summary>One task of a progress display.</summary>
    public sealed class ProgressTask
    {
        private readonly Spectre.Console.ProgressTask? _task;
        private readonly string _description;
        private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
        private double _value;
        private readonly double _total;
        private int _done;

        internal ProgressTask(Spectre.Console.ProgressTask? task, string description, double total)
        {
            _task = task;
            _description = description;
            _total = total;
        }

        /// <summary>Adds <paramref name="amount"/> done (thread safe).</summary>
        public void Increment(double amount)
        {
            lock (this)
            {
                _value += amount;
                if (_task is not null) { _task.Value = _value; }
            }
        }

        /// <summary>Sets the amount done.</summary>
        public void Set(double value)
        {
            lock (this)
            {
                _value = value;
                if (_task is not null) { _task.Value = _value; }
            }
        }

        /// <summary>Marks the task complete; redirected, prints one line with <paramref name="summary"/>.</summary>
        public void Complete(string? summary = null)
        {
            if (Interlocked.Exchange(ref _done, 1) == 1)
            {
                return;
            }
            if (_task is not null)
            {
                _task.Value = _task.MaxValue;
                if (summary is not null)
                {
                    _task.Description = $"{_description}: {summary}";
                }
                _task.StopTask();
                return;
            }
            Console.Error.WriteLine($"{_description}: {(summary ?? $"{_value:N0}/{_total:N0}")} ({Cli.Durations.Format(_clock.Elapsed)})");
        }
    }
}
