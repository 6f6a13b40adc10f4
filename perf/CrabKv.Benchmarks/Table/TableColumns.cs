namespace CrabKv.Benchmarks.Table;

/// <summary>
/// The columns of the table, in print order. The first is the engine: every cell's "× engine"
/// ratio is to the first column of the same row. The project's own paths come first, then the
/// peer stores of <see cref="Peers"/>.
/// </summary>
public static class TableColumns
{
    /// <summary>Every column, fresh instances (a column may keep state between its rows).</summary>
    public static IReadOnlyList<ITableColumn> All =>
    [
        new EngineColumn(),
        new ClientColumn(1),
        new ClientColumn(64),
        new ClientActorsColumn(64),
        new ClusterColumn(64),
        .. Peers(),
    ];

    /// <summary>
    /// The peer stores measured in the same run (FASTER, ZoneTree, RocksDB: perf/CrabKv.Benchmarks/Peers/).
    /// </summary>
    public static IReadOnlyList<ITableColumn> Peers()
    {
        // Inside this class "Peers" names this method, hence global:: for the namespace.
        return [.. global::CrabKv.Benchmarks.Peers.PeersCommand.Columns()];
    }
}
