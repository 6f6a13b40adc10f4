using System.Diagnostics;

namespace CrabKv.Actors.Client;

/// <summary>
/// Waits for a long request (a compaction, which may be given an hour) while probing the store
/// or node that serves it (e.g. with stats requests), so that a node killed or cut off meanwhile
/// is noticed after the probes' timeout, not after the long request's own. <c>crabkv compact</c>
/// uses it.
/// </summary>
public static class NodeWatch
{
    /// <summary>The node answered no probe for <see cref="Silence"/>.</summary>
    public sealed class SilentException(TimeSpan silence)
        : Exception($"The node answered no probe for {silence}.")
    {
        /// <summary>How long the node had answered nothing.</summary>
        public TimeSpan Silence { get; } = silence;
    }

    /// <summary>
    /// Awaits <paramref name="work"/>; every <paramref name="every"/> until it completes, runs
    /// <paramref name="probe"/> (e.g. a stats request, which also feeds a progress bar). A probe
    /// that times out counts as silence, one that answers (even with a refusal) as an answer.
    /// Throws <see cref="SilentException"/> once the node has answered nothing for
    /// <paramref name="silence"/> while <paramref name="work"/> is still pending.
    /// </summary>
    public static async Task<T> WhileAnswering<T>(Task<T> work, Func<Task> probe, TimeSpan every, TimeSpan silence)
    {
        using var poll = new PeriodicTimer(every);
        var lastAnswer = Stopwatch.StartNew();
        while (!work.IsCompleted)
        {
            await Task.WhenAny(work, poll.WaitForNextTickAsync().AsTask());
            if (work.IsCompleted)
            {
                break;
            }
            try
            {
                await probe();
                lastAnswer.Restart();
            }
            catch (CrabKvRequestException)
            {
                lastAnswer.Restart(); // refused: but it answered
            }
            catch (TimeoutException)
            {
                if (!work.IsCompleted && lastAnswer.Elapsed >= silence)
                {
                    throw new SilentException(lastAnswer.Elapsed);
                }
            }
        }
        return await work;
    }
}
