package dev.edgemtp.core

import java.io.File
import kotlin.system.exitProcess

/**
 * Desktop entry point of the JVM layer (used by the tests and by developers without a phone):
 *
 *   run BUNDLE --prompt-ids 1,2,3 [--draft-len K] [--max-new-tokens N] [--temperature T --top-k K
 *       --top-p P --seed S] [--kv-view hf|clean] [--trace FILE] [--litert-lib PATH]
 *   batch BUNDLE JOBS.jsonl [--litert-lib PATH]     one job per line: {"trace": FILE, "prompt_ids": [...],
 *       "draft_len": K, "max_new_tokens": N, "sampling": {"mode": "greedy"} | {"mode": "sample", ...}}
 *   bench --bundle B --bench_out DIR [--mtp true] [--draft_len K] [--max_new_tokens N] [--repetitions R]
 *       [--warmup W] [--prompt_file F] [--litert-lib PATH]   (the app's benchmark-mode extras)
 *
 * Exit codes as the other CLIs: 0 ok, 2 usage or bad input (one `error:` line), 3 native failure.
 */
fun main(args: Array<String>) {
    val code = try {
        cli(args.toList())
    } catch (e: NativeException) {
        System.err.println("error: ${e.message}")
        if (e.code == NativeException.USAGE || e.code == NativeException.IO || e.code == NativeException.BUNDLE) 2 else 3
    } catch (e: IllegalArgumentException) {
        System.err.println("error: ${e.message}")
        2
    } catch (e: java.io.IOException) {
        System.err.println("error: ${e.message}")
        2
    }
    exitProcess(code)
}

private fun options(args: List<String>): Pair<List<String>, Map<String, String>> {
    val positional = ArrayList<String>()
    val opts = LinkedHashMap<String, String>()
    var i = 0
    while (i < args.size) {
        val a = args[i]
        if (a.startsWith("--")) {
            require(i + 1 < args.size) { "$a needs a value" }
            opts[a.removePrefix("--")] = args[i + 1]
            i += 2
        } else {
            positional.add(a)
            i++
        }
    }
    return positional to opts
}

private fun samplingOf(obj: Map<String, Any?>): Sampling? =
    if (obj["mode"] == "sample") Sampling(obj.double("temperature"), obj.int("top_k"), obj.double("top_p"),
                                          (obj["seed"] as Number).toLong()) else null

fun cli(args: List<String>): Int {
    require(args.isNotEmpty()) { "usage: run|batch|bench ..." }
    val (pos, o) = options(args.drop(1))
    val lib = o["litert-lib"]
    when (args[0]) {
        "run" -> {
            require(pos.size == 1) { "run: give one BUNDLE" }
            val prompt = GenerationSettings.parsePromptIds(o["prompt-ids"] ?: throw IllegalArgumentException("--prompt-ids missing"))
            val t = o["temperature"]?.toDouble() ?: 0.0
            val sampling = if (t > 0) Sampling(t, o["top-k"]?.toInt() ?: 0, o["top-p"]?.toDouble() ?: 1.0,
                                               o["seed"]?.toLong() ?: 0L) else null
            Engine.open(pos[0], lib).use { engine ->
                val settings = GenerationSettings(o["draft-len"]?.toInt() ?: engine.info.defaultDraftLen,
                                                  o["max-new-tokens"]?.toInt() ?: 64, true, sampling, o["kv-view"] ?: "hf")
                val result = LoopDriver(engine).run(prompt, settings)
                o["trace"]?.let { TraceIO.write(File(it), TraceIO.lines(result.generation, settings, "jvm", engine.info.modelId)) }
                println(result.generation.tokens.joinToString(","))
                val s = result.stats
                println("tokens ${s.generated} | rounds ${result.generation.rounds.size} | acceptance per draft slot " +
                        s.acceptancePerSlot.joinToString(", ", "[", "]") { "%.2f".format(it) } +
                        " | %.1f tokens/s | stop ${result.generation.stop}".format(s.tokensPerSecond))
            }
        }
        "batch" -> {
            require(pos.size == 2) { "batch: give BUNDLE and JOBS.jsonl" }
            Engine.open(pos[0], lib).use { engine ->
                for ((n, line) in File(pos[1]).readLines().withIndex()) {
                    if (line.isBlank()) continue
                    @Suppress("UNCHECKED_CAST")
                    val job = Json.parse(line) as? Map<String, Any?> ?: throw IllegalArgumentException("${pos[1]}:${n + 1}: not an object")
                    val settings = GenerationSettings(job.int("draft_len"), job.int("max_new_tokens"), true,
                                                      samplingOf(job.obj("sampling")), job["kv_view"] as? String ?: "hf")
                    val gen = LoopDriver(engine).run(job.ints("prompt_ids"), settings).generation
                    TraceIO.write(File(job.str("trace")), TraceIO.lines(gen, settings, "jvm", engine.info.modelId))
                }
            }
        }
        "bench" -> {
            val extras = LinkedHashMap<String, Any?>(o)
            extras.remove("litert-lib")
            val config = BenchConfig.fromExtras(extras)
            Engine.open(config.bundle, lib).use { engine ->
                val doc = BenchRunner(engine, config, JvmPlatform).run { System.err.println(it) }
                println(Json.write(doc))
            }
        }
        else -> throw IllegalArgumentException("unknown command ${args[0]}; use run, batch or bench")
    }
    return 0
}
