using System.Globalization;

namespace CrabKv.Node.Cli;

/// <summary>Durations on the command line: a whole number and a unit, <c>500ms</c>, <c>30s</c>, <c>5m</c>, <c>1h</c>, <c>2d</c>.</summary>
public static class Durations
{
    /// <summary>
    /// Parses <paramref name="text"/>; null with <paramref name="error"/> set when it is not a
    /// positive duration or is longer than <paramref name="max"/> (<paramref name="maxText"/> names it).
    /// </summary>
    public static TimeSpan? TryParse(string text, out string? error, TimeSpan max, string maxText)
    {
        var value = TryParse(text, out error);
        if (value > max)
        {
            error = $"{text} is longer than the longest allowed, {maxText}";
            return null;
        }
        return value;
    }

    /// <summary>Parses <paramref name="text"/>; null with <paramref name="error"/> set when it is not a positive duration.</summary>
    public static TimeSpan? TryParse(string text, out string? error)
    {
        error = null;
        var t = text.Trim();
        var split = 0;
        while (split < t.Length && char.IsAsciiDigit(t[split]))
        {
            split++;
        }
        var unit = t[split..].Trim().ToLowerInvariant();
        if (split == 0 || !long.TryParse(t[..split], NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            error = $"'{text}' is not a duration (examples: 500ms, 30s, 5m, 1h)";
            return null;
        }
        if (unit.Length == 0)
        {
            error = n == 0 ? $"{text} is not a positive duration" : $"'{text}' has no unit (examples: 500ms, 30s, 5m, 1h)";
            return null;
        }
        TimeSpan? value;
        try
        {
            value = unit switch
            {
                "ms" => TimeSpan.FromMilliseconds(n),
                "s" => TimeSpan.FromSeconds(n),
                "m" or "min" => TimeSpan.FromMinutes(n),
                "h" => TimeSpan.FromHours(n),
                "d" => TimeSpan.FromDays(n),
                _ => null,
            };
        }
        catch (Exception e) when (e is OverflowException or ArgumentOutOfRangeException)
        {
            error = $"{text} is too long a duration";
            return null;
        }
        if (value is null)
        {
            error = $"'{text}' has an unknown unit '{unit}' (use ms, s, m, h or d)";
            return null;
        }
        if (value <= TimeSpan.Zero)
        {
            error = $"{text} is not a positive duration";
            return null;
        }
        return value;
    }

    /// <summary>A short human form: 850 ms, 2.3 s, 4 min 12 s.</summary>
    public static string Format(TimeSpan d) =>
        d.TotalSeconds < 1 ? $"{d.TotalMilliseconds:N0} ms"
        : d.TotalMinutes < 1 ? $"{d.TotalSeconds:N1} s"
        : $"{(int)d.TotalMinutes} min {d.Seconds} s";
}
