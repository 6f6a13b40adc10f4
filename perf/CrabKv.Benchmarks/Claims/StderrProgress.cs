using Spectre.Console;

namespace CrabKv.Benchmarks.Claims;

/// <summary>
/// The progress display of the `claims` and `scale` commands: a Spectre.Console progress
/// table on stderr (stdout carries only the markdown results, so it can be redirected).
/// </summary>
internal static class StderrProgress
{
    /// <summary>Runs <paramref name="body"/> with a live progress display on stderr.</summary>
    public static T Run<T>(Func<ProgressContext, T> body)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        return console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(body);
    }

    /// <summary>A task of <paramref name="max"/> units, started now.</summary>
    public static ProgressTask Step(this ProgressContext context, string description, double max = 1) =>
        context.AddTask(Markup.Escape(description), autoStart: true, maxValue: max);

    /// <summary>Marks a task done (value at its maximum) and stops it.</summary>
    public static void Done(this ProgressTask task)
    {
        task.Value = task.MaxValue;
        task.StopTask();
    }
}
