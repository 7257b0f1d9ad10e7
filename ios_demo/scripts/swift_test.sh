#!/usr/bin/env bash
# Build and test ios_demo/EdgeMTPKit with `swift build` + `swift test` inside the trixie chroot of
# swift_chroot.sh. The app (SwiftUI/UIKit/MetricKit do not exist on Linux): every App/Sources file is parsed
# (`swiftc -parse`), and its non-view files are type-checked against EdgeMTPKit and App/LinuxStubs (stand-ins
# with the shapes of the few Apple APIs they call), with -strict-concurrency=complete -warnings-as-errors.
# The chroot is set up on first use (~1.5 min, ~2.6 GB, cached outside the repo).
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
# shellcheck disable=SC2016  # expanded by the shell inside the chroot
exec "$here/swift_chroot.sh" run /bin/bash -ec '
    (cd /repo/ios_demo/App/Sources && swiftc -parse ./*.swift)
    echo "swift_test: App/Sources parse (swiftc -parse)" >&2
    cd /repo/ios_demo/EdgeMTPKit
    s=$(date +%s.%N)
    swift build --scratch-path "$0" -j "$1" --build-tests
    echo "swift_test: build $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $s}") s" >&2
    # the app code outside SwiftUI, type-checked against EdgeMTPKit and Linux stand-ins of Apple APIs
    st=$(mktemp -d)
    for m in os Combine UIKit MetricKit; do
        swiftc -emit-module -parse-as-library -module-name "$m" -I "$st" -o "$st/$m.swiftmodule" "../App/LinuxStubs/$m.swift"
    done
    (cd ../App/Sources && swiftc -typecheck -parse-as-library -strict-concurrency=complete -warnings-as-errors \
        -I "$st" -I "$0/debug/Modules" -Xcc -fmodule-map-file="$0/debug/CEdgeMTP.build/module.modulemap" \
        DemoModel.swift Signposts.swift MetricKitSaver.swift)
    rm -rf "$st"
    echo "swift_test: App/Sources/{DemoModel,Signposts,MetricKitSaver}.swift type-check (stand-ins for Apple APIs)" >&2
    s=$(date +%s.%N)
    swift test --scratch-path "$0" -j "$1" --skip-build "${@:2}"
    echo "swift_test: tests $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $s}") s" >&2
' "$scratch" "$jobs" "$@"
