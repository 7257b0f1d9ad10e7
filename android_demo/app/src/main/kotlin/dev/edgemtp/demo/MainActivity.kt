package dev.edgemtp.demo

import android.app.Activity
import android.content.Intent
import android.graphics.Typeface
import android.net.Uri
import android.os.Bundle
import android.os.Handler
import android.os.Looper
import android.text.InputType
import android.view.View
import android.view.WindowManager
import android.widget.Button
import android.widget.CheckBox
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.SeekBar
import android.widget.Switch
import android.widget.TextView
import dev.edgemtp.core.BenchConfig
import dev.edgemtp.core.BenchRunner
import dev.edgemtp.core.DEFAULT_PROMPT
import dev.edgemtp.core.Engine
import dev.edgemtp.core.GenerationSettings
import dev.edgemtp.core.LiveStats
import dev.edgemtp.core.LoopDriver
import dev.edgemtp.core.NativeException
import dev.edgemtp.core.TraceIO
import java.io.File
import java.util.concurrent.Executors

/**
 * One screen: pick a bundle, a prompt (token ids), MTP on/off, K, max new tokens; run with live
 * tokens/s and acceptance per draft slot; optionally write the step trace. Started with a `bench_out`
 * extra it runs benchmark mode instead (profiling/README.md): warm-up, measured repetitions, traces,
 * bench.json, then finishes when `exit_when_done`.
 */
class MainActivity : Activity() {
    private val worker = Executors.newSingleThreadExecutor()
    private val main = Handler(Looper.getMainLooper())
    private var engine: Engine? = null
    private var enginePath: String? = null
    private var driver: LoopDriver? = null

    private lateinit var bundleField: EditText
    private lateinit var promptField: EditText
    private lateinit var mtpSwitch: Switch
    private lateinit var kLabel: TextView
    private lateinit var kBar: SeekBar
    private lateinit var maxField: EditText
    private lateinit var traceBox: CheckBox
    private lateinit var runButton: Button
    private lateinit var statsView: TextView
    private lateinit var tokensView: TextView

