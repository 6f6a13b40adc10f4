using System.CommandLine;
using System.CommandLine.Invocation;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Node.Cli;

namespace CrabKv.Node;

/// <summary>
/// The <c>crabkv</c> command: <c>serve</c> runs a node, the client commands talk to a running
/// node, the offline commands work on a stopped node's directory (<see cref="Cli.CommandLine"/>
/// has them all). Results go to stdout; progress, log and errors to stderr; exit codes are
/// <see cref="ExitCodes"/>.
/// </summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0)
        {
            args = ["demo"];
        }
        var parse = Cli.CommandLine.Build().Parse(args);
        if (parse.Errors.Count > 0 && parse.Action is ParseErrorAction)
        {
            foreach (var line in Cli.CommandLine.Describe(parse))
            {
                Console.Error.WriteLine(line);
            }
            return ExitCodes.Error;
        }
        var command = parse.CommandResult.Command is RootCommand ? "crabkv" : $"crabkv {parse.CommandResult.Command.Name}";
        try
        {
            // Signals are the commands' own business (serve runs CoordinatedShutdown on them).
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
        }
        catch (CliException e)
        {
            Console.Error.WriteLine($"{command}: {e.Message}");
            return e.ExitCode;
        }
        catch (CrabKvConfigurationException e)
        {
            Console.Error.WriteLine($"{command}: configuration: {e.Message}");
            return ExitCodes.Error;
        }
        catch (CrabKvRequestException e)
        {
            Console.Error.WriteLine($"{command}: {e.Code}: {e.Message}");
            return ExitCodes.Error;
        }
        catch (Exception e) when (e is CrabKvException or ArgumentException or IOException or UnauthorizedAccessException or TimeoutException)
        {
            Console.Error.WriteLine($"{command}: {e.Message}");
            return ExitCodes.Error;
        }
        catch (Exception e)
        {
            // Not expected: one line all the same; CRABKV_DEBUG=1 shows where it came from.
            Console.Error.WriteLine($"{command}: unexpected error: {e.GetType().Name}: {e.Message}");
            if (Environment.GetEnvironmentVariable("CRABKV_DEBUG") == "1")
            {
                Console.Error.WriteLine(e);
            }
            return ExitCodes.Error;
        }
    }
}
