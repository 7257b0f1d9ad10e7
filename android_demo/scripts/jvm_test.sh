#!/usr/bin/env bash
# Build and test the JVM layer of the Android demo on a desktop (no Android SDK needed):
#   1. libedge_mtp_jni.so: native/jni/edge_mtp_jni.c + native/src/*.c with gcc and the JDK's jni.h
#      (the same sources the NDK builds for the app);
#   2. android_demo/core (pure Kotlin) with kotlinc 2.4.20 -> core.jar, and its JUnit 5 tests;
#   3. runs the JUnit 5 suite with the console launcher, through the same JNI entry points as the app.
#
# usage: android_demo/scripts/jvm_test.sh [build|test|all]     (default all)
# env:   EDGE_MTP_TEST_BUNDLE  a tiny .litertlm for the tests that run the model (skipped without it)
#        EDGE_MTP_LITERT_LIB   libLiteRt.so (default: the ai-edge-litert wheel of $PYTHON)
#        KOTLINC, JUNIT_CONSOLE, JAVA_HOME, PYTHON, JVM_BUILD (output dir, default android_demo/build/jvm)
# Tools: scripts/install_tools.sh installs kotlinc (npm), JUnit 5 + JDK (apt). Exit 0 = all tests passed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MODE=${1:-all}
TOOLS=${EDGE_MTP_TOOLS:-$ROOT/.tools}
KOTLINC=${KOTLINC:-$TOOLS/kotlin/node_modules/kotlin-compiler/bin/kotlinc}
JUNIT_CONSOLE=${JUNIT_CONSOLE:-/usr/share/java/junit-platform-console-standalone.jar}
JDIR=${JUNIT_DIR:-/usr/share/java}
OUT=${JVM_BUILD:-$ROOT/android_demo/build/jvm}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
CC=${CC:-cc}

die() { echo "jvm_test.sh: $*" >&2; exit 2; }
[ -x "$KOTLINC" ] || die "kotlinc not found at $KOTLINC (run scripts/install_tools.sh)"
[ -f "$JUNIT_CONSOLE" ] || die "JUnit console launcher not found at $JUNIT_CONSOLE (apt-get install junit5)"
if [ -z "${JAVA_HOME:-}" ]; then
    command -v javac >/dev/null || die "no JDK (apt-get install default-jdk-headless)"
    JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")
fi
export JAVA_HOME
[ -f "$JAVA_HOME/include/jni.h" ] || die "no jni.h under $JAVA_HOME/include"
KLIB=$(cd "$(dirname "$KOTLINC")/../lib" && pwd)
if [ -z "${EDGE_MTP_LITERT_LIB:-}" ] && [ -x "$PYTHON" ]; then
    EDGE_MTP_LITERT_LIB=$("$PYTHON" -c 'import ai_edge_litert, pathlib; print(pathlib.Path(ai_edge_litert.__file__).parent / "libLiteRt.so")' 2>/dev/null || true)
fi
export EDGE_MTP_LITERT_LIB=${EDGE_MTP_LITERT_LIB:-libLiteRt.so}

CORE="$ROOT/android_demo/core"
JNI_LIB="$OUT/lib/libedge_mtp_jni.so"
TEST_CP="$KLIB/kotlin-test.jar:$KLIB/kotlin-test-junit5.jar:$JDIR/junit-jupiter-api.jar:$JDIR/apiguardian-api.jar:$JDIR/opentest4j.jar:$JDIR/junit-platform-commons.jar"

# true when $1 is missing or older than any file under the later arguments
stale() {
    local target=$1; shift
    [ -e "$target" ] || return 0
    [ -n "$(find "$@" -type f -newer "$target" -print -quit)" ]
}

build() {
    mkdir -p "$OUT/lib"
    if stale "$JNI_LIB" "$ROOT/native/src" "$ROOT/native/include" "$ROOT/native/jni"; then
        echo "== gcc libedge_mtp_jni.so"
        "$CC" -std=c11 -O2 -g -fPIC -shared -Wall -Wextra -Wpedantic -Wshadow -Werror=implicit-function-declaration \
            -I"$ROOT/native/include" -I"$JAVA_HOME/include" -I"$JAVA_HOME/include/linux" \
            -DEMTP_LITERT_LIB_DEFAULT="\"$EDGE_MTP_LITERT_LIB\"" \
            "$ROOT/native/jni/edge_mtp_jni.c" "$ROOT"/native/src/{bundle,json,loop,sampling,trace,litert}.c \
            -ldl -lm -o "$JNI_LIB"
    fi
    if stale "$OUT/core.jar" "$CORE/src/main"; then
        echo "== kotlinc core (main)"
        rm -f "$OUT/core.jar"
        "$KOTLINC" -nowarn -jvm-target 17 "$CORE/src/main/kotlin" -d "$OUT/core.jar" 2>&1 | grep -v "^OpenJDK.*warning" || true
        [ -f "$OUT/core.jar" ] || die "kotlinc failed (main)"
    fi
    if stale "$OUT/test-classes/.built" "$CORE/src/test" "$OUT/core.jar"; then
        echo "== kotlinc core (test)"
        rm -rf "$OUT/test-classes"
        mkdir -p "$OUT/test-classes"
        "$KOTLINC" -nowarn -jvm-target 17 -cp "$OUT/core.jar:$TEST_CP" "$CORE/src/test/kotlin" -d "$OUT/test-classes" 2>&1 \
            | grep -v "^OpenJDK.*warning" || true
        [ -n "$(find "$OUT/test-classes" -name '*.class' -print -quit)" ] || die "kotlinc failed (test)"
        touch "$OUT/test-classes/.built"
    fi
}

run_tests() {
    echo "== JUnit 5 (bundle: ${EDGE_MTP_TEST_BUNDLE:-none, model tests skipped})"
    java -Djava.library.path="$OUT/lib" -Dedge_mtp.jni="$JNI_LIB" -jar "$JUNIT_CONSOLE" \
        --class-path "$OUT/test-classes:$OUT/core.jar:$KLIB/kotlin-stdlib.jar:$TEST_CP" \
        --scan-class-path "$OUT/test-classes" --disable-banner --details=summary --fail-if-no-tests
}

case "$MODE" in
    build) build ;;
    test) run_tests ;;
    all) build; run_tests ;;
    classpath) echo "$OUT/core.jar:$KLIB/kotlin-stdlib.jar" ;;
    *) die "usage: jvm_test.sh [build|test|all|classpath]" ;;
esac
