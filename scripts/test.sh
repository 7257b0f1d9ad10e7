#!/usr/bin/env bash
# Fresh machine -> install everything and run the whole test suite: the unit tier first (tests/unit:
# building blocks against their oracles, no checkpoints, well under a minute; a failure there stops
# before the tool installs and the tiers that build, distil and export the test pairs), then the rest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the fast tier only; with
# test paths among them (`bash scripts/test.sh tests/test_cli.py`) exactly those run, after the installs.
# The tiers after the unit tier run on $EDGE_MTP_TEST_WORKERS pytest-xdist workers (default 2; 0 = in this
# process), a test file per worker at a time; the session's pairs and exports are built once and shared
# (tests/conftest.py). Most of their time is single-threaded graph conversion, so two workers use both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh              # .venv with edge-mtp and its dev extras
paths=0
for arg in "$@"; do
    if [ -e "${arg%%::*}" ]; then paths=1; fi
done
if [ "$paths" = 0 ]; then
    status=0
    .venv/bin/python -m pytest tests/unit "$@" || status=$?
    if [ "$status" != 0 ] && [ "$status" != 5 ]; then exit "$status"; fi  # 5: the arguments selected no unit test
fi
bash scripts/install_tools.sh      # JDK, JUnit 5, kotlinc, tree-sitter, shellcheck (app layers, scripts)
bash native/scripts/deps.sh        # cc, make, valgrind; builds native/build/edge-mtp-native
# Swift 6 in a cached Debian trixie chroot for the iOS package's `swift test` (~2.5 min and 2.6 GB once,
# under $EDGE_MTP_CACHE); without root it reports why and tests/test_ios_swift.py skips with that reason.
bash ios_demo/scripts/swift_chroot.sh setup || echo "swift chroot unavailable (exit $?); tests/test_ios_swift.py will skip"
workers=(-n "${EDGE_MTP_TEST_WORKERS:-2}" --dist loadfile)
if [ "$paths" = 0 ]; then
    exec .venv/bin/python -m pytest --ignore=tests/unit "${workers[@]}" "$@"
fi
exec .venv/bin/python -m pytest "${workers[@]}" "$@"
