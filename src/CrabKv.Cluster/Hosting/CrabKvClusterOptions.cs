using System.Globalization;
using System.Text;

namespace CrabKv.Cluster.Hosting;

/// <summary>
/// <c>crabkv.cluster</c> settings from code, for Akka.Hosting. Every property is optional: only
/// the ones set are emitted as HOCON (<see cref="ToHocon"/>), on top of user HOCON and the
/// reference defaults (hocon/crabkv.cluster.reference.conf).
/// </summary>
public sealed class CrabKvClusterOptions
{
    /// <summary>crabkv.cluster.partitions (the same on every node)</summary>
    public int? Partitions { get; set; }
    /// <summary>crabkv.cluster.role (nodes with it host partitions)</summary>
    public string? Role { get; set; }
    /// <summary>crabkv.cluster.type-name</summary>
    public string? TypeName { get; set; }
    /// <summary>crabkv.cluster.ensure-partitions-interval (zero = only when the node is Up)</summary>
    public TimeSpan? EnsurePartitionsInterval { get; set; }
    /// <summary>crabkv.cluster.rebalance</summary>
    public bool? Rebalance { get; set; }
    /// <summary>crabkv.cluster.fan-out-timeout</summary>
    public TimeSpan? FanOutTimeout { get; set; }
    /// <summary>crabkv.cluster.max-waiting-requests</summary>
    public int? MaxWaitingRequests { get; set; }

    /// <summary>crabkv.cluster.max-simultaneous-moves</summary>
    public int? MaxSimultaneousMoves { get; set; }
    /// <summary>crabkv.cluster.handoff-retry-interval</summary>
    public TimeSpan? HandoffRetryInterval { get; set; }
    /// <summary>crabkv.cluster.registry-timeout</summary>
    public TimeSpan? RegistryTimeout { get; set; }
    /// <summary>crabkv.cluster.leave-drain-timeout</summary>
    public TimeSpan? LeaveDrainTimeout { get; set; }

    /// <summary>The HOCON of the properties that are set, under <c>crabkv.cluster</c>.</summary>
    public string ToHocon()
    {
        var sb = new StringBuilder();
        void Add(string key, object? value)
        {
            if (value is null)
            {
                return;
            }
            var text = value switch
            {
                string s => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"",
                bool b => b ? "on" : "off",
                TimeSpan t => (t.Ticks / TimeSpan.TicksPerMillisecond).ToString(CultureInfo.InvariantCulture) + "ms",
                IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
                _ => value.ToString(),
            };
            sb.Append("crabkv.cluster.").Append(key).Append(" = ").Append(text).Append('\n');
        }
        Add("partitions", Partitions);
        Add("role", Role);
        Add("type-name", TypeName);
        Add("ensure-partitions-interval", EnsurePartitionsInterval);
        Add("rebalance", Rebalance);
        Add("fan-out-timeout", FanOutTimeout);
        Add("max-waiting-requests", MaxWaitingRequests);
        Add("max-simultaneous-moves", MaxSimultaneousMoves);
        Add("handoff-retry-interval", HandoffRetryInterval);
        Add("registry-timeout", RegistryTimeout);
        Add("leave-drain-timeout", LeaveDrainTimeout);
        return sb.ToString();
    }

    /// <inheritdoc/>
    public override string ToString() => ToHocon();
}
