using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using CrabKv.Node.Commands;
using CrabKv.Node.Hosting;

namespace CrabKv.Node.Cli;

/// <summary>
/// The command tree of <c>crabkv</c> (System.CommandLine): every command, argument and option,
/// their help texts and their value checks. Each option's parser names the option in its error
/// ("--ttl: 0 is not a positive duration").
/// </summary>
public static class CommandLine
{
    /// <summary>Builds the root command.</summary>
    public static RootCommand Build()
    {
        var root = new RootCommand("""
            crabkv — a CrabKv.Actors storage node and its client.
            `crabkv serve` runs a node (a one-node Akka cluster unless --seed joins others) on 127.0.0.1:7420;
            put/get/del/load/flush/compact/stats talk to a running node over Akka remoting (--node HOST:PORT);
            verify/repair work offline on a stopped node's data directory; demo (also `crabkv` alone) runs the main job in-process.
            """);
        root.Add(ServeCommand());
        root.Add(PutCommand());
        root.Add(GetCommand());
        root.Add(DeleteCommand());
        root.Add(LoadCommand());
        root.Add(SimpleClientCommand("flush", "Write every buffered (write-back) entry and fsync every partition.", ClientCommands.FlushAsync));
        root.Add(SimpleClientCommand("compact", "Compact every partition now (progress on stderr).", ClientCommands.CompactAsync));
        root.Add(StatsCommand());
        root.Add(OfflineCommand("verify", "Check every record of every partition of a stopped node's data directory; changes nothing. Exit 1 when damage is found.", repair: false));
        root.Add(OfflineCommand("repair", "Rewrite the damaged segments of a stopped node's data directory, keeping every intact record.", repair: true));
        root.Add(DemoCommand());
        var help = root.Options.OfType<HelpOption>().Single();
        help.Action = new HelpWithExitCodes((HelpAction)help.Action!);
        return root;
    }

    private static Command ServeCommand()
    {
        var config = ConfigOption();
        var dataDir = DataDirOption("data directory (default ./crabkv-data, created if missing)");
        var port = new Option<int?>("--port")
        {
            Description = $"TCP port to listen on (default {HostPort.DefaultPort}; 0 = any free port)",
            HelpName = "PORT",
            CustomParser = r => ParsePort(r),
        };
        var host = new Option<string?>("--host")
        {
            Description = "address to listen on (default 127.0.0.1: loopback only). 0.0.0.0 listens on every interface and advertises this machine's host name (see --public-host)",
            HelpName = "ADDRESS",
        };
        var publicHost = new Option<string?>("--public-host")
        {
            Description = "the host name other nodes and clients use to reach this node (default: --host, or the machine's name with --host 0.0.0.0)",
            HelpName = "NAME",
        };
        var seed = new Option<HostPort[]>("--seed")
        {
            Description = "a node of the cluster to join (repeatable; no seed: the node forms a cluster of its own)",
            HelpName = "HOST:PORT",
            Arity = ArgumentArity.ZeroOrMore,
            CustomParser = r => r.Tokens.Select(t => ParseHostPort(r, "--seed", t.Value)).OfType<HostPort>().ToArray(),
        };
        var command = new Command("serve", """
            Run a node until Ctrl-C or SIGTERM. It prints its address, data dir and partitions, then a line starting with
            "crabkv node ready" once it serves. A stop leaves the cluster: partitions are handed off to the remaining nodes
            through their graceful stop (write-back flushed, fsynced, sealed). A data directory in use by another process is refused.
            """) { config, dataDir, port, host, publicHost, seed };
        command.SetAction(r => Serve.RunAsync(new ServeOptions
        {
            ConfigFile = r.GetValue(config),
            DataDir = r.GetValue(dataDir),
            Port = r.GetValue(port),
            Host = r.GetValue(host),
            PublicHost = r.GetValue(publicHost),
            Seeds = r.GetValue(seed) ?? [],
        }));
        return command;
    }

    private static Command PutCommand()
    {
        var key = new Argument<string>("KEY") { Description = "the key (UTF-8)" };
        var value = new Argument<string?>("VALUE") { Description = "the value (stored as its UTF-8 bytes); or --in FILE", Arity = ArgumentArity.ZeroOrOne };
        var input = new Option<string?>("--in")
        {
            Description = "read the value from FILE, exactly its bytes (any bytes, not only text; '-' reads standard input)",
            HelpName = "FILE",
        };
        var ttl = new Option<TimeSpan?>("--ttl")
        {
            Description = "time to live: 500ms, 30s, 5m, 1h, 2d (default: no expiry)",
            HelpName = "DURATION",
            CustomParser = r => ParseDuration(r, "--ttl"),
        };
        var (node, timeout) = ClientOptions();
        var command = new Command("put", "Write a value, given as VALUE or read from --in FILE. Prints OK once the node has acknowledged it.") { key, value, input, ttl, node, timeout };
        command.Validators.Add(c =>
        {
            var hasValue = c.GetResult(value) is { Tokens.Count: > 0 };
            var hasInput = c.GetResult(input) is not null;
            if (c.GetResult(key) is not { Tokens.Count: > 0 })
            {
                c.AddError("missing KEY");
            }
            else if (hasValue == hasInput)
            {
                c.AddError(hasValue ? "give VALUE or --in FILE, not both" : "missing VALUE (or --in FILE)");
            }
        });
        command.SetAction(r => ClientCommands.PutAsync(Client(r, node, timeout), r.GetValue(key)!,
            r.GetValue(input) is { } file ? ClientCommands.ReadValue(file) : System.Text.Encoding.UTF8.GetBytes(r.GetValue(value)!), r.GetValue(ttl)));
        return command;
    }

