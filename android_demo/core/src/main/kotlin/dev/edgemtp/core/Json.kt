package dev.edgemtp.core

/**
 * A small JSON reader/writer (no dependencies): enough for step-trace lines (docs/trace.md), bench.json and batch files.
 * Values are Kotlin types: null, Boolean, Long (integers), Double (numbers with a fraction or exponent),
 * String, List<Any?>, Map<String, Any?> (insertion order kept).
 */
object Json {
    class ParseException(message: String) : IllegalArgumentException(message)

    fun parse(text: String): Any? {
        val p = Parser(text)
        p.skipSpace()
        val value = p.value()
        p.skipSpace()
        if (p.pos != text.length) throw ParseException("trailing characters at offset ${p.pos}")
        return value
    }

    fun write(value: Any?): String = StringBuilder().also { write(value, it) }.toString()

    fun write(value: Any?, out: StringBuilder) {
        when (value) {
            null -> out.append("null")
            is Boolean -> out.append(value)
            is Int, is Long, is Short, is Byte -> out.append(value.toString())
            is Float -> number(value.toDouble(), out)
            is Double -> number(value, out)
            is String -> string(value, out)
            is IntArray -> list(value.asList(), out)
            is Map<*, *> -> {
                out.append('{')
                var first = true
                for ((k, v) in value) {
                    if (!first) out.append(',')
                    first = false
                    string(k.toString(), out)
                    out.append(':')
                    write(v, out)
                }
                out.append('}')
            }
            is Iterable<*> -> list(value, out)
            is Array<*> -> list(value.asList(), out)
            else -> throw IllegalArgumentException("cannot write ${value::class.simpleName} as JSON")
        }
    }

    private fun list(items: Iterable<*>, out: StringBuilder) {
        out.append('[')
        var first = true
        for (v in items) {
            if (!first) out.append(',')
            first = false
            write(v, out)
        }
        out.append(']')
    }

    /** Doubles as Python writes them: always with a fraction or exponent, NaN/Infinity as Python's json. */
    private fun number(v: Double, out: StringBuilder) {
        when {
            v.isNaN() -> out.append("NaN")
            v == Double.POSITIVE_INFINITY -> out.append("Infinity")
            v == Double.NEGATIVE_INFINITY -> out.append("-Infinity")
            else -> out.append(v.toString()) // round-trips exactly; "1.0E-5" is valid JSON
        }
    }

    private fun string(s: String, out: StringBuilder) {
        out.append('"')
        for (c in s) {
            when {
                c == '"' -> out.append("\\\"")
                c == '\\' -> out.append("\\\\")
                c == '\n' -> out.append("\\n")
                c == '\r' -> out.append("\\r")
                c == '\t' -> out.append("\\t")
                c < ' ' -> out.append("\\u").append(String.format("%04x", c.code))
                else -> out.append(c)
            }
        }
        out.append('"')
    }

    private class Parser(val s: String) {
        var pos = 0

        fun fail(what: String): Nothing = throw ParseException("$what at offset $pos")

        fun skipSpace() {
            while (pos < s.length && s[pos] in " \t\r\n") pos++
        }

        fun value(): Any? {
            if (pos >= s.length) fail("unexpected end of input")
            return when (val c = s[pos]) {
                '{' -> obj()
                '[' -> arr()
                '"' -> str()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                'N' -> literal("NaN", Double.NaN)
                'I' -> literal("Infinity", Double.POSITIVE_INFINITY)
                else -> if (c == '-' || c.isDigit()) num() else fail("unexpected '$c'")
            }
        }

        fun literal(word: String, v: Any?): Any? {
            if (!s.startsWith(word, pos)) fail("expected $word")
            pos += word.length
            return v
        }

        fun obj(): Map<String, Any?> {
            val m = LinkedHashMap<String, Any?>()
            pos++
            skipSpace()
            if (pos < s.length && s[pos] == '}') { pos++; return m }
            while (true) {
                skipSpace()
                if (pos >= s.length || s[pos] != '"') fail("expected a key")
                val k = str()
                skipSpace()
                if (pos >= s.length || s[pos] != ':') fail("expected ':'")
                pos++
                skipSpace()
                m[k] = value()
                skipSpace()
                if (pos >= s.length) fail("unterminated object")
                when (s[pos++]) {
                    ',' -> continue
                    '}' -> return m
                    else -> { pos--; fail("expected ',' or '}'") }
                }
            }
        }

        fun arr(): List<Any?> {
            val a = ArrayList<Any?>()
            pos++
            skipSpace()
            if (pos < s.length && s[pos] == ']') { pos++; return a }
            while (true) {
                skipSpace()
                a.add(value())
                skipSpace()
                if (pos >= s.length) fail("unterminated array")
                when (s[pos++]) {
                    ',' -> continue
                    ']' -> return a
                    else -> { pos--; fail("expected ',' or ']'") }
                }
            }
        }

        fun str(): String {
            val b = StringBuilder()
            pos++
            while (true) {
                if (pos >= s.length) fail("unterminated string")
                val c = s[pos++]
                when {
                    c == '"' -> return b.toString()
                    c == '\\' -> {
                        if (pos >= s.length) fail("unterminated escape")
                        when (val e = s[pos++]) {
                            '"', '\\', '/' -> b.append(e)
                            'b' -> b.append('\b')
                            'f' -> b.append('\u000c')
                            'n' -> b.append('\n')
                            'r' -> b.append('\r')
                            't' -> b.append('\t')
                            'u' -> {
                                if (pos + 4 > s.length) fail("bad \\u escape")
                                b.append(s.substring(pos, pos + 4).toInt(16).toChar())
                                pos += 4
                            }
                            else -> fail("bad escape '\\$e'")
                        }
                    }
                    c < ' ' -> fail("control character in string")
                    else -> b.append(c)
                }
            }
        }

        fun num(): Any {
            val start = pos
            if (s[pos] == '-') {
                pos++
                if (s.startsWith("Infinity", pos)) { pos += 8; return Double.NEGATIVE_INFINITY }
            }
            var fraction = false
            while (pos < s.length) {
                val c = s[pos]
                if (c.isDigit()) pos++
                else if (c == '.' || c == 'e' || c == 'E' || c == '+' || (c == '-' && pos > start)) { fraction = true; pos++ }
                else break
            }
            val text = s.substring(start, pos)
            return try {
                if (fraction) text.toDouble() else text.toLong()
            } catch (e: NumberFormatException) {
                pos = start
                fail("bad number '$text'")
            }
        }
    }
}

/** Typed access to parsed JSON objects, with messages that name the field. */
internal fun Map<String, Any?>.int(key: String): Int =
    (this[key] as? Number)?.toInt() ?: throw Json.ParseException("`$key` missing or not a number")

internal fun Map<String, Any?>.double(key: String): Double =
    (this[key] as? Number)?.toDouble() ?: throw Json.ParseException("`$key` missing or not a number")

internal fun Map<String, Any?>.str(key: String): String =
    this[key] as? String ?: throw Json.ParseException("`$key` missing or not a string")

internal fun Map<String, Any?>.ints(key: String): IntArray =
    (this[key] as? List<*>)?.map { (it as? Number)?.toInt() ?: throw Json.ParseException("`$key` holds a non-number") }
        ?.toIntArray() ?: throw Json.ParseException("`$key` missing or not a list")

@Suppress("UNCHECKED_CAST")
internal fun Map<String, Any?>.obj(key: String): Map<String, Any?> =
    this[key] as? Map<String, Any?> ?: throw Json.ParseException("`$key` missing or not an object")
