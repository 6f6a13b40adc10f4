using System.Net;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Cluster;
using CrabKv.Node.Cli;

namespace CrabKv.Node.Hosting;

/// <summary>What the command line says about a node (<c>serve</c>): each null leaves the configuration's value.</summary>
public sealed record ServeOptions
{
    /// <summary>HOCON file layered over the reference configuration.</summary>
    public string? ConfigFile { get; init; }

    /// <summary>Data directory (<c>crabkv.data-dir</c>).</summary>
    public string? DataDir { get; init; }

    /// <summary>Listening port (<c>akka.remote.dot-netty.tcp.port</c>).</summary>
    public int? Port { get; init; }

    /// <summary>Listening address (<c>akka.remote.dot-netty.tcp.hostname</c>).</summary>
    public string? Host { get; init; }

    /// <summary>The name other nodes and clients use to reach this one (<c>public-hostname</c>).</summary>
    public string? PublicHost { get; init; }

    /// <summary>Seed nodes (<c>akka.cluster.seed-nodes</c>); empty keeps the configuration's.</summary>
    public IReadOnlyList<HostPort> Seeds { get; init; } = [];
}

/// <summary>
/// The configuration of a node, highest priority first: the command-line options, the
/// <c>--config</c> file, this executable's node defaults (one-node Akka cluster with the role
/// <c>crabkv</c> on 127.0.0.1:7420), the CrabKv cluster and store reference configurations.
/// </summary>
public static class NodeConfig
{
    /// <summary>The node defaults of <c>crabkv serve</c>.</summary>
    public static Config NodeDefaults() => ConfigurationFactory.ParseString($"""
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = {HostPort.DefaultPort}
        akka.cluster.roles = [crabkv]
        akka.coordinated-shutdown.exit-clr = off
        """);

    /// <summary>Reads a HOCON file, naming it in every error.</summary>
    public static Config ReadFile(string path)
    {
        if (Directory.Exists(path))
        {
            throw new CliException(ExitCodes.Error, $"--config: '{path}' is a directory, not a HOCON file");
        }
        if (!File.Exists(path))
        {
            throw new CliException(ExitCodes.Error, $"--config: file '{path}' does not exist");
        }
        try
        {
            // Checks the syntax first (Akka's own parser accepts much that is not HOCON and
            // never returns on an unclosed '['): "FILE line N: HOCON syntax error: ...".
            return CrabKvConfig.LoadFile(path);
        }
        catch (CrabKvConfigurationException e)
        {
            throw new CliException(ExitCodes.Error, $"--config: {e.Message}");
        }
    }

    /// <summary>A HOCON string literal.</summary>
    public static string Quote(string s) => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    /// <summary>The full configuration of <c>crabkv serve</c>.</summary>
    public static Config ForServe(ServeOptions options)
    {
        var overrides = new List<string>();
        if (options.DataDir is not null)
        {
            overrides.Add($"crabkv.data-dir = {Quote(options.DataDir)}");
        }
        if (options.Port is { } port)
        {
            overrides.Add($"akka.remote.dot-netty.tcp.port = {port}");
        }
        if (options.Host is { } host)
        {
            overrides.Add($"akka.remote.dot-netty.tcp.hostname = {Quote(host)}");
            var listensEverywhere = IPAddress.TryParse(host, out var ip) && (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any));
            // Listening on every interface: the address others use is this machine's name,
            // never 0.0.0.0 (Akka would advertise it and no peer could answer).
            var advertised = options.PublicHost ?? (listensEverywhere ? Dns.GetHostName() : host);
            overrides.Add($"akka.remote.dot-netty.tcp.public-hostname = {Quote(advertised)}");
        }
        else if (options.PublicHost is { } publicHost)
        {
            overrides.Add($"akka.remote.dot-netty.tcp.public-hostname = {Quote(publicHost)}");
        }
        if (options.Seeds.Count > 0)
        {
            overrides.Add($"akka.cluster.seed-nodes = [{string.Join(", ", options.Seeds.Select(s => Quote(s.AkkaAddress)))}]");
        }
        var config = ConfigurationFactory.ParseString(string.Join("\n", overrides));
        if (options.ConfigFile is not null)
        {
            config = config.WithFallback(ReadFile(options.ConfigFile));
        }
        return config.WithFallback(NodeDefaults()).WithFallback(CrabKvClusterSettings.FullDefaultConfig());
    }

    /// <summary>The configuration of the offline commands and the demo: the file and <c>--data-dir</c> over the reference configurations.</summary>
    public static Config ForStore(string? configFile, string? dataDir)
    {
        var config = dataDir is null ? Config.Empty : ConfigurationFactory.ParseString($"crabkv.data-dir = {Quote(dataDir)}");
        if (configFile is not null)
        {
            config = config.WithFallback(ReadFile(configFile));
        }
        // The cluster's reference too: a node's file (crabkv.cluster.*) is valid here as well.
        return config.WithFallback(CrabKvClusterSettings.FullDefaultConfig());
    }

    /// <summary>
    /// The data directory of an existing store: an error naming the path when it does not exist
    /// or is a file (every command but <c>serve</c>; nothing is ever created here).
    /// </summary>
    public static string ExistingDataDir(string dataDir)
    {
        var root = Path.GetFullPath(dataDir);
        if (File.Exists(root))
        {
            throw new CliException(ExitCodes.Error, $"data directory '{root}' is a file, not a directory");
        }
        if (!Directory.Exists(root))
        {
            throw new CliException(ExitCodes.Error, $"data directory '{root}' does not exist (--data-dir names the directory of a node's data)");
        }
        return root;
    }
}
