package dev.edgemtp.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Test

class JsonTest {
    @Test
    fun parsesPythonJsonDumpsOutput() {
        val v = Json.parse("""{"a":[1,-2,3.5,1e-05,-0.0],"b":{"c":"x\"y\u00e9"},"d":true,"e":null,"f":NaN}""")
        @Suppress("UNCHECKED_CAST") val m = v as Map<String, Any?>
        assertEquals(listOf(1L, -2L, 3.5, 1e-5, -0.0), m["a"])
        assertEquals(mapOf("c" to "x\"yé"), m["b"])
        assertEquals(true, m["d"])
        assertEquals(null, m["e"])
        assertEquals(true, (m["f"] as Double).isNaN())
    }

    @Test
    fun writesWhatItReadsAndDoublesRoundTrip() {
        val values = listOf(5.765227794647217, 0.1, 1e-5, 123456789.125, -3.0, 5.0f.toDouble(), 1.0 / 3)
        val text = Json.write(linkedMapOf("v" to values, "i" to intArrayOf(1, 2), "s" to "a\nb"))
        assertEquals("""{"v":[5.765227794647217,0.1,1.0E-5,1.23456789125E8,-3.0,5.0,0.3333333333333333],"i":[1,2],"s":"a\nb"}""", text)
        @Suppress("UNCHECKED_CAST") val back = Json.parse(text) as Map<String, Any?>
        assertEquals(values, back["v"])
    }

    @Test
    fun rejectsBrokenInput() {
        for (bad in listOf("{\"a\":1", "[1,2", "{\"a\" 1}", "\"abc", "1 2", "", "{\"a\":tru}")) {
            assertThrows(Json.ParseException::class.java) { Json.parse(bad) }
        }
    }
}
