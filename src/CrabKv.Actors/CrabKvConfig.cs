using Akka.Configuration;
using Akka.Configuration.Hocon;
using CrabKv.Actors.Internal;

namespace CrabKv.Actors;

/// <summary>
/// Loading and checking CrabKv configuration: HOCON files read with their syntax checked
/// (<see cref="LoadFile"/>, <see cref="ParseString"/>), and the keys under <c>crabkv</c>
/// checked against the reference configurations (<see cref="CheckKeys"/>): a misspelt key is
/// refused, naming it and the closest known key, instead of being silently ignored.
/// <see cref="CrabKvSettings.Create(Config)"/> (and the cluster's settings) run the key check.
/// </summary>
public static class CrabKvConfig
{
    /// <summary>
    /// Reads a HOCON file. A syntax error is a <see cref="CrabKvConfigurationException"/> saying so,
    /// with the file and line: <c>hocon/x.conf line 12: HOCON syntax error: ...</c>.
    /// </summary>
    /// <exception cref="CrabKvConfigurationException">The file is missing, unreadable, or not valid HOCON.</exception>
    public static Config LoadFile(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CrabKvConfigurationException($"{path}: the configuration file cannot be read: {e.Message}", e);
        }
        return Parse(text, path, Path.GetDirectoryName(Path.GetFullPath(path)));
    }

    /// <summary>
    /// Parses HOCON text, checking its syntax first (Akka's parser accepts much that is not HOCON,
    /// silently, and never returns on some malformed input). <paramref name="source"/> names the
    /// text in messages (a file name; default "configuration").
    /// </summary>
    /// <exception cref="CrabKvConfigurationException">The text is not valid HOCON: the message names the source and line.</exception>
    public static Config ParseString(string hocon, string? source = null) =>
        Parse(hocon ?? throw new ArgumentNullException(nameof(hocon)), source ?? "configuration", Environment.CurrentDirectory);

    /// <summary>
    /// Checks and parses <paramref name="hocon"/>; <c>include "file.conf"</c> (also
    /// <c>include file("...")</c>) reads that file relative to <paramref name="directory"/>,
    /// checked the same way and named in its own errors.
    /// </summary>
    private static Config Parse(string hocon, string source, string? directory)
    {
        if (HoconSyntax.FindError(hocon) is { } error)
        {
            throw new CrabKvConfigurationException($"{source} line {error.Line}: HOCON syntax error: {error.Message}", (Exception?)null);
        }
        try
        {
            return ConfigurationFactory.ParseString(hocon, include => Include(include, source, directory));
        }
        catch (Exception e) when (e is not CrabKvConfigurationException)
        {
            throw new CrabKvConfigurationException($"{source}: HOCON error: {e.Message}", e);
        }
    }

    private static HoconRoot Include(string include, string source, string? directory)
    {
        var name = include.Trim();
        foreach (var wrapper in new[] { "required(", "file(" })
        {
            if (name.StartsWith(wrapper, StringComparison.Ordinal) && name.EndsWith(')'))
            {
                name = name[wrapper.Length..^1].Trim();
            }
        }
        name = name.Trim('"');
        var path = Path.Combine(directory ?? Environment.CurrentDirectory, name);
        if (!File.Exists(path))
        {
            throw new CrabKvConfigurationException($"{source}: the included file '{name}' does not exist (looked for {path})", (Exception?)null);
        }
        return new HoconRoot(LoadFile(path).Root);
    }

    /// <summary>
    /// Every key (leaf path, e.g. <c>crabkv.cache.max-bytes</c>) under <c>crabkv</c> in
    /// <paramref name="config"/> and its fallbacks.
    /// </summary>
    public static IReadOnlyList<string> KeysUnderCrabKv(Config config)
    {
        var keys = new SortedSet<string>(StringComparer.Ordinal);
        for (var c = config; c is not null && !c.IsEmpty; c = c.Fallback)
        {
            if (c.Root is { } root && root.IsObject() && root.GetObject().GetKey("crabkv") is { } crabkv)
            {
                Collect(crabkv, "crabkv", keys);
            }
        }
        return keys.ToList();
    }

    private static void Collect(HoconValue value, string path, ISet<string> keys)
    {
        if (value.IsObject())
        {
            foreach (var (key, child) in value.GetObject().Items)
            {
                Collect(child, path + "." + key, keys);
            }
            return;
        }
        keys.Add(path);
    }

    /// <summary>
    /// Refuses keys under <c>crabkv</c> that no reference configuration knows.
    /// <paramref name="known"/> are the leaf keys of the references (<see cref="KeysUnderCrabKv"/>);
    /// keys under <paramref name="openSections"/> (e.g. dispatcher configurations, whose keys are
    /// Akka's) are accepted as they are. The dispatchers named by <c>crabkv.io-dispatcher</c> and
    /// <c>crabkv.compaction-dispatcher</c> are open sections too.
    /// </summary>
    /// <exception cref="CrabKvConfigurationException">"unknown key crabkv.sync-intervall; did you mean crabkv.sync-interval?"</exception>
    public static void CheckKeys(Config config, IReadOnlyCollection<string> known, IEnumerable<string> openSections)
    {
        ArgumentNullException.ThrowIfNull(config);
        var open = openSections.ToList();
        foreach (var key in new[] { "crabkv.io-dispatcher", "crabkv.compaction-dispatcher" })
        {
            if (config.HasPath(key))
            {
                try
                {
                    open.Add(config.GetString(key));
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // Not a string: CrabKvSettings.Create names the key.
                }
            }
        }
        var knownSet = known as ISet<string> ?? new HashSet<string>(known, StringComparer.Ordinal);
        foreach (var key in KeysUnderCrabKv(config))
        {
            if (knownSet.Contains(key) || open.Any(s => key == s || key.StartsWith(s + ".", StringComparison.Ordinal)))
            {
                continue;
            }
            var relative = key.Length > "crabkv.".Length ? key["crabkv.".Length..] : key;
            var children = knownSet.Where(k => k.StartsWith(key + ".", StringComparison.Ordinal)).ToList();
            if (children.Count > 0)
            {
                // A section given a value: `crabkv = 5`, `crabkv.limits = 5`.
                throw new CrabKvConfigurationException(
                    $"Invalid CrabKv configuration: {key} is a section of keys ({string.Join(", ", children.Take(3))}{(children.Count > 3 ? ", ..." : "")}), not a value.", (Exception?)null)
                {
                    Key = relative,
                    UnknownKey = key,
                };
            }
            var closest = Closest(key, knownSet);
            throw new CrabKvConfigurationException(closest is null
                ? $"Invalid CrabKv configuration: unknown key {key}."
                : $"Invalid CrabKv configuration: unknown key {key}; did you mean {closest}?", (Exception?)null)
            {
                Key = relative,
                UnknownKey = key,
                Suggestion = closest,
            };
        }
    }

    /// <summary>The known key nearest to <paramref name="key"/> by edit distance (ties: the shorter, then the first in order).</summary>
    public static string? Closest(string key, IEnumerable<string> known) =>
        known.OrderBy(k => EditDistance(key, k)).ThenBy(k => k.Length).ThenBy(k => k, StringComparer.Ordinal).FirstOrDefault();

    /// <summary>Levenshtein distance (insertions, deletions, substitutions).</summary>
    public static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
