using Akka.Actor;
using Akka.Configuration;
using CrabKv.Storage.Files;
using CrabKv.Storage.Transfer;

namespace CrabKv.Actors.Transfer;

/// <summary>
/// Settings of partition transfers, read from <c>crabkv.transfer</c> (and <c>crabkv.io-dispatcher</c>)
/// with the reference configuration as fallback.
/// </summary>
public sealed record TransferSettings
{
    /// <summary>Bytes per chunk (1 .. <see cref="PartitionExport.MaxChunkBytes"/>).</summary>
    public required int ChunkBytes { get; init; }

    /// <summary>Chunks requested ahead (≥ 1).</summary>
    public required int Window { get; init; }

    /// <summary>Silence after which the sink asks again for what it waits for.</summary>
    public required TimeSpan ChunkTimeout { get; init; }

    /// <summary>Consecutive re-requests without progress before the sink gives up.</summary>
    public required int MaxRetries { get; init; }

    /// <summary>Silence after which the source releases an export.</summary>
    public required TimeSpan IdleTimeout { get; init; }

    /// <summary>Dispatcher of both actors (blocking file I/O).</summary>
    public required string IoDispatcher { get; init; }

    /// <summary>The file layer (tests wrap it).</summary>
    public FileLayer Files { get; init; } = FileLayer.Default;

    /// <summary>Reads the settings of an actor system.</summary>
    public static TransferSettings Create(ActorSystem system) => Create(system.Settings.Config);

    /// <summary>Reads and validates <c>crabkv.transfer</c> of <paramref name="config"/>.</summary>
    /// <exception cref="CrabKvConfigurationException">A value is missing or out of range (names the key).</exception>
    public static TransferSettings Create(Config config)
    {
        var c = config.WithFallback(CrabKvSettings.DefaultConfig()).GetConfig("crabkv");
        T Read<T>(string key, Func<T> read)
        {
            try
            {
                return read();
            }
            catch (Exception e)
            {
                throw new CrabKvConfigurationException(key, $"has a value that cannot be read ({e.Message})");
            }
        }
        var chunk = Read("transfer.chunk-bytes", () => c.GetByteSize("transfer.chunk-bytes") ?? throw new FormatException("not a size"));
        if (chunk < 1 || chunk > PartitionExport.MaxChunkBytes)
        {
            throw new CrabKvConfigurationException("transfer.chunk-bytes", $"is {chunk} bytes; it must be between 1 and {PartitionExport.MaxChunkBytes} (half the remote frame)");
        }
        var window = Read("transfer.window", () => c.GetInt("transfer.window"));
        if (window < 1)
        {
            throw new CrabKvConfigurationException("transfer.window", $"is {window}; it must be at least 1");
        }
        var retries = Read("transfer.max-retries", () => c.GetInt("transfer.max-retries"));
        if (retries < 0)
        {
            throw new CrabKvConfigurationException("transfer.max-retries", $"is {retries}; it must not be negative");
        }
        TimeSpan Positive(string key)
        {
            var v = Read(key, () => c.GetTimeSpan(key, null, allowInfinite: false));
            return v > TimeSpan.Zero ? v : throw new CrabKvConfigurationException(key, "must be positive");
        }
        return new TransferSettings
        {
            ChunkBytes = (int)chunk,
            Window = window,
            ChunkTimeout = Positive("transfer.chunk-timeout"),
            MaxRetries = retries,
            IdleTimeout = Positive("transfer.idle-timeout"),
            IoDispatcher = Read("io-dispatcher", () => c.GetString("io-dispatcher")),
        };
    }
}
