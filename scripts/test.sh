#!/usr/bin/env bash
# Fresh machine -> install everything and run the whole test suite (fast and slow tiers).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the fast tier only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh              # .venv with edge-mtp and its dev extras
bash scripts/install_tools.sh      # JDK, JUnit 5, kotlinc, tree-sitter, shellcheck (app layers, scripts)
bash native/scripts/deps.sh        # cc, make, valgrind; builds native/build/edge-mtp-native
exec .venv/bin/python -m pytest "$@"
