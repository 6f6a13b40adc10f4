using System.Globalization;
using System.Text;
using Akka.DistributedData;
using CrabKv.Storage.Files;

namespace CrabKv.Cluster.Handoff;

/// <summary>
/// Internal. A kv node's durable copy of the partition entries of the holder registry, kept in its
/// data directory as <c>HOLDERS</c>. The registry lives in DistributedData memory only (its durable
/// store is off: see the reference configuration), so a restart of the whole cluster would forget
/// who holds what; a node whose partition has no registry entry would then claim it empty and the
/// holder's copy, arriving later, would count as stale. With this copy a restarted node knows the
/// last holders it saw: it seeds them into the new registry when it announces itself, and a
/// partition entity that finds no entry in the live registry consults it before claiming anything.
/// <code>
///   crabkv-holders 1
///   p &lt;partition&gt; &lt;node id&gt; &lt;epoch&gt;
///   ...
/// </code>
/// Written atomically (<c>HOLDERS.tmp</c>, fsync, rename, fsync of the directory) whenever the
/// partition entries of the local replica change. A missing or unreadable file is an empty copy
/// (the live registry still rules; an unreadable one is reported).
/// </summary>
internal static class RegistryCopy
{
    public const string FileName = "HOLDERS";
    private const string Header = "crabkv-holders 1";

    /// <summary>The partition entries of <paramref name="map"/>.</summary>
    public static IReadOnlyDictionary<int, Holder> Of(LWWDictionary<string, string>? map, int partitions)
    {
        var holders = new Dictionary<int, Holder>();
        for (var p = 0; p < partitions; p++)
        {
            if (HolderRegistry.HolderOf(map, p) is { } h)
            {
                holders[p] = h;
            }
        }
        return holders;
    }

    /// <summary>Reads the copy of <paramref name="dataDir"/>; empty when there is none.</summary>
    /// <exception cref="InvalidDataException">The file exists but is not a holder copy; the message names the line.</exception>
    public static IReadOnlyDictionary<int, Holder> Load(string dataDir, FileLayer files)
    {
        var path = Path.Combine(dataDir, FileName);
        var holders = new Dictionary<int, Holder>();
        if (!files.FileExists(path))
        {
            return holders;
        }
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0 || lines[0] != Header)
        {
            throw new InvalidDataException($"'{path}' does not start with '{Header}'");
        }
        for (var i = 1; i < lines.Length; i++)
        {
            var parts = lines[i].Split(' ');
            if (parts.Length != 4 || parts[0] != "p"
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var partition)
                || !long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var epoch) || parts[2].Length == 0)
            {
                throw new InvalidDataException($"'{path}' line {i + 1} is not 'p <partition> <node id> <epoch>': '{lines[i]}'");
            }
            holders[partition] = new Holder(parts[2], epoch);
        }
        return holders;
    }

    /// <summary>Writes <paramref name="holders"/> as the copy of <paramref name="dataDir"/>, atomically and durably.</summary>
    public static void Save(string dataDir, FileLayer files, IReadOnlyDictionary<int, Holder> holders)
    {
        var text = new StringBuilder(Header).Append('\n');
        foreach (var (partition, holder) in holders.OrderBy(kv => kv.Key))
        {
            text.Append("p ").Append(partition.ToString(CultureInfo.InvariantCulture)).Append(' ')
                .Append(holder.NodeId).Append(' ').Append(holder.Epoch.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        var path = Path.Combine(dataDir, FileName);
        var tmp = path + ".tmp";
        using (var handle = files.Open(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            files.Write(handle, Encoding.ASCII.GetBytes(text.ToString()), 0);
            files.SyncData(handle);
        }
        files.Move(tmp, path, overwrite: true);
        files.SyncDirectory(dataDir);
    }

    /// <summary>Whether two sets of holders are the same.</summary>
    public static bool SameAs(IReadOnlyDictionary<int, Holder> a, IReadOnlyDictionary<int, Holder> b) =>
        a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var h) && h == kv.Value);
}