    private static Command GetCommand()
    {
        var key = new Argument<string>("KEY") { Description = "the key" };
        var output = new Option<string?>("--out")
        {
            Description = "write the value to FILE instead of stdout",
            HelpName = "FILE",
        };
        var (node, timeout) = ClientOptions();
        var command = new Command("get", "Read a value: exactly its bytes on stdout (no newline added), or in --out FILE. Exit 1 when the key is absent.") { key, output, node, timeout };
        command.SetAction(r => ClientCommands.GetAsync(Client(r, node, timeout), r.GetValue(key)!, r.GetValue(output)));
        return command;
    }

    private static Command DeleteCommand()
    {
        var key = new Argument<string>("KEY") { Description = "the key" };
        var (node, timeout) = ClientOptions();
        var command = new Command("del", "Delete a key. Prints \"deleted\"; exit 1 when it did not exist.") { key, node, timeout };
        command.Aliases.Add("delete");
        command.SetAction(r => ClientCommands.DeleteAsync(Client(r, node, timeout), r.GetValue(key)!));
        return command;
    }

    private static Command LoadCommand()
    {
        var file = new Argument<string>("FILE") { Description = "one KEY<TAB>VALUE per line (UTF-8; the value is everything after the first TAB; empty lines skipped)" };
        var (node, timeout) = ClientOptions();
        var command = new Command("load", """
            Write every line of FILE. The file is checked first: a malformed line is reported with its number and nothing is
            sent. Lines are grouped by partition and sent as atomic batches (512 entries or 4 MiB at most, 8 partitions at once).
            Exit 0 only when every line is acknowledged.
            """) { file, node, timeout };
        command.SetAction(r => Load.RunAsync(Client(r, node, timeout), r.GetValue(file)!));
        return command;
    }

    private static Command StatsCommand()
    {
        var json = new Option<bool>("--json") { Description = "plain JSON on stdout (for scripts) instead of a table" };
        var (node, timeout) = ClientOptions();
        var command = new Command("stats", "Statistics of every partition of the cluster: keys, bytes, stale bytes, operations, fsyncs, cache, compactions.") { json, node, timeout };
        command.SetAction(r => ClientCommands.StatsAsync(Client(r, node, timeout), r.GetValue(json)));
        return command;
    }

    private static Command SimpleClientCommand(string name, string description, Func<Commands.ClientOptions, Task<int>> run)
    {
        var (node, timeout) = ClientOptions();
        var command = new Command(name, description) { node, timeout };
        command.SetAction(r => run(Client(r, node, timeout)));
        return command;
    }

    private static Command OfflineCommand(string name, string description, bool repair)
    {
        var config = ConfigOption();
        var dataDir = DataDirOption("data directory of the stopped node (default ./crabkv-data; must exist)");
        var command = new Command(name, description) { dataDir, config };
        command.SetAction(r => Offline.RunAsync(r.GetValue(config), r.GetValue(dataDir), repair));
        return command;
    }

    private static Command DemoCommand()
    {
        var config = ConfigOption();
        var dataDir = DataDirOption("data directory of the demo (default ./crabkv-demo, created if missing); a directory with data the demo did not write is refused");
        var keys = new Option<int?>("--keys")
        {
            Description = "number of keys (default 200000)",
            HelpName = "N",
            CustomParser = r =>
            {
                var token = r.Tokens.Single().Value;
                if (int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0)
                {
                    return n;
                }
                r.AddError($"--keys: '{token}' is not a positive number");
                return 0;
            },
        };
        var command = new Command("demo", "The main job, in this process: 64 writers put N keys, read them, delete half, compact, print stats, stop gracefully.") { config, dataDir, keys };
        command.SetAction(r => Demo.RunAsync(r.GetValue(config), r.GetValue(dataDir), r.GetValue(keys) ?? 200_000));
        return command;
    }

    private static Option<string?> ConfigOption() => new("--config")
    {
        Description = "HOCON file layered over the reference configuration, e.g. hocon/balanced.conf, hocon/max-safety.conf, hocon/cluster-node-1.conf",
        HelpName = "FILE",
    };

