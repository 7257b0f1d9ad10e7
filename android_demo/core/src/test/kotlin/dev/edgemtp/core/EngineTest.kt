package dev.edgemtp.core

import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.io.TempDir
import java.io.File

/** The real tiny bundle through JNI -> C core -> LiteRT (EDGE_MTP_TEST_BUNDLE; skipped without it). */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class EngineTest {
    private val bundle: String? = System.getenv("EDGE_MTP_TEST_BUNDLE")
    private lateinit var engine: Engine
    private val prompt = intArrayOf(2, 17, 300, 41)

    @BeforeAll
    fun open() {
        assumeTrue(bundle != null && File(bundle).isFile, "EDGE_MTP_TEST_BUNDLE is not set")
        engine = Engine.open(bundle!!)
    }

    @AfterAll
    fun close() {
        if (this::engine.isInitialized) engine.close()
    }

    @Test
    fun bundleInfo() {
        val i = engine.info
        assertTrue(i.vocabSize > 0 && i.context > 0 && i.hasDrafter)
        assertTrue(i.modelId.startsWith("sha256:"))
    }

    @Test
    fun liveStatisticsAgreeWithTheResult() {
        for (k in listOf(0, 2, 4)) {
            val updates = ArrayList<LiveStats>()
            val settings = GenerationSettings(k, 24)
            val r = LoopDriver(engine).run(prompt, settings) { updates.add(it) }
            val g = r.generation
            val s = g.summary(k)
            assertEquals(24, g.tokens.size)
            assertEquals(g.rounds.size + 1, updates.size) // one per round + the final one
            assertEquals(s.acceptedPerPosition, r.stats.acceptancePerSlot)
            assertEquals(s.drafted, r.stats.drafted)
            assertEquals(s.accepted, r.stats.accepted)
            for ((n, u) in updates.withIndex()) {
                // tokens stream in order, at most one (the bonus token) behind the exact count
                assertArrayEquals(g.tokens.copyOf(u.tokens.size), u.tokens, "k=$k update $n")
                assertTrue(u.generated - u.tokens.size in 0..1, "k=$k update $n: ${u.generated} vs ${u.tokens.size}")
                if (n > 0) assertTrue(u.generated >= updates[n - 1].generated)
            }
            assertTrue(r.stats.tokensPerSecond > 0)
        }
    }

    @Test
    fun sameSettingsSameTokens() {
        val s = GenerationSettings(3, 16, true, Sampling(0.8, 0, 1.0, 7))
        assertArrayEquals(engine.generate(prompt, s).tokens, engine.generate(prompt, s).tokens)
    }

    @Test
    fun cancelStopsTheRun() {
        val driver = LoopDriver(engine)
        val e = assertThrows(NativeException::class.java) {
            driver.run(prompt, GenerationSettings(2, 40)) { if (it.round >= 2) driver.cancel() }
        }
        assertTrue(e.cancelled)
        // the engine is usable afterwards
        assertEquals(8, engine.generate(prompt, GenerationSettings(2, 8)).tokens.size)
    }

    @Test
    fun errorsAreNativeExceptions() {
        val bad = assertThrows(NativeException::class.java) { engine.generate(intArrayOf(1, 1 shl 30), GenerationSettings(2, 4)) }
        assertEquals(NativeException.USAGE, bad.code)
        assertThrows(NativeException::class.java) { engine.generate(intArrayOf(), GenerationSettings(2, 4)) }
        val missing = assertThrows(NativeException::class.java) { Engine.open("/nonexistent/x.litertlm") }
        assertTrue(missing.message!!.contains("x.litertlm"), missing.message)
    }

    @Test
    fun benchmarkModeWritesTheContract(@TempDir dir: File) {
        val out = File(dir, "out/mtp_on")
        val config = BenchConfig(bundle!!, mtp = true, draftLen = 4, maxNewTokens = 12, repetitions = 2, warmup = 1,
                                 benchOut = out.path)
        val sections = ArrayList<String>()
        val platform = object : BenchPlatform by JvmPlatform {
            override fun beginSection(name: String) { sections.add(name) }
        }
        val doc = BenchRunner(engine, config, platform).run()
        assertEquals(listOf("generate", "generate", "generate"), sections)
        @Suppress("UNCHECKED_CAST")
        val back = Json.parse(File(out, "bench.json").readText()) as Map<String, Any?>
        assertEquals("edge-mtp-bench/1", back["format"])
        assertEquals(24L, back["tokens_generated"])
        assertEquals(listOf("trace_0.jsonl", "trace_1.jsonl"), back["traces"])
        assertEquals(doc["tokens_generated"], 24)
        val total = (0..1).sumOf { TraceIO.tokens(TraceIO.read(File(out, "trace_$it.jsonl"))).size }
        assertEquals(24, total)
    }
}
