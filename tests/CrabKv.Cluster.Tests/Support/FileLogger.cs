using Akka.Actor;
using Akka.Event;

namespace CrabKv.Cluster.Tests.Support;

/// <summary>
/// An Akka logger that appends every event to the file named by the environment variable
/// <c>CRABKV_TEST_AKKA_LOG</c>, for diagnosing a cluster test that fails only in a full run (the
/// test host's console is not kept). Off unless the variable is set (see <see cref="ClusterFixture.NodeConfig"/>).
/// </summary>
public sealed class FileLogger : ReceiveActor
{
    public const string Variable = "CRABKV_TEST_AKKA_LOG";

    private static readonly object Gate = new();

    public FileLogger()
    {
        var path = Environment.GetEnvironmentVariable(Variable);
        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        Receive<LogEvent>(e =>
        {
            if (string.IsNullOrEmpty(path))
            {
                return;
            }
            var line = $"{e.Timestamp:HH:mm:ss.fff} {e.LogLevel().ToString().Replace("Level", "", StringComparison.Ordinal).ToUpperInvariant()} {Port()} [{e.LogSource}] {e.Message}{(e.Cause is null ? "" : " :: " + e.Cause.GetType().Name + ": " + e.Cause.Message)}\n";
            lock (Gate)
            {
                File.AppendAllText(path, line);
            }
        });
    }

    /// <summary>This system's port (which node logged), once remoting has started; never the cluster extension (not yet there while the system starts).</summary>
    private string Port()
    {
        try
        {
            return ((ExtendedActorSystem)Context.System).Provider.DefaultAddress?.Port?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?";
        }
        catch (Exception)
        {
            return "?";
        }
    }

    /// <summary>The HOCON that turns it on at INFO when the variable is set; empty otherwise.</summary>
    public static string Hocon => string.IsNullOrEmpty(Environment.GetEnvironmentVariable(Variable))
        ? ""
        : "akka.loglevel = INFO\nakka.loggers = [\"CrabKv.Cluster.Tests.Support.FileLogger, CrabKv.Cluster.Tests\"]";
}
