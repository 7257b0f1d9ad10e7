#!/usr/bin/env bash
# Tools the native core needs to build and test: a C11 compiler, make, valgrind. Idempotent; installs
# only what is missing (Debian/Ubuntu apt), then builds native/build/ against the repo's .venv
# libLiteRt.so (from the ai-edge-litert wheel, installed by scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v make >/dev/null || missing+=(make)
command -v valgrind >/dev/null || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
make -s -j2
