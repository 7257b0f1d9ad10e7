package dev.edgemtp.demo

import android.content.Context
import android.os.Build
import android.os.PowerManager
import android.os.SystemClock
import android.os.Trace
import dev.edgemtp.core.BenchPlatform

/** The Android side of benchmark mode: CLOCK_BOOTTIME, android.os.Trace sections, thermal status. */
class AndroidPlatform(context: Context) : BenchPlatform {
    private val power = context.getSystemService(Context.POWER_SERVICE) as PowerManager

    override val platform = "android"
    override val device: String = "${Build.MANUFACTURER} ${Build.MODEL}".trim()
    override val implementation = "android"

    override fun boottimeNs(): Long = SystemClock.elapsedRealtimeNanos()

    override fun thermalStatus(): Int = power.currentThermalStatus

    override fun beginSection(name: String) = Trace.beginSection(name)

    override fun endSection() = Trace.endSection()
}
