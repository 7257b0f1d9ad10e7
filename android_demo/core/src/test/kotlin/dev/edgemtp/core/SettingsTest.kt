package dev.edgemtp.core

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class SettingsTest {
    @Test
    fun promptIds() {
        assertArrayEquals(intArrayOf(2, 17, 300), GenerationSettings.parsePromptIds(" 2, 17 300\n"))
        assertThrows(IllegalArgumentException::class.java) { GenerationSettings.parsePromptIds("hello") }
        assertThrows(IllegalArgumentException::class.java) { GenerationSettings.parsePromptIds(" , ") }
        assertThrows(IllegalArgumentException::class.java) { GenerationSettings.parsePromptIds("1,-2") }
    }

    @Test
    fun mtpOffMeansPlainDecoding() {
        assertEquals(0, GenerationSettings(draftLen = 4, mtp = false).effectiveDraftLen)
        assertEquals(4, GenerationSettings(draftLen = 4).effectiveDraftLen)
        assertEquals(mapOf("mode" to "greedy"), GenerationSettings().samplingTrace())
        assertThrows(IllegalArgumentException::class.java) { GenerationSettings(draftLen = -1) }
        assertThrows(IllegalArgumentException::class.java) { Sampling(0.0) }
        assertThrows(IllegalArgumentException::class.java) { Sampling(1.0, topP = 0.0) }
    }

    @Test
    fun benchExtrasOfTheProfilingContract() {
        // what `am start ... --es bundle B --ez mtp true --ei draft_len 4 ... --es bench_out O --ez exit_when_done true` delivers
        val extras = mapOf<String, Any?>("bundle" to "/sdcard/x/model.litertlm", "mtp" to true, "draft_len" to 4,
                                         "max_new_tokens" to 256, "repetitions" to 3, "warmup" to 1,
                                         "bench_out" to "/sdcard/x/out/mtp_on", "exit_when_done" to true)
        assertTrue(BenchConfig.requested(extras))
        val c = BenchConfig.fromExtras(extras)
        assertEquals(BenchConfig("/sdcard/x/model.litertlm", true, 4, 256, 3, 1, null, "/sdcard/x/out/mtp_on", true), c)
        assertEquals(4, c.settings.effectiveDraftLen)
        val off = BenchConfig.fromExtras(extras + ("mtp" to "false"))
        assertEquals(0, off.settings.effectiveDraftLen)
        assertFalse(BenchConfig.requested(mapOf("bundle" to "x")))
        assertThrows(IllegalArgumentException::class.java) { BenchConfig.fromExtras(extras - "bundle") }
        assertThrows(IllegalArgumentException::class.java) { BenchConfig.fromExtras(extras + ("repetitions" to 0)) }
        assertThrows(IllegalArgumentException::class.java) { BenchConfig.fromExtras(extras + ("draft_len" to "four")) }
    }
}
