package dev.edgemtp.core

/** Sampling as in a step trace's header (docs/trace.md): temperature > 0, top_k (0 = off), top_p (1 = off), seed. */
data class Sampling(val temperature: Double, val topK: Int = 0, val topP: Double = 1.0, val seed: Long = 0) {
    init {
        require(temperature > 0) { "temperature must be > 0 (greedy = no Sampling)" }
        require(topK >= 0) { "top_k must be >= 0" }
        require(topP > 0 && topP <= 1) { "top_p must be in (0, 1]" }
        require(seed >= 0) { "seed must be >= 0" }
    }

    fun asTrace(): Map<String, Any?> =
        linkedMapOf("mode" to "sample", "temperature" to temperature, "top_k" to topK, "top_p" to topP, "seed" to seed)
}

/**
 * What one generation runs with (the app's screen and benchmark mode both build one). [mtp] false means
 * plain decoding: the effective K is 0 whatever [draftLen] says.
 */
data class GenerationSettings(
    val draftLen: Int = 4,
    val maxNewTokens: Int = 64,
    val mtp: Boolean = true,
    val sampling: Sampling? = null,
    val kvView: String = "hf",
) {
    init {
        require(draftLen in 0..64) { "draft_len must be in 0..64" }
        require(maxNewTokens >= 1) { "max_new_tokens must be >= 1" }
        require(kvView == "hf" || kvView == "clean") { "kv_view must be hf or clean" }
    }

    val effectiveDraftLen: Int get() = if (mtp) draftLen else 0

    fun samplingTrace(): Map<String, Any?> = sampling?.asTrace() ?: linkedMapOf("mode" to "greedy")

    companion object {
        /** Parses "1,2,3" / "1 2 3" (the native core has no tokenizer: prompts are token ids). */
        fun parsePromptIds(text: String): IntArray {
            val parts = text.split(',', ' ', '\n', '\t', '\r').filter { it.isNotBlank() }
            require(parts.isNotEmpty()) { "the prompt is empty; give comma-separated token ids" }
            return parts.map {
                it.trim().toIntOrNull()?.takeIf { id -> id >= 0 }
                    ?: throw IllegalArgumentException("prompt: expected token ids, got '${it.trim()}'")
            }.toIntArray()
        }
    }
}
