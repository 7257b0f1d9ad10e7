package dev.edgemtp.core

/** Facts about an opened bundle (the C backend's fields). */
data class BundleInfo(
    val vocabSize: Int, val hiddenSize: Int, val context: Int, val slidingWindow: Int, val maxVerify: Int,
    val defaultDraftLen: Int, val hasDrafter: Boolean, val stopIds: IntArray, val modelId: String,
    val backendName: String,
)

/**
 * An opened .litertlm bundle on the C core (LiteRT CompiledModel). Not thread-safe: one generation at a
 * time (the app runs it on one background thread). Close it to free the models and the K/V cache.
 */
class Engine private constructor(private var handle: Long) : AutoCloseable {
    val info: BundleInfo

    init {
        val i = NativeCore.nativeInfo(handle)
        info = BundleInfo(i[0], i[1], i[2], i[3], i[4], i[5], i[6] != 0, NativeCore.nativeStopIds(handle),
                          NativeCore.nativeString(handle, 0), NativeCore.nativeString(handle, 1))
    }

    /** Runs the speculative loop of the C core; [listener] sees every round (see [RoundListener]). */
    fun generate(prompt: IntArray, settings: GenerationSettings, listener: RoundListener? = null): Generation {
        check(handle != 0L) { "the engine is closed" }
        val s = settings.sampling
        val cfg = intArrayOf(settings.effectiveDraftLen, settings.maxNewTokens, if (s != null) 1 else 0, s?.topK ?: 0,
                             if (settings.kvView == "clean") 1 else 0)
        val real = doubleArrayOf(s?.temperature ?: 1.0, s?.topP ?: 1.0)
        return NativeCore.nativeGenerate(handle, prompt, cfg, real, s?.seed ?: 0L, listener).decode(prompt)
    }

    override fun close() {
        if (handle != 0L) NativeCore.nativeClose(handle)
        handle = 0L
    }

    companion object {
        /** Loads the JNI library if needed and opens [bundle]; [litertLib]: libLiteRt.so path or soname. */
        fun open(bundle: String, litertLib: String? = null): Engine {
            NativeCore.load()
            return Engine(NativeCore.nativeOpen(bundle, litertLib))
        }
    }
}
