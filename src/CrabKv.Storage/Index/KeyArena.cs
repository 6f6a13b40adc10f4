namespace CrabKv.Storage.Index;

/// <summary>
/// Append-only storage for many small keys: 1 MiB pages filled front to back, a key named by
/// a 64-bit reference (<c>page &lt;&lt; 20 | offset</c>) and read back with its length. One
/// array per page instead of one per key. Keys are at most 64 KiB, so one always fits a page.
/// </summary>
internal sealed class KeyArena
{
    private const int PageBits = 20;

    /// <summary>Bytes per page.</summary>
    public const int PageSize = 1 << PageBits;

    private readonly List<byte[]> _pages = new();
    private int _pageUsed = PageSize; // forces a first page

    /// <summary>Bytes allocated for pages.</summary>
    public long AllocatedBytes => (long)_pages.Count * PageSize;

    /// <summary>Copies <paramref name="key"/> in (a new page when the current one is too full); returns its reference.</summary>
    public long Add(ReadOnlySpan<byte> key)
    {
        if (PageSize - _pageUsed < key.Length)
        {
            _pages.Add(new byte[PageSize]);
            _pageUsed = 0;
        }
        var page = _pages.Count - 1;
        key.CopyTo(_pages[page].AsSpan(_pageUsed));
        var keyRef = ((long)page << PageBits) | (uint)_pageUsed;
        _pageUsed += key.Length;
        return keyRef;
    }

    /// <summary>The key at <paramref name="keyRef"/>, <paramref name="length"/> bytes long.</summary>
    public ReadOnlySpan<byte> Get(long keyRef, int length) =>
        _pages[(int)(keyRef >> PageBits)].AsSpan((int)(keyRef & (PageSize - 1)), length);
}
