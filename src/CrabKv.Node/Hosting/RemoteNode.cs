using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors;
using CrabKv.Actors.Client;
using CrabKv.Node.Cli;
using Microsoft.Extensions.Logging;

namespace CrabKv.Node.Hosting;

/// <summary>
/// A client command's connection to a running node: a small actor system (provider remote,
/// port from the OS, the CrabKv serializers bound, frames up to 32 MiB so 16 MiB values pass)
/// that resolves <c>akka.tcp://crabkv@HOST:PORT/user/crabkv</c> and talks to it through
/// <see cref="CrabKvClient"/>. Its log goes to stderr at warning level.
/// </summary>
public sealed class RemoteNode : IAsyncDisposable
{
    private RemoteNode(ActorSystem system, IActorRef endpoint, HostPort address, TimeSpan timeout)
    {
        System = system;
        Endpoint = endpoint;
        Address = address;
        Client = new CrabKvClient(endpoint, timeout);
        Timeout = timeout;
    }

    /// <summary>The client's actor system.</summary>
    public ActorSystem System { get; }

    /// <summary>The node's store endpoint.</summary>
    public IActorRef Endpoint { get; }

    /// <summary>Where the node is.</summary>
    public HostPort Address { get; }

    /// <summary>The typed client on the endpoint.</summary>
    public CrabKvClient Client { get; }

    /// <summary>Timeout of each request.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>Connects; a <see cref="CliException"/> with <see cref="ExitCodes.Unreachable"/> when no node answers within <paramref name="timeout"/>.</summary>
    public static async Task<RemoteNode> ConnectAsync(HostPort node, TimeSpan timeout)
    {
        var config = ConfigurationFactory.ParseString($"""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp.hostname = {NodeConfig.Quote(LocalAddressToward(node.Host))}
            akka.remote.dot-netty.tcp.port = 0
            akka.remote.log-remote-lifecycle-events = off
            akka.log-dead-letters = off
            akka.log-dead-letters-during-shutdown = off
            akka.coordinated-shutdown.exit-clr = off
            akka.coordinated-shutdown.run-by-clr-shutdown = off
            # A command ends once its answers are in: nothing is left to flush to a node that froze
            # or died (Akka's 2 s default made --timeout overshoot by that much).
            akka.remote.flush-wait-on-shutdown = 100ms
            """).WithFallback(CrabKvSettings.DefaultConfig()); // serializer bindings, maximum-frame-size
        // Failures to connect are reported once, by the command itself (exit code 3).
        var system = StderrLogging.CreateSystem(NodeNames.ClientSystemName, config, LogLevel.Warning,
            drop: m => m.Contains("associate", StringComparison.OrdinalIgnoreCase) || m.Contains("Association", StringComparison.Ordinal)
                       || m.Contains("Unable to REMOVE channel", StringComparison.Ordinal) // DotNetty at the client's own shutdown: harmless
                       || m.Contains("flush-wait-on-shutdown", StringComparison.Ordinal) // every answer is in when a command stops
                       || m.Contains("TooLongFrameException", StringComparison.Ordinal) // not a crabkv node on that port: exit 3 says so
                       || m.Contains("CorruptedFrameException", StringComparison.Ordinal));
        var path = $"{node.AkkaAddress}/user/{NodeNames.EndpointName}";
        try
        {
            var endpoint = await system.ActorSelection(path).ResolveOne(timeout);
            return new RemoteNode(system, endpoint, node, timeout);
        }
        catch (Exception e) when (e is ActorNotFoundException or TimeoutException or AskTimeoutException or TaskCanceledException)
        {
            await system.Terminate();
            // Akka delivers only to the exact address a node advertises: a node serving at
            // 127.0.0.1 drops what is sent to localhost, as if nothing listened there.
            var byName = global::System.Net.IPAddress.TryParse(node.Host, out _)
                ? ""
                : $"; a node answers only at the address it advertises (its first line: crabkv node akka.tcp://crabkv@HOST:PORT){(node.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ? ", 127.0.0.1 by default, not localhost" : "")}";
            throw new CliException(ExitCodes.Unreachable, $"no crabkv node answers at {node} (is `crabkv serve` running there? --node HOST:PORT, --timeout {Durations.Format(timeout)}){byName}");
        }
    }

    /// <summary>
    /// The local address the node can answer to: loopback for a node on loopback, otherwise the
    /// address of the interface that routes to it (the client listens there, on a port from the OS).
    /// </summary>
    private static string LocalAddressToward(string host)
    {
        if (host is "localhost" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip)))
        {
            return "127.0.0.1";
        }
        try
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            probe.Connect(host, 9); // UDP: no packet is sent, only a route chosen
            return ((IPEndPoint)probe.LocalEndPoint!).Address.ToString();
        }
        catch (SocketException)
        {
            return "127.0.0.1";
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync() => await System.Terminate();
}
