#!/usr/bin/env bash
# Tools for the app layers' checks (idempotent; each step is skipped when its tool is already there):
#   * JDK + JUnit 5 (apt: default-jdk-headless, junit5) -> javac, jni.h, junit-platform-console-standalone.jar
#   * shellcheck (apt) for the profiling scripts' lint (tests/test_profiling.py)
#   * kotlinc 2.4.20 (npm package kotlin-compiler, the JetBrains distribution) -> .tools/kotlin/
#   * tree-sitter 0.26.1 + Kotlin/Swift grammars (pip --target) -> .tools/python/ (tests/test_app_syntax.py)
# usage: bash scripts/install_tools.sh [--no-apt]        env: EDGE_MTP_TOOLS (default .tools), PYTHON
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${EDGE_MTP_TOOLS:-$ROOT/.tools}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
KOTLIN_VERSION=2.4.20
mkdir -p "$TOOLS"

if [ "${1:-}" != "--no-apt" ]; then
    need=()
    command -v javac >/dev/null 2>&1 || need+=(default-jdk-headless)
    [ -f /usr/share/java/junit-platform-console-standalone.jar ] || need+=(junit5)
    command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
    command -v npm >/dev/null 2>&1 || need+=(npm)
    command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
    if [ ${#need[@]} -gt 0 ]; then
        SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
        echo "install_tools: apt-get install ${need[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi

KOTLINC="$TOOLS/kotlin/node_modules/kotlin-compiler/bin/kotlinc"
if ! { [ -x "$KOTLINC" ] && grep -q "\"version\": \"$KOTLIN_VERSION\"" "$TOOLS/kotlin/node_modules/kotlin-compiler/package.json" 2>/dev/null; }; then
    echo "install_tools: npm install kotlin-compiler@$KOTLIN_VERSION -> $TOOLS/kotlin"
    mkdir -p "$TOOLS/kotlin"
    npm install --no-audit --no-fund --silent --prefix "$TOOLS/kotlin" "kotlin-compiler@$KOTLIN_VERSION"
    chmod +x "$KOTLINC"
fi

if ! PYTHONPATH="$TOOLS/python" "$PYTHON" -c "import tree_sitter, tree_sitter_kotlin, tree_sitter_swift" 2>/dev/null; then
    echo "install_tools: pip install tree-sitter -> $TOOLS/python"
    "$PYTHON" -m pip install -q --target "$TOOLS/python" \
        tree-sitter==0.26.1 tree-sitter-kotlin==1.1.0 tree-sitter-swift==0.7.4
fi
echo "install_tools: kotlinc $("$KOTLINC" -version 2>&1 | grep -o 'kotlinc-jvm [0-9.]*'), $(javac -version 2>&1), junit5, tree-sitter ok"
