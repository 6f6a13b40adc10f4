namespace CrabKv.Node.Cli;

/// <summary>The exit codes of every <c>crabkv</c> command (documented in <c>--help</c> and the README).</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;

    /// <summary>The key was not found (get, del), or verify found damage.</summary>
    public const int NotFound = 1;

    /// <summary>Usage, configuration or store error (bad arguments, a locked or missing data directory, a refused request).</summary>
    public const int Error = 2;

    /// <summary>No node answers at the address given (client commands), or it stopped answering.</summary>
    public const int Unreachable = 3;

    /// <summary>The text appended to every <c>--help</c>.</summary>
    public const string HelpText = """
        Exit codes:
          0  ok
          1  not found (get, del), or damage found (verify)
          2  usage, configuration or store error
          3  node unreachable (no crabkv node answers at --node, or it stopped answering)
        """;
}

/// <summary>
/// A failure a command reports as one line on stderr (<c>crabkv CMD: message</c>) with its exit
/// code; never a stack trace.
/// </summary>
public sealed class CliException(int exitCode, string message) : Exception(message)
{
    /// <summary>The process exit code (<see cref="ExitCodes"/>).</summary>
    public int ExitCode { get; } = exitCode;
}
