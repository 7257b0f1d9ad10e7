package dev.edgemtp.core

import java.io.File
import java.io.IOException

/**
 * Step traces, format edge-mtp-trace/1 (docs/trace.md): header, one line per round,
 * summary, as JSON Lines, the same fields src/edge_mtp/runtime/trace.py writes.
 */
object TraceIO {
    const val FORMAT = "edge-mtp-trace/1"

    class TraceException(message: String) : IOException(message)

    fun lines(gen: Generation, settings: GenerationSettings, implementation: String, model: String): List<Map<String, Any?>> {
        val k = settings.effectiveDraftLen
        val header = linkedMapOf<String, Any?>(
            "type" to "header", "format" to FORMAT, "implementation" to implementation, "model" to model,
            "prompt_ids" to gen.prompt, "draft_len" to k, "max_new_tokens" to settings.maxNewTokens,
            "sampling" to settings.samplingTrace(), "kv_view" to settings.kvView,
        )
        val rounds = gen.rounds.map { r ->
            val ms = linkedMapOf<String, Any?>()
            if (r.draftMs != null) ms["draft"] = r.draftMs
            ms["verify"] = r.verifyMs
            if (r.graphMs != null) ms["graph"] = r.graphMs
            linkedMapOf<String, Any?>(
                "type" to "round", "index" to r.index, "position" to r.position, "drafts" to r.drafts,
                "target" to r.target, "accepted" to r.accepted, "emitted" to r.emitted,
                "top_logits" to r.topLogits.map { listOf(it.id, it.value.toDouble()) }, "ms" to ms,
            )
        }
        val s = gen.summary(k)
        val summary = linkedMapOf<String, Any?>(
            "type" to "summary", "tokens" to s.tokens, "rounds" to s.rounds, "drafted" to s.drafted,
            "accepted" to s.accepted, "accepted_per_position" to s.acceptedPerPosition,
            "mean_emitted_per_round" to s.meanEmittedPerRound, "stop" to s.stop,
        )
        return listOf(header) + rounds + listOf(summary)
    }

    /** Writes the lines to a temporary file next to [file], then renames it (no partial traces). */
    fun write(file: File, lines: List<Map<String, Any?>>) {
        val text = StringBuilder()
        for (line in lines) Json.write(line, text).also { text.append('\n') }
        atomicWrite(file, text.toString())
    }

    /** Reads a trace; header first and summary last, like runtime/trace.py read_trace. */
    @Suppress("UNCHECKED_CAST")
    fun read(file: File): List<Map<String, Any?>> {
        val text = try { file.readText() } catch (e: IOException) { throw TraceException("$file: cannot read (${e.message})") }
        val lines = text.lines().withIndex().filter { it.value.isNotBlank() }.map { (i, raw) ->
            val v = try { Json.parse(raw) } catch (e: Json.ParseException) {
                throw TraceException("$file:${i + 1}: not JSON, truncated? (${e.message})")
            }
            v as? Map<String, Any?> ?: throw TraceException("$file:${i + 1}: expected a JSON object per line")
        }
        if (lines.isEmpty() || lines[0]["type"] != "header" || lines[0]["format"] != FORMAT)
            throw TraceException("$file: not an $FORMAT trace (the first line must be its header)")
        if (lines.last()["type"] != "summary") throw TraceException("$file: no summary line at the end; truncated trace?")
        return lines
    }

    /** The generated token ids of a trace (its summary's `tokens`). */
    fun tokens(lines: List<Map<String, Any?>>): IntArray = lines.last().ints("tokens")
}

/** Writes [text] to [file] through a temporary name in the same folder and a rename. */
fun atomicWrite(file: File, text: String) {
    val dir = file.absoluteFile.parentFile
    dir.mkdirs()
    val tmp = File(dir, ".${file.name}.tmp")
    tmp.writeText(text)
    if (!tmp.renameTo(file)) {
        file.delete()
        if (!tmp.renameTo(file)) throw IOException("cannot rename $tmp to $file")
    }
}
