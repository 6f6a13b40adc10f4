using Akka.Actor;
using CrabKv.Actors.Partition;
using CrabKv.Storage.Partition;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>The partition's in-flight bookkeeping, without actors.</summary>
public sealed class InFlightWritesTests
{
    private static LogRecord Rec(string key, string? value, long expiry = 0) =>
        new(System.Text.Encoding.UTF8.GetBytes(key), value is null ? null : System.Text.Encoding.UTF8.GetBytes(value), expiry);

    [Fact]
    public void Pending_values_are_served_until_their_own_write_is_acknowledged()
    {
        var w = new InFlightWrites(1 << 20);
        var s1 = w.Add(["a"], [Rec("a", "1")], 0, ActorRefs.Nobody, 11);
        var s2 = w.Add(["a", "b"], [Rec("a", "2"), Rec("b", "x")], 0, null, 0);
        Assert.True(s2 > s1);
        Assert.True(w.TryGet("a", out var a));
        Assert.Equal("2", System.Text.Encoding.UTF8.GetString(a.Value!));

        var first = w.Acknowledge(s1);
        Assert.NotNull(first);
        Assert.Equal(11, first!.RequestId);
        Assert.True(w.TryGet("a", out a)); // the newer write of "a" is still in flight
        Assert.Equal("2", System.Text.Encoding.UTF8.GetString(a.Value!));

        Assert.NotNull(w.Acknowledge(s2));
        Assert.False(w.Contains("a"));
        Assert.False(w.Contains("b"));
        Assert.Equal(0, w.Bytes);
        Assert.Equal(0, w.Count);
    }

    [Fact]
    public void A_key_repeated_in_one_batch_keeps_its_last_value()
    {
        var w = new InFlightWrites(1 << 20);
        w.Add(["k", "k", "k"], [Rec("k", "1"), Rec("k", null), Rec("k", "3", 99)], 0, null, 0);
        Assert.True(w.TryGet("k", out var v));
        Assert.Equal("3", System.Text.Encoding.UTF8.GetString(v.Value!));
        Assert.Equal(99, v.Expiry);
        Assert.Equal(1, w.KeyCount);
    }

    [Fact]
    public void A_pending_delete_and_an_expired_value_are_not_live()
    {
        var w = new InFlightWrites(1 << 20);
        w.Add(["d", "e"], [Rec("d", null), Rec("e", "v", expiry: 1000)], 0, null, 0);
        Assert.True(w.TryGet("d", out var d));
        Assert.False(d.IsLiveAt(0));
        Assert.True(w.TryGet("e", out var e));
        Assert.True(e.IsLiveAt(999));
        Assert.False(e.IsLiveAt(1000));
    }

    [Fact]
    public void An_out_of_order_acknowledgement_is_reported_and_the_oldest_write_is_dropped()
    {
        var w = new InFlightWrites(1 << 20);
        var s1 = w.Add(["a"], [Rec("a", "1")], 0, null, 0);
        var s2 = w.Add(["b"], [Rec("b", "2")], 0, null, 0);
        Assert.Null(w.Acknowledge(s2)); // acks come in order: this is a bug the caller logs
        Assert.False(w.Contains("a"));
        Assert.True(w.Contains("b"));
        Assert.NotEqual(s1, s2);
    }

    [Fact]
    public void Bytes_are_bounded_and_DropAll_returns_every_pending_write_oldest_first()
    {
        var w = new InFlightWrites(maxBytes: 10);
        w.Add(["a"], [Rec("a", "12345")], 0, null, 1);
        Assert.False(w.IsFull); // 6 bytes
        w.Add(["b"], [Rec("b", "12345")], flushId: 7, null, 2);
        Assert.True(w.IsFull); // 12 > 10
        var dropped = w.DropAll();
        Assert.Equal([1L, 2L], dropped.Select(p => p.RequestId));
        Assert.Equal(7, dropped[1].FlushId);
        Assert.Equal(0, w.Bytes);
        Assert.False(w.Contains("a"));
        Assert.False(w.IsFull);
    }
}
