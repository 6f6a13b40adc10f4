using System.Text;
using CrabKv.Actors;
using CrabKv.Storage.Files;

namespace CrabKv.Cluster.Handoff;

/// <summary>
/// Internal. The stable identity of a kv node, kept in its data directory as <c>NODE-ID</c>
/// (a GUID in "N" format and a newline): Akka addresses change across restarts (port 0, new
/// hosts), the data directory does not. Written once, on the first start, durably
/// (<c>NODE-ID.tmp</c>, fsync, rename, fsync of the directory), through the <see cref="FileLayer"/>.
/// Also answers which partitions hold data locally: a partition directory with at least one
/// <c>seg-*.data</c> (an empty <c>p-NNN</c>, which <see cref="DataDirectory.Open"/> recreates
/// for every missing partition, is not "the data").
/// </summary>
internal static class NodeIdentity
{
    public const string FileName = "NODE-ID";

    /// <summary>Reads <c>NODE-ID</c> of <paramref name="dataDir"/>, creating it on the first start.</summary>
    /// <exception cref="CrabKvConfigurationException">The file exists but is not a node id.</exception>
    public static string LoadOrCreate(string dataDir, FileLayer files)
    {
        var path = Path.Combine(dataDir, FileName);
        if (files.FileExists(path))
        {
            var text = File.ReadAllText(path).Trim();
            if (!Guid.TryParseExact(text, "N", out _))
            {
                throw new CrabKvConfigurationException("data-dir", $"'{path}' does not hold a node id ('{text}'); restore it or delete it to give the node a new identity (its partitions would then count as another node's)");
            }
            return text;
        }
        var id = Guid.NewGuid().ToString("N");
        var tmp = path + ".tmp";
        var bytes = Encoding.ASCII.GetBytes(id + "\n");
        using (var handle = files.Open(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            files.Write(handle, bytes, 0);
            files.SyncData(handle);
        }
        files.Move(tmp, path, overwrite: true);
        files.SyncDirectory(dataDir);
        return id;
    }

    /// <summary>Whether partition directory <paramref name="partitionDir"/> holds data (at least one segment).</summary>
    public static bool HasData(string partitionDir, FileLayer files) =>
        files.DirectoryExists(partitionDir) && files.EnumerateFiles(partitionDir, "seg-*.data").Any();
}
