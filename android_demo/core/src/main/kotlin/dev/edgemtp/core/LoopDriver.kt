package dev.edgemtp.core

import java.util.concurrent.atomic.AtomicBoolean

/**
 * Live numbers of a running generation, updated after every round: what the app's screen shows.
 * Acceptance per draft slot j = rounds whose slot j draft was kept / rounds that drafted slot j (the
 * trace summary's `accepted_per_position`, computed on the fly).
 */
data class LiveStats(
    val round: Int,
    val generated: Int,
    val elapsedNs: Long,
    /** generated tokens / wall time since the call started (prefill included) */
    val tokensPerSecond: Double,
    /** tokens after the first / time since the first token (decode speed) */
    val decodeTokensPerSecond: Double,
    val drafted: Int,
    val accepted: Int,
    val slotOffered: IntArray,
    val slotKept: IntArray,
    /** final token ids so far (each round's bonus token arrives one round late) */
    val tokens: IntArray,
) {
    val acceptancePerSlot: List<Double> get() = slotOffered.indices.map { j ->
        if (slotOffered[j] == 0) 0.0 else slotKept[j].toDouble() / slotOffered[j]
    }
    val acceptanceRate: Double get() = if (drafted == 0) 0.0 else accepted.toDouble() / drafted
    val meanTokensPerRound: Double get() = if (round <= 0) 0.0 else (generated - 1).toDouble() / round
}

class RunResult(val generation: Generation, val stats: LiveStats, val wallNs: Long)

/**
 * Drives the C core's loop through JNI for one prompt: streams tokens and live statistics to
 * [onUpdate] after every round, supports cancellation, and returns the generation with its final
 * statistics. [clock] is a monotonic nanosecond clock (the app passes SystemClock.elapsedRealtimeNanos).
 */
class LoopDriver(private val engine: Engine, private val clock: () -> Long = System::nanoTime) {
    private val cancel = AtomicBoolean(false)

    /** Asks the running generation to stop after its current round (any thread). */
    fun cancel() = cancel.set(true)

    fun run(prompt: IntArray, settings: GenerationSettings, onUpdate: ((LiveStats) -> Unit)? = null): RunResult {
        cancel.set(false)
        val k = settings.effectiveDraftLen
        val offered = IntArray(k)
        val kept = IntArray(k)
        val streamed = ArrayList<Int>()
        var drafted = 0
        var accepted = 0
        var firstTokenNs = -1L
        var last: LiveStats? = null
        val start = clock()

        fun stats(round: Int, generated: Int, now: Long): LiveStats {
            val elapsed = now - start
            val tps = if (elapsed > 0) generated * 1e9 / elapsed else 0.0
            val decodeNs = if (firstTokenNs >= 0) now - firstTokenNs else 0L
            val dtps = if (decodeNs > 0 && generated > 1) (generated - 1) * 1e9 / decodeNs else 0.0
            return LiveStats(round, generated, elapsed, tps, dtps, drafted, accepted, offered.copyOf(), kept.copyOf(),
                             streamed.toIntArray())
        }

        val listener = RoundListener { round, generated, nDrafted, nAccepted, newTokens ->
            val now = clock()
            if (round == 0) firstTokenNs = now
            if (nDrafted > 0) {
                drafted += nDrafted
                accepted += nAccepted
                for (j in 0 until minOf(nDrafted, k)) {
                    offered[j]++
                    if (nAccepted > j) kept[j]++
                }
            }
            newTokens.forEach { streamed.add(it) }
            val s = stats(round, generated, now)
            last = s
            onUpdate?.invoke(s)
            !cancel.get()
        }
        val gen = engine.generate(prompt, settings, listener)
        val end = clock()
        streamed.clear()
        gen.tokens.forEach { streamed.add(it) }
        val final = stats(gen.rounds.size - 1, gen.tokens.size, end)
        onUpdate?.invoke(final)
        check(last == null || final.drafted == gen.summary(k).drafted) { "live statistics disagree with the result" }
        return RunResult(gen, final, end - start)
    }
}
