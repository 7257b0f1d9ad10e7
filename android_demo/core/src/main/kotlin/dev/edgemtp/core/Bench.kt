package dev.edgemtp.core

import java.io.File

/**
 * Benchmark mode (profiling/README.md, "App contract"): the intent extras, the run (warm-up, measured
 * repetitions, one trace per measured repetition) and bench.json (format edge-mtp-bench/1), written
 * last through a temporary name. Platform hooks (clock, trace sections, thermal status) come in as
 * functions so the same code runs on the JVM in tests.
 */
data class BenchConfig(
    val bundle: String,
    val mtp: Boolean = true,
    val draftLen: Int = 4,
    val maxNewTokens: Int = 256,
    val repetitions: Int = 3,
    val warmup: Int = 1,
    val promptFile: String? = null,
    val benchOut: String,
    val exitWhenDone: Boolean = false,
) {
    init {
        require(repetitions >= 1) { "repetitions must be >= 1" }
        require(warmup >= 0) { "warmup must be >= 0" }
    }

    /** Greedy, the same prompt each time; `mtp false` = plain decoding (K = 0). */
    val settings: GenerationSettings get() = GenerationSettings(draftLen, maxNewTokens, mtp, null)

    companion object {
        /** True when the extras ask for benchmark mode (a `bench_out` is given). */
        fun requested(extras: Map<String, Any?>): Boolean = extras["bench_out"] is String

        /** From the intent extras of `am start ... --es bundle ... --ez mtp ... --ei draft_len ...`. */
        fun fromExtras(extras: Map<String, Any?>): BenchConfig {
            fun int(key: String, default: Int): Int = when (val v = extras[key]) {
                null -> default
                is Number -> v.toInt()
                is String -> v.toIntOrNull() ?: throw IllegalArgumentException("$key: expected an integer, got '$v'")
                else -> throw IllegalArgumentException("$key: expected an integer")
            }
            fun bool(key: String, default: Boolean): Boolean = when (val v = extras[key]) {
                null -> default
                is Boolean -> v
                is String -> v.toBooleanStrictOrNull() ?: throw IllegalArgumentException("$key: expected true/false")
                else -> throw IllegalArgumentException("$key: expected true/false")
            }
            val bundle = extras["bundle"] as? String ?: throw IllegalArgumentException("bundle: missing")
            val out = extras["bench_out"] as? String ?: throw IllegalArgumentException("bench_out: missing")
            return BenchConfig(bundle, bool("mtp", true), int("draft_len", 4), int("max_new_tokens", 256),
                               int("repetitions", 3), int("warmup", 1), extras["prompt_file"] as? String, out,
                               bool("exit_when_done", false))
        }
    }
}

/** The platform: clock of the measured window, trace sections, thermal status, device name. */
interface BenchPlatform {
    val platform: String          // "android" | "ios" | "jvm"
    val device: String
    val implementation: String    // trace `implementation`
    fun boottimeNs(): Long        // Android: SystemClock.elapsedRealtimeNanos()
    fun thermalStatus(): Int? = null
    fun beginSection(name: String) {}
    fun endSection() {}
}

object JvmPlatform : BenchPlatform {
    override val platform = "jvm"
    override val device: String = "${System.getProperty("os.name")} ${System.getProperty("os.arch")}"
    override val implementation = "jvm"
    override fun boottimeNs(): Long = System.nanoTime()
}

val DEFAULT_PROMPT = intArrayOf(2, 17, 300, 41)

class BenchRunner(private val engine: Engine, private val config: BenchConfig, private val platform: BenchPlatform) {
    /** The prompt: token ids from `prompt_file` (comma/space separated), else [DEFAULT_PROMPT]. */
    fun prompt(): IntArray = config.promptFile?.let { GenerationSettings.parsePromptIds(File(it).readText()) } ?: DEFAULT_PROMPT

    /** Runs warm-up and measured repetitions; writes trace_i.jsonl, then bench.json. Returns bench.json's object. */
    fun run(onProgress: ((String) -> Unit)? = null): Map<String, Any?> {
        val out = File(config.benchOut)
        out.mkdirs()
        val prompt = prompt()
        val settings = config.settings
        val driver = LoopDriver(engine, platform::boottimeNs)
        for (w in 0 until config.warmup) {
            onProgress?.invoke("warm-up ${w + 1}/${config.warmup}")
            generateSection(driver, prompt, settings)
        }
        val thermalStart = platform.thermalStatus()
        val traces = ArrayList<String>()
        var tokens = 0
        val results = ArrayList<Generation>()
        val t0 = platform.boottimeNs()
        for (r in 0 until config.repetitions) {
            onProgress?.invoke("repetition ${r + 1}/${config.repetitions}")
            results.add(generateSection(driver, prompt, settings).generation)
        }
        val t1 = platform.boottimeNs()
        val thermalEnd = platform.thermalStatus()
        // traces are written after the measured window so file I/O does not count
        for ((r, gen) in results.withIndex()) {
            val name = "trace_$r.jsonl"
            TraceIO.write(File(out, name), TraceIO.lines(gen, settings, platform.implementation, engine.info.modelId))
            traces.add(name)
            tokens += gen.tokens.size
        }
        val doc = linkedMapOf<String, Any?>(
            "format" to "edge-mtp-bench/1", "platform" to platform.platform, "device" to platform.device,
            "bundle" to File(config.bundle).name, "mtp" to config.mtp, "draft_len" to settings.effectiveDraftLen,
            "max_new_tokens" to config.maxNewTokens, "repetitions" to config.repetitions, "warmup" to config.warmup,
            "tokens_generated" to tokens, "wall_time_s" to (t1 - t0) / 1e9,
            "window_boottime_ns" to listOf(t0, t1), "traces" to traces,
        )
        if (thermalStart != null && thermalEnd != null) doc["thermal_status"] = linkedMapOf("start" to thermalStart, "end" to thermalEnd)
        atomicWrite(File(out, "bench.json"), Json.write(doc) + "\n")
        return doc
    }

    private fun generateSection(driver: LoopDriver, prompt: IntArray, settings: GenerationSettings): RunResult {
        platform.beginSection("generate")
        try {
            return driver.run(prompt, settings)
        } finally {
            platform.endSection()
        }
    }
}
