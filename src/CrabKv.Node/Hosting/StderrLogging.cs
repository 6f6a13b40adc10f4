using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Hosting.Logging;
using Microsoft.Extensions.Logging;

namespace CrabKv.Node.Hosting;

/// <summary>
/// Akka's log through Microsoft.Extensions.Logging to stderr: the actor systems of this
/// executable use Akka.Hosting's <c>LoggerFactoryLogger</c> (what <c>ConfigureLoggers(l =&gt;
/// l.AddLoggerFactory())</c> sets up) with an <see cref="ILoggerFactory"/> whose one provider
/// writes a line per entry to stderr. stdout never carries a log line.
/// </summary>
public static class StderrLogging
{
    /// <summary>
    /// Creates an actor system whose log goes to stderr at <paramref name="level"/> and above
    /// (Akka's own stdout logger is off).
    /// </summary>
    /// <param name="name">Actor system name.</param>
    /// <param name="config">Its configuration.</param>
    /// <param name="level">Lowest level written.</param>
    /// <param name="drop">Entries (by their text) left out, e.g. what a command reports itself.</param>
    public static ActorSystem CreateSystem(string name, Config config, LogLevel level, Func<string, bool>? drop = null)
    {
        var factory = LoggerFactory.Create(b => b.ClearProviders().SetMinimumLevel(level).AddProvider(new StderrLoggerProvider(drop)));
        var akkaLevel = level switch
        {
            LogLevel.Trace or LogLevel.Debug => "DEBUG",
            LogLevel.Information => "INFO",
            LogLevel.Warning => "WARNING",
            _ => "ERROR",
        };
        StderrMinimalLogger.Drop = drop;
        // Akka's own minimal logger (used before the loggers start and after they stop, e.g.
        // a late warning during shutdown) writes to stderr too, never to stdout.
        var logging = ConfigurationFactory.ParseString($"""
            akka.loggers = ["Akka.Hosting.Logging.LoggerFactoryLogger, Akka.Hosting"]
            akka.loglevel = {akkaLevel}
            akka.stdout-loglevel = {akkaLevel}
            akka.stdout-logger-class = "{typeof(StderrMinimalLogger).AssemblyQualifiedName}"
            """);
        var setup = BootstrapSetup.Create().WithConfig(logging.WithFallback(config)).And(new LoggerFactorySetup(factory));
        var system = ActorSystem.Create(name, setup);
        system.RegisterOnTermination(factory.Dispose);
        return system;
    }
}

/// <summary>
/// Akka's minimal logger (<c>akka.stdout-logger-class</c>), the one it uses before the configured
/// loggers start and after they stop: the same one-line format as <see cref="StderrLoggerProvider"/>, on stderr.
/// </summary>
public sealed class StderrMinimalLogger : Akka.Event.MinimalLogger
{
    /// <summary>Entries left out (the process has one actor system).</summary>
    internal static Func<string, bool>? Drop { get; set; }

    /// <inheritdoc />
    protected override void Log(object message)
    {
        if (message is not Akka.Event.LogEvent e)
        {
            return;
        }
        var level = e.LogLevel() switch
        {
            Akka.Event.LogLevel.DebugLevel => "dbug",
            Akka.Event.LogLevel.InfoLevel => "info",
            Akka.Event.LogLevel.WarningLevel => "warn",
            _ => "fail",
        };
        var text = $"[{e.LogSource}] {e.Message}".ReplaceLineEndings(" ");
        if (Drop?.Invoke(text) == true)
        {
            return;
        }
        var cause = e.Cause is null ? "" : $" ({e.Cause.GetType().Name}: {e.Cause.Message.ReplaceLineEndings(" ")})";
        Console.Error.WriteLine($"{level}: {text}{cause}");
    }
}

/// <summary>
/// One line per log entry on stderr: <c>warn: [source] message</c> (Akka's level, time and thread
/// prefix removed; an exception adds its type and message, never a stack trace).
/// </summary>
internal sealed partial class StderrLoggerProvider(Func<string, bool>? drop) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new StderrLogger(drop);

    [System.Text.RegularExpressions.GeneratedRegex(@"^\[(DEBUG|INFO|WARNING|ERROR)\]\[[^\]]*\]\[Thread \d+\]")]
    private static partial System.Text.RegularExpressions.Regex AkkaPrefix();

    public void Dispose()
    {
    }

    private sealed class StderrLogger(Func<string, bool>? drop) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var level = logLevel switch
            {
                LogLevel.Trace => "trce",
                LogLevel.Debug => "dbug",
                LogLevel.Information => "info",
                LogLevel.Warning => "warn",
                LogLevel.Error => "fail",
                _ => "crit",
            };
            var message = AkkaPrefix().Replace(formatter(state, exception).ReplaceLineEndings(" ").Trim(), "");
            if (drop?.Invoke(message) == true)
            {
                return;
            }
            var cause = exception is null ? "" : $" ({exception.GetType().Name}: {exception.Message.ReplaceLineEndings(" ")})";
            Console.Error.WriteLine($"{level}: {message}{cause}");
        }
    }
}