    private val appDir: File get() = File(getExternalFilesDir(null), "edge-mtp")

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        buildUi()
        handle(intent)
    }

    override fun onNewIntent(intent: Intent) {
        super.onNewIntent(intent)
        handle(intent)
    }

    override fun onDestroy() {
        driver?.cancel()
        worker.execute { engine?.close(); engine = null }
        worker.shutdown()
        super.onDestroy()
    }

    private fun handle(intent: Intent?) {
        val extras = intent?.extras ?: return
        @Suppress("DEPRECATION")
        val map = extras.keySet().associateWith { extras.get(it) }
        if (BenchConfig.requested(map)) benchmark(map)
    }

    // ---- UI -------------------------------------------------------------------------------------
    private fun buildUi() {
        val pad = (12 * resources.displayMetrics.density).toInt()
        val column = LinearLayout(this).apply { orientation = LinearLayout.VERTICAL; setPadding(pad, pad, pad, pad) }
        fun label(text: String) = TextView(this).apply { this.text = text }.also { column.addView(it) }

        label("Bundle (.litertlm path)")
        bundleField = EditText(this).apply { setText(File(appDir, "model.litertlm").path); isSingleLine = true }
        column.addView(bundleField)
        column.addView(Button(this).apply {
            text = "Pick bundle…"
            setOnClickListener {
                startActivityForResult(Intent(Intent.ACTION_OPEN_DOCUMENT).apply {
                    addCategory(Intent.CATEGORY_OPENABLE); type = "*/*"
                }, PICK_BUNDLE)
            }
        })
        label("Prompt (token ids, comma separated)")
        promptField = EditText(this).apply { setText(DEFAULT_PROMPT.joinToString(",")) }
        column.addView(promptField)
        mtpSwitch = Switch(this).apply { text = "MTP speculative decoding"; isChecked = true }
        column.addView(mtpSwitch)
        kLabel = label("K (drafts per round): 4")
        kBar = SeekBar(this).apply {
            max = 8; progress = 4
            setOnSeekBarChangeListener(object : SeekBar.OnSeekBarChangeListener {
                override fun onProgressChanged(s: SeekBar?, value: Int, fromUser: Boolean) { kLabel.text = "K (drafts per round): $value" }
                override fun onStartTrackingTouch(s: SeekBar?) {}
                override fun onStopTrackingTouch(s: SeekBar?) {}
            })
        }
        column.addView(kBar)
        mtpSwitch.setOnCheckedChangeListener { _, on -> kBar.isEnabled = on }
        label("Max new tokens")
        maxField = EditText(this).apply { setText("128"); inputType = InputType.TYPE_CLASS_NUMBER }
        column.addView(maxField)
        traceBox = CheckBox(this).apply { text = "Write step trace (edge-mtp/traces/)" }
        column.addView(traceBox)
        runButton = Button(this).apply { text = "Run"; setOnClickListener { onRunClicked() } }
        column.addView(runButton)
        statsView = TextView(this).apply { typeface = Typeface.MONOSPACE }
        column.addView(statsView)
        tokensView = TextView(this).apply { typeface = Typeface.MONOSPACE; setTextIsSelectable(true) }
        column.addView(tokensView)
        setContentView(ScrollView(this).apply { addView(column) })
    }

    @Deprecated("startActivityForResult is enough for a one-screen demo")
    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        super.onActivityResult(requestCode, resultCode, data)
        val uri = data?.data
        if (requestCode == PICK_BUNDLE && resultCode == RESULT_OK && uri != null) copyBundle(uri)
    }

    /** The C core needs a file path: copy the picked document into the app's folder. */
    private fun copyBundle(uri: Uri) {
        statsView.text = "copying bundle…"
        worker.execute {
            val target = File(appDir, "picked.litertlm")
            val result = runCatching {
                appDir.mkdirs()
                contentResolver.openInputStream(uri)!!.use { input -> target.outputStream().use { input.copyTo(it) } }
            }
            main.post {
                if (result.isSuccess) bundleField.setText(target.path) else statsView.text = "copy failed: ${result.exceptionOrNull()?.message}"
            }
        }
    }

    private fun onRunClicked() {
        driver?.let { it.cancel(); return }
        val settings: GenerationSettings
        val prompt: IntArray
        try {
            prompt = GenerationSettings.parsePromptIds(promptField.text.toString())
            settings = GenerationSettings(kBar.progress, maxField.text.toString().toInt(), mtpSwitch.isChecked)
        } catch (e: IllegalArgumentException) {
            statsView.text = "error: ${e.message}"
            return
        }
        val path = bundleField.text.toString()
        val writeTrace = traceBox.isChecked
        runButton.text = "Stop"
        tokensView.text = ""
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
        worker.execute {
            val message = try {
                val e = open(path)
                val d = LoopDriver(e, android.os.SystemClock::elapsedRealtimeNanos).also { driver = it }
                var lastUi = 0L
                val result = d.run(prompt, settings) { s ->
                    val now = android.os.SystemClock.uptimeMillis()
                    if (now - lastUi >= 50) { lastUi = now; main.post { show(s) } } // at most 20 UI updates/s
                }
                main.post { show(result.stats) }
                var note = "stop: ${result.generation.stop}"
                if (writeTrace) {
                    val file = File(appDir, "traces/trace_${System.currentTimeMillis()}.jsonl")
                    TraceIO.write(file, TraceIO.lines(result.generation, settings, "android", e.info.modelId))
                    note += "\ntrace: ${file.path}"
                }
                note
            } catch (e: NativeException) {
                if (e.cancelled) "stopped" else "error: ${e.message}"
            } catch (e: Exception) {
                "error: ${e.message}"
            } finally {
                driver = null
            }
            main.post {
                statsView.append("\n$message")
                runButton.text = "Run"
                window.clearFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
            }
        }
    }

    private fun show(s: LiveStats) {
        val slots = s.acceptancePerSlot.withIndex().joinToString("  ") { (j, a) -> "${j + 1}:%.2f".format(a) }
        statsView.text = "%d tokens  %.1f tok/s (decode %.1f)  round %d\nacceptance %.2f  per slot [%s]\nmean tokens/round %.2f"
            .format(s.generated, s.tokensPerSecond, s.decodeTokensPerSecond, s.round, s.acceptanceRate, slots, s.meanTokensPerRound)
        tokensView.text = s.tokens.joinToString(" ")
    }

    /** Opens (or reuses) the engine on the worker thread. */
    private fun open(path: String): Engine {
        engine?.let { if (enginePath == path) return it; it.close() }
        engine = null
        return Engine.open(path, "libLiteRt.so").also { engine = it; enginePath = path }
    }

    // ---- benchmark mode (profiling/README.md) ---------------------------------------------------
    private fun benchmark(extras: Map<String, Any?>) {
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
        runButton.visibility = View.GONE
        val config = try {
            BenchConfig.fromExtras(extras)
        } catch (e: IllegalArgumentException) {
            statsView.text = "benchmark: bad extras: ${e.message}"
            return
        }
        statsView.text = "benchmark: loading ${config.bundle}"
        val platform = AndroidPlatform(this)
        worker.execute {
            val message = try {
                val doc = BenchRunner(open(config.bundle), config, platform).run { p -> main.post { statsView.text = "benchmark: $p" } }
                "benchmark done: ${doc["tokens_generated"]} tokens in %.2f s -> ${config.benchOut}/bench.json".format(doc["wall_time_s"] as Double)
            } catch (e: Exception) {
                "benchmark failed: ${e.message}" // no bench.json: run_energy.sh times out and reports it
            }
            main.post {
                statsView.text = message
                window.clearFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
                if (config.exitWhenDone) finishAndRemoveTask()
            }
        }
    }

    companion object {
        private const val PICK_BUNDLE = 1
    }
}