    private static Option<string?> DataDirOption(string description) => new("--data-dir")
    {
        Description = description,
        HelpName = "DIR",
    };

    // The defaults are applied after parsing, not with DefaultValueFactory: the help then shows
    // them once, as written here ("default 10s"), not also as "[default: 00:00:10]".
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private static (Option<HostPort?> Node, Option<TimeSpan?> Timeout) ClientOptions() =>
    (
        new Option<HostPort?>("--node")
        {
            Description = $"the node to talk to (default {HostPort.DefaultNode})",
            HelpName = "HOST:PORT",
            CustomParser = r => ParseHostPort(r, "--node", r.Tokens.Single().Value),
        },
        new Option<TimeSpan?>("--timeout")
        {
            Description = "how long to wait for the node and for each answer (default 10s)",
            HelpName = "DURATION",
            CustomParser = r => ParseDuration(r, "--timeout") ?? TimeSpan.Zero,
        }
    );

    private static Commands.ClientOptions Client(ParseResult r, Option<HostPort?> node, Option<TimeSpan?> timeout) =>
        new(r.GetValue(node) ?? HostPort.DefaultNode, r.GetValue(timeout) ?? DefaultTimeout);

    /// <summary>
    /// The longest --ttl (100 years: longer is "no expiry" in all but name) and --timeout (a
    /// .NET timer's limit, about 24.8 days: longer timeouts made requests fail at once).
    /// </summary>
    private static (TimeSpan Max, string Text) LongestDuration(string option) =>
        option == "--timeout" ? (TimeSpan.FromDays(24), "24d") : (TimeSpan.FromDays(36_500), "36500d (100 years; leave --ttl out for no expiry)");

    private static TimeSpan? ParseDuration(ArgumentResult r, string option)
    {
        var token = r.Tokens.Single().Value;
        var (max, maxText) = LongestDuration(option);
        var value = Durations.TryParse(token, out var error, max, maxText);
        if (value is null)
        {
            r.AddError($"{option}: {error}");
        }
        return value;
    }

    private static HostPort? ParseHostPort(ArgumentResult r, string option, string token)
    {
        var value = HostPort.TryParse(token, out var error);
        if (value is null)
        {
            r.AddError($"{option}: {error}");
        }
        return value;
    }

    private static int? ParsePort(ArgumentResult r)
    {
        var token = r.Tokens.Single().Value;
        if (int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port <= 65535)
        {
            return port;
        }
        r.AddError($"--port: '{token}' is not a port (0 .. 65535)");
        return null;
    }

    /// <summary>
    /// One line per parse error, naming what is wrong ("get: missing KEY", "unknown option
    /// '--bogus'") instead of System.CommandLine's wording and the whole usage text.
    /// </summary>
    public static IEnumerable<string> Describe(ParseResult result)
    {
        var command = result.CommandResult.Command;
        var prefix = command is RootCommand ? "crabkv" : $"crabkv {command.Name}";
        // "Required command was not provided" only repeats what an unknown command says.
        var errors = result.Errors.Count > 1
            ? result.Errors.Where(e => !e.Message.StartsWith("Required command", StringComparison.Ordinal))
            : result.Errors;
        foreach (var error in errors)
        {
            yield return $"{prefix}: {Describe(error, command)}";
        }
        yield return $"Run 'crabkv{(command is RootCommand ? "" : " " + command.Name)} --help' for usage.";
    }

    private static string Describe(ParseError error, Command command)
    {
        var message = error.Message;
        if (message.StartsWith("Required argument missing", StringComparison.Ordinal))
        {
            switch (error.SymbolResult)
            {
                case OptionResult option:
                    return $"{option.Option.Name}: missing value";
                case ArgumentResult argument:
                    return $"missing {argument.Argument.Name}";
                case CommandResult c:
                    var missing = c.Command.Arguments.FirstOrDefault(a => c.GetResult(a) is not { } ar || ar.Tokens.Count == 0);
                    if (missing is not null)
                    {
                        return $"missing {missing.Name}";
                    }
                    break;
            }
        }
        if (message.StartsWith("Unrecognized command or argument", StringComparison.Ordinal))
        {
            var start = message.IndexOf('\'');
            var end = message.LastIndexOf('\'');
            var token = start >= 0 && end > start ? message[(start + 1)..end] : message;
            return token.StartsWith('-') ? $"unknown option '{token}'"
                : command is RootCommand ? $"unknown command '{token}'"
                : $"unexpected argument '{token}'";
        }
        return message;
    }

    /// <summary>The default help, then the exit codes.</summary>
    private sealed class HelpWithExitCodes(HelpAction inner) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            inner.Invoke(parseResult);
            parseResult.InvocationConfiguration.Output.WriteLine(ExitCodes.HelpText);
            return 0;
        }
    }
}
