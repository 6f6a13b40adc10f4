using System.Globalization;

namespace CrabKv.Node.Cli;

/// <summary>A <c>HOST:PORT</c> pair of the command line (<c>--node</c>, <c>--seed</c>).</summary>
/// <param name="Host">Host name or IP address.</param>
/// <param name="Port">TCP port.</param>
public sealed record HostPort(string Host, int Port)
{
    /// <summary>The port a node listens on when neither <c>--port</c> nor the configuration says otherwise.</summary>
    public const int DefaultPort = 7420;

    /// <summary>Where client commands look for a node by default.</summary>
    public static readonly HostPort DefaultNode = new("127.0.0.1", DefaultPort);

    /// <summary>Parses <c>HOST:PORT</c> (IPv6 as <c>[::1]:7420</c>); null with <paramref name="error"/> when malformed.</summary>
    public static HostPort? TryParse(string text, out string? error)
    {
        error = null;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
        {
            error = $"'{text}' is not HOST:PORT (example: 127.0.0.1:{DefaultPort})";
            return null;
        }
        var host = text[..colon].Trim('[', ']');
        if (!int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            error = $"'{text}' has no valid port (1 .. 65535)";
            return null;
        }
        return new HostPort(host, port);
    }

    /// <summary>The Akka address of a <c>crabkv</c> node listening here.</summary>
    public string AkkaAddress => $"akka.tcp://{NodeNames.SystemName}@{(Host.Contains(':') ? $"[{Host}]" : Host)}:{Port}";

    /// <inheritdoc />
    public override string ToString() => $"{(Host.Contains(':') ? $"[{Host}]" : Host)}:{Port}";
}

/// <summary>Fixed names of a crabkv node on the network.</summary>
public static class NodeNames
{
    /// <summary>The actor system name of every node (part of its Akka address).</summary>
    public const string SystemName = "crabkv";

    /// <summary>The store endpoint's name under <c>/user</c>.</summary>
    public const string EndpointName = "crabkv";

    /// <summary>The actor system name of a client command.</summary>
    public const string ClientSystemName = "crabkv-client";
}
