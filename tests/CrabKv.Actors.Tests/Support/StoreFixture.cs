using Akka.Actor;
using Akka.Configuration;
using CrabKv.Actors.Client;

namespace CrabKv.Actors.Tests.Support;

/// <summary>A temp data directory and HOCON for a store under test; deletes the directory on dispose.</summary>
public sealed class TempDataDir : IDisposable
{
    public TempDataDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "crabkv-actors-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    /// <summary>HOCON for a store in this directory, plus <paramref name="extra"/> (crabkv.* keys).</summary>
    public Config Config(string extra = "") => ConfigurationFactory.ParseString(
        $"crabkv.data-dir = \"{Path.Replace("\\", "\\\\")}\"\ncrabkv.partitions = 1\n{extra}").WithFallback(CrabKvSettings.DefaultConfig());

    public CrabKvSettings Settings(string extra = "") => CrabKvSettings.Create(Config(extra));

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A store still closing; the OS temp cleaner takes it.
        }
    }
}
