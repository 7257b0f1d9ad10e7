package dev.edgemtp.core

/**
 * The JNI entry points of the C core (native/jni/edge_mtp_jni.c). The Android app and the desktop JVM
 * tests call exactly these; nothing here depends on android.*. Use [Engine], not these, from app code.
 */
object NativeCore {
    @Volatile private var loaded = false

    /**
     * Loads the JNI library once: `System.loadLibrary("edge_mtp_jni")` (Android: from the APK's
     * jniLibs; desktop: from -Djava.library.path), or the file named by the system property
     * `edge_mtp.jni` / the environment variable `EDGE_MTP_JNI` when set.
     */
    @Synchronized
    fun load() {
        if (loaded) return
        val explicit = System.getProperty("edge_mtp.jni") ?: System.getenv("EDGE_MTP_JNI")
        if (explicit != null) System.load(explicit) else System.loadLibrary("edge_mtp_jni")
        loaded = true
    }

    /** Opens a .litertlm bundle; [litertLib] = path or soname of libLiteRt.so (null: the build default). */
    @JvmStatic external fun nativeOpen(bundle: String, litertLib: String?): Long
    @JvmStatic external fun nativeClose(handle: Long)
    /** [vocab, hidden, context, sliding_window, max_verify, default_draft_len, has_drafter] */
    @JvmStatic external fun nativeInfo(handle: Long): IntArray
    @JvmStatic external fun nativeStopIds(handle: Long): IntArray
    /** 0: the model id written as the trace's `model`, 1: the backend's name. */
    @JvmStatic external fun nativeString(handle: Long, which: Int): String
    /**
     * Runs the C loop. cfg = [draft_len, max_new_tokens, sample (0/1), top_k, kv_view (0 hf, 1 clean)],
     * real = [temperature, top_p]. Throws [NativeException] (code -1 when the listener cancelled).
     */
    @JvmStatic external fun nativeGenerate(
        handle: Long, prompt: IntArray, cfg: IntArray, real: DoubleArray, seed: Long, listener: RoundListener?,
    ): RawGeneration
}

/** An error of the C core: [code] is its EMTP_E* code (2 io, 3 bundle, 4 LiteRT, ...), -1 = cancelled. */
class NativeException(val code: Int, message: String) : RuntimeException(message) {
    val cancelled: Boolean get() = code == CANCELLED

    companion object {
        const val CANCELLED = -1
        const val USAGE = 1
        const val IO = 2
        const val BUNDLE = 3
        const val LITERT = 4
    }
}

/**
 * Called by the C loop after every round (on the generating thread). [generated] counts all tokens so
 * far, exactly; [newTokens] are the ids that became final (each round's bonus token arrives one round
 * later). Return false to cancel the run.
 */
fun interface RoundListener {
    fun onRound(round: Int, generated: Int, drafted: Int, accepted: Int, newTokens: IntArray): Boolean
}

/** The flat arrays the JNI bridge returns; [decode] turns them into a [Generation]. */
class RawGeneration(
    val meta: IntArray, val ids: IntArray, val topValues: FloatArray, val ms: DoubleArray,
    val tokens: IntArray, val stop: String,
) {
    fun decode(prompt: IntArray): Generation {
        val rounds = ArrayList<Round>(meta.size / 7)
        var k = 0
        var t = 0
        for (i in 0 until meta.size / 7) {
            val m = meta.copyOfRange(7 * i, 7 * i + 7)
            val (nd, nt, ne, ntop) = listOf(m[3], m[4], m[5], m[6])
            val drafts = ids.copyOfRange(k, k + nd); k += nd
            val target = ids.copyOfRange(k, k + nt); k += nt
            val emitted = ids.copyOfRange(k, k + ne); k += ne
            val top = (0 until ntop).map { j -> TopLogit(ids[k + j], topValues[t + j]) }
            k += ntop; t += ntop
            val draftMs = ms[3 * i]
            rounds.add(Round(m[0], m[1], drafts, target, m[2], emitted, top,
                             if (draftMs.isNaN()) null else draftMs, ms[3 * i + 1], ms[3 * i + 2]))
        }
        return Generation(prompt, tokens, rounds, stop)
    }
}
