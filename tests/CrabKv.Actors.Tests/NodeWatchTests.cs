using CrabKv.Actors.Client;
using CrabKv.Storage;
using Xunit;

namespace CrabKv.Actors.Tests;

/// <summary>
/// <see cref="NodeWatch.WhileAnswering"/>: a long request is awaited while the node answers
/// probes, and given up (<see cref="NodeWatch.SilentException"/>) once the probes have timed
/// out for the silence allowed. A refusal is an answer.
/// </summary>
public sealed class NodeWatchTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30); // no test may hang
    private static readonly TimeSpan Every = TimeSpan.FromMilliseconds(5);

    [Fact]
    public async Task A_node_whose_probes_time_out_is_given_up_after_the_silence_allowed()
    {
        var never = new TaskCompletionSource<int>();
        var probes = 0;
        var silence = TimeSpan.FromMilliseconds(100);
        var e = await Assert.ThrowsAsync<NodeWatch.SilentException>(() => NodeWatch.WhileAnswering(never.Task, () =>
        {
            probes++;
            throw new TimeoutException("no answer");
        }, Every, silence).WaitAsync(Bound));
        Assert.True(e.Silence >= silence, $"gave up after {e.Silence}");
        Assert.True(probes >= 1);
        Assert.False(never.Task.IsCompleted);
    }

    [Fact]
    public async Task A_node_that_answers_is_waited_for_until_the_request_completes()
    {
        var work = new TaskCompletionSource<int>();
        var probes = 0;
        var result = await NodeWatch.WhileAnswering(work.Task, () =>
        {
            if (++probes == 5)
            {
                work.TrySetResult(42);
            }
            return Task.CompletedTask;
        }, Every, TimeSpan.Zero).WaitAsync(Bound); // no silence allowed at all: only answers keep it waiting
        Assert.Equal(42, result);
        Assert.Equal(5, probes);
    }

    [Fact]
    public async Task A_refusal_is_an_answer_and_a_failed_request_fails_the_wait()
    {
        var work = new TaskCompletionSource<int>();
        var probes = 0;
        var wait = NodeWatch.WhileAnswering(work.Task, () =>
        {
            if (++probes == 5)
            {
                work.TrySetException(new InvalidOperationException("the compaction failed"));
            }
            throw new CrabKvRequestException(CrabKvErrorCode.Overloaded, "busy");
        }, Every, TimeSpan.Zero);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => wait.WaitAsync(Bound));
        Assert.Equal("the compaction failed", e.Message);
        Assert.Equal(5, probes);
    }

    [Fact]
    public async Task A_request_already_done_needs_no_probe()
    {
        var probes = 0;
        Assert.Equal(7, await NodeWatch.WhileAnswering(Task.FromResult(7), () =>
        {
            probes++;
            return Task.CompletedTask;
        }, Every, TimeSpan.Zero).WaitAsync(Bound));
        Assert.Equal(0, probes);
    }
}
