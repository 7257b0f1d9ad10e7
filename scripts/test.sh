#!/usr/bin/env bash
# Fresh machine -> install everything and run the whole test suite (fast and slow tiers).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the fast tier only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh              # .venv with edge-mtp and its dev extras
bash scripts/install_tools.sh      # JDK, JUnit 5, kotlinc, tree-sitter, shellcheck (app layers, scripts)
bash native/scripts/deps.sh        # cc, make, valgrind; builds native/build/edge-mtp-native
# Swift 6 in a cached Debian trixie chroot for the iOS package's `swift test` (~2.5 min and 2.6 GB once,
# under $EDGE_MTP_CACHE); without root it reports why and tests/test_ios_swift.py skips with that reason.
bash ios_demo/scripts/swift_chroot.sh setup || echo "swift chroot unavailable (exit $?); tests/test_ios_swift.py will skip"
exec .venv/bin/python -m pytest "$@"
