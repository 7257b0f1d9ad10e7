package dev.edgemtp.core

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.io.File

class TraceIoTest {
    private fun round(i: Int, pos: Int, drafts: IntArray, target: IntArray, acc: Int, emitted: IntArray) =
        Round(i, pos, drafts, target, acc, emitted, listOf(TopLogit(emitted.last(), 1.5f), TopLogit(7, 0.25f)),
              if (i == 0) null else 1.0, 2.0, 0.5)

    /** K=3: slot 1 kept 2/3, slot 2 kept 1/3, slot 3 kept 0/2 (the last round drafted only two). */
    private val gen = Generation(
        intArrayOf(2, 17, 300), intArrayOf(5, 6, 7, 8, 9, 10, 11, 12),
        listOf(
            round(0, 2, intArrayOf(), intArrayOf(5), 0, intArrayOf(5)),
            round(1, 3, intArrayOf(6, 7, 1), intArrayOf(6, 7, 8, 4), 2, intArrayOf(6, 7, 8)),
            round(2, 6, intArrayOf(9, 1, 1), intArrayOf(9, 10, 3, 3), 1, intArrayOf(9, 10)),
            round(3, 8, intArrayOf(3, 3), intArrayOf(11, 2, 2), 0, intArrayOf(11)),
            round(4, 9, intArrayOf(), intArrayOf(12), 0, intArrayOf(12)),
        ),
        "max_new_tokens",
    )

    @Test
    fun summaryMatchesThePythonDefinition() {
        val s = gen.summary(3)
        assertEquals(5, s.rounds)
        assertEquals(8, s.drafted)
        assertEquals(3, s.accepted)
        assertEquals(listOf(2.0 / 3, 1.0 / 3, 0.0), s.acceptedPerPosition)
        assertEquals(7.0 / 4, s.meanEmittedPerRound)
    }

    @Test
    fun writeThenReadGivesTheSameLines(@TempDir dir: File) {
        val settings = GenerationSettings(3, 8, true, Sampling(0.8, 0, 1.0, 7))
        val lines = TraceIO.lines(gen, settings, "jvm", "sha256:0123")
        val file = File(dir, "t.jsonl")
        TraceIO.write(file, lines)
        val back = TraceIO.read(file)
        assertEquals(7, back.size)
        assertEquals("edge-mtp-trace/1", back[0]["format"])
        assertEquals(mapOf("mode" to "sample", "temperature" to 0.8, "top_k" to 0L, "top_p" to 1.0, "seed" to 7L), back[0]["sampling"])
        assertEquals(listOf(6L, 7L, 1L), back[2]["drafts"])
        assertEquals(listOf(listOf(8L, 1.5), listOf(7L, 0.25)), back[2]["top_logits"])
        assertArrayEquals(gen.tokens, TraceIO.tokens(back))
        assertEquals(false, File(dir, ".t.jsonl.tmp").exists())
    }

    @Test
    fun truncatedOrForeignTracesAreRejected(@TempDir dir: File) {
        val file = File(dir, "t.jsonl")
        TraceIO.write(file, TraceIO.lines(gen, GenerationSettings(3, 8), "jvm", "m"))
        val text = file.readText()
        val cases = mapOf("cut" to text.substring(0, text.length / 2), "nosummary" to text.lines().dropLast(2).joinToString("\n"),
                          "foreign" to "{\"hello\":1}\n", "empty" to "")
        for ((name, content) in cases) {
            val f = File(dir, "$name.jsonl")
            f.writeText(content)
            assertThrows(TraceIO.TraceException::class.java) { TraceIO.read(f) }
        }
        assertThrows(TraceIO.TraceException::class.java) { TraceIO.read(File(dir, "missing.jsonl")) }
    }
}
