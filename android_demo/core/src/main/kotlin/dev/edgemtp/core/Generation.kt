package dev.edgemtp.core

data class TopLogit(val id: Int, val value: Float)

/** One round of the loop, as in a step trace (docs/trace.md; round 0 = prefill). Timings in ms (null: no draft phase). */
data class Round(
    val index: Int, val position: Int, val drafts: IntArray, val target: IntArray, val accepted: Int,
    val emitted: IntArray, val topLogits: List<TopLogit>, val draftMs: Double?, val verifyMs: Double,
    val graphMs: Double?,
) {
    override fun equals(other: Any?): Boolean = other is Round && index == other.index &&
        position == other.position && drafts.contentEquals(other.drafts) && target.contentEquals(other.target) &&
        accepted == other.accepted && emitted.contentEquals(other.emitted) && topLogits == other.topLogits

    override fun hashCode(): Int = 31 * index + position
}

class Generation(val prompt: IntArray, val tokens: IntArray, val rounds: List<Round>, val stop: String) {
    /** The summary line's numbers (runtime/loop.py Generation.summary). */
    fun summary(draftLen: Int): Summary {
        val drafting = rounds.filter { it.drafts.isNotEmpty() }
        val perSlot = (0 until draftLen).map { k ->
            val offered = drafting.filter { it.drafts.size > k }
            if (offered.isEmpty()) 0.0 else offered.count { it.accepted > k }.toDouble() / offered.size
        }
        val decode = rounds.drop(1)
        val mean = if (decode.isEmpty()) 0.0 else decode.sumOf { it.emitted.size }.toDouble() / decode.size
        return Summary(tokens, rounds.size, drafting.sumOf { it.drafts.size }, drafting.sumOf { it.accepted },
                       perSlot, mean, stop)
    }
}

data class Summary(
    val tokens: IntArray, val rounds: Int, val drafted: Int, val accepted: Int,
    val acceptedPerPosition: List<Double>, val meanEmittedPerRound: Double, val stop: String,
) {
    override fun equals(other: Any?): Boolean = other is Summary && tokens.contentEquals(other.tokens) &&
        rounds == other.rounds && drafted == other.drafted && accepted == other.accepted &&
        acceptedPerPosition == other.acceptedPerPosition && meanEmittedPerRound == other.meanEmittedPerRound &&
        stop == other.stop

    override fun hashCode(): Int = tokens.contentHashCode()
}
