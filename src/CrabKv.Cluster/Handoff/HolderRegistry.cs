using System.Globalization;
using Akka.Actor;
using Akka.Cluster;
using Akka.DistributedData;

namespace CrabKv.Cluster.Handoff;

/// <summary>Internal. Who holds a partition's data: the node's stable id (NODE-ID) and the epoch of that holding (1 for the first holder, +1 per move).</summary>
internal readonly record struct Holder(string NodeId, long Epoch);

/// <summary>
/// Internal. The cluster-wide record of where each partition's data lives, one Akka.DistributedData
/// <c>LWWDictionary&lt;string, string&gt;</c> under the key <c>crabkv-holders</c> (plain strings, so
/// DData carries them with Akka's primitive serializer; no custom value type on the wire):
/// <code>
///   "p/&lt;partition&gt;"  →  "&lt;node id&gt; &lt;epoch&gt;"      the holder of a partition; LWW clock = epoch
///   "n/&lt;node id&gt;"     →  "&lt;akka address&gt;"          the current address of a node id (rewritten at each start)
/// </code>
/// A partition's entry is written with the epoch as its LWW timestamp, so a higher epoch always
/// wins a merge. Writes that decide ownership use WriteMajority, reads that decide it ReadMajority.
/// </summary>
internal static class HolderRegistry
{
    public static readonly LWWDictionaryKey<string, string> Key = new("crabkv-holders");

    public static string PartitionEntry(int partition) => "p/" + partition.ToString(CultureInfo.InvariantCulture);

    public static string NodeEntry(string nodeId) => "n/" + nodeId;

    public static string Encode(Holder h) => h.NodeId + " " + h.Epoch.ToString(CultureInfo.InvariantCulture);

    public static Holder? HolderOf(LWWDictionary<string, string>? map, int partition)
    {
        if (map is null || !map.TryGetValue(PartitionEntry(partition), out var text))
        {
            return null;
        }
        var space = text.IndexOf(' ', StringComparison.Ordinal);
        return space > 0 && long.TryParse(text.AsSpan(space + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var epoch)
            ? new Holder(text[..space], epoch)
            : null;
    }

    public static Address? AddressOf(LWWDictionary<string, string>? map, string nodeId) =>
        map is not null && map.TryGetValue(NodeEntry(nodeId), out var text) && Address.TryParse(text, out var address) ? address : null;

    /// <summary>Records <paramref name="holder"/> for <paramref name="partition"/> (the epoch is the LWW timestamp).</summary>
    public static LWWDictionary<string, string> SetHolder(LWWDictionary<string, string> map, UniqueAddress self, int partition, Holder holder) =>
        map.SetItem(self, PartitionEntry(partition), Encode(holder), (_, _) => holder.Epoch);

    /// <summary>Records the current address of <paramref name="nodeId"/>.</summary>
    public static LWWDictionary<string, string> SetAddress(LWWDictionary<string, string> map, UniqueAddress self, string nodeId, Address address) =>
        map.SetItem(self, NodeEntry(nodeId), address.ToString());

    /// <summary>The partitions whose recorded holder is <paramref name="nodeId"/>.</summary>
    public static IEnumerable<int> HeldBy(LWWDictionary<string, string>? map, string nodeId, int partitions) =>
        Enumerable.Range(0, partitions).Where(p => HolderOf(map, p)?.NodeId == nodeId);

    /// <summary>Whether <paramref name="address"/> is a member that can serve a transfer now (a member, not unreachable, not down).</summary>
    public static bool IsReachable(Akka.Cluster.Cluster cluster, Address address)
    {
        var state = cluster.State;
        var member = state.Members.FirstOrDefault(m => m.Address.Equals(address));
        return member is not null
               && member.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Leaving or MemberStatus.Exiting or MemberStatus.Joining
               && !state.Unreachable.Any(u => u.Address.Equals(address));
    }
}
