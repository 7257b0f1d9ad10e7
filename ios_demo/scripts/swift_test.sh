#!/usr/bin/env bash
# Build and test ios_demo/EdgeMTPKit with `swift build` + `swift test` (and parse the SwiftUI app's sources
# with `swiftc -parse`: SwiftUI/UIKit/MetricKit do not exist on Linux) inside the trixie chroot of
# swift_chroot.sh (set up on first use: ~1.5 min, ~2.6 GB, cached outside the repo).
#
#   ios_demo/scripts/swift_test.sh [extra `swift test` arguments, e.g. --filter SlotTests]
#
# The parity tests need EDGE_MTP_SWIFT_CASES (a JSON file of cases under EDGE_MTP_CHROOT_WORK, path as
# seen inside the chroot: /data/...; tests/test_ios_swift.py writes it); without it they are skipped.
# Build products go to /var/cache/edgemtpkit/<checkout> inside the chroot, not into the repo.
# Exit codes: as swift_chroot.sh (77 = the chroot cannot be made here), else swift's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
key="$(printf '%s' "$repo" | cksum | cut -d' ' -f1)"
scratch="/var/cache/edgemtpkit/$(basename "$repo")-$key"
jobs="${EDGE_MTP_SWIFT_JOBS:-2}"
"$here/swift_chroot.sh" setup
exec "$here/swift_chroot.sh" run /bin/bash -ec '
    (cd /repo/ios_demo/App/Sources && swiftc -parse *.swift) && echo "swift_test: App/Sources parse (swiftc -parse)" >&2
    cd /repo/ios_demo/EdgeMTPKit
    s=$(date +%s.%N)
    swift build --scratch-path "$0" -j "$1" --build-tests
    echo "swift_test: build $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $s}") s" >&2
    s=$(date +%s.%N)
    swift test --scratch-path "$0" -j "$1" --skip-build "${@:2}"
    echo "swift_test: tests $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $s}") s" >&2
' "$scratch" "$jobs" "$@"
