#!/usr/bin/env bash
# iOS: os_signpost intervals (and the Power Profiler where Xcode has it) for MTP off then on.
#
#   profiling/ios/record.sh DEVICE BUNDLE.litertlm OUT_DIR [options]
#
# DEVICE is a UDID or name from `xcrun devicectl list devices`. For each mode: launch the demo app
# under `xctrace record` with its benchmark arguments, wait for it to exit, copy its result folder
# (bench.json, step traces) out of the app container, and export the os-signpost-interval table to
# signposts.xml. Then: python -m edge_mtp.profiling summarize OUT_DIR
#
# Options: --draft-len K (4)  --max-new-tokens N (256)  --repetitions R (3)  --warmup W (1)
#          --cooldown S (60)
# Env:     BUNDLE_ID (dev.edgemtp.demo)  TIMEOUT_S (1800)  POWER_PROFILER (0; 1 adds the
#          "Power Profiler" instrument, Xcode 26+, whose tables export from the same trace)
set -euo pipefail

BUNDLE_ID=${BUNDLE_ID:-dev.edgemtp.demo}
TIMEOUT_S=${TIMEOUT_S:-1800}
POWER_PROFILER=${POWER_PROFILER:-0}
DRAFT_LEN=4
MAX_NEW=256
REPS=3
WARMUP=1
COOLDOWN=60
SIGNPOST_XPATH='/trace-toc/run[@number="1"]/data/table[@schema="os-signpost-interval"]'

die() { echo "record.sh: $*" >&2; exit 2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }

[ $# -ge 3 ] || usage
DEVICE=$1
BUNDLE=$2
OUT=$3
shift 3
while [ $# -gt 0 ]; do
    case "$1" in
        --draft-len) DRAFT_LEN=$2; shift 2 ;;
        --max-new-tokens) MAX_NEW=$2; shift 2 ;;
        --repetitions) REPS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --cooldown) COOLDOWN=$2; shift 2 ;;
        *) die "unknown option $1" ;;
    esac
done
[ -f "$BUNDLE" ] || die "$BUNDLE: no such bundle file"
for n in "$DRAFT_LEN" "$MAX_NEW" "$REPS" "$WARMUP" "$COOLDOWN"; do
    case "$n" in ''|*[!0-9]*) die "expected a non-negative integer, got '$n'" ;; esac
done
command -v xcrun >/dev/null 2>&1 || die "xcrun not found: this script runs on a Mac with Xcode"

MODEL_REL="models/$(basename "$BUNDLE")"

container() {  # devicectl arguments for the app's data container
    echo --device "$DEVICE" --domain-type appDataContainer --domain-identifier "$BUNDLE_ID"
}

push_bundle() {
    # shellcheck disable=SC2046  # container() is a list of arguments
    xcrun devicectl device copy to $(container) --source "$BUNDLE" --destination "Documents/$MODEL_REL" >/dev/null
}

record_mode() {  # $1 = off|on
    local mode=$1 mtp=NO dir="$OUT/mtp_$1"
    [ "$mode" = on ] && mtp=YES
    mkdir -p "$dir"
    rm -rf "$dir/energy.trace"
    local instruments=(--instrument os_signpost)
    [ "$POWER_PROFILER" = 1 ] && instruments+=(--instrument "Power Profiler")
    echo "MTP $mode: recording" >&2
    # App arguments land in UserDefaults' argument domain (-key value); paths are relative to Documents.
    xcrun xctrace record --device "$DEVICE" "${instruments[@]}" --time-limit "${TIMEOUT_S}s" \
        --output "$dir/energy.trace" --no-prompt --launch -- "$BUNDLE_ID" \
        -bundle "$MODEL_REL" -mtp "$mtp" -draft_len "$DRAFT_LEN" -max_new_tokens "$MAX_NEW" \
        -repetitions "$REPS" -warmup "$WARMUP" -bench_out "bench/mtp_$mode" -exit_when_done YES
    # shellcheck disable=SC2046
    xcrun devicectl device copy from $(container) --source "Documents/bench/mtp_$mode" --destination "$dir" >/dev/null \
        || die "no Documents/bench/mtp_$mode in the app container: did the benchmark finish?"
    xcrun xctrace export --input "$dir/energy.trace" --xpath "$SIGNPOST_XPATH" --output "$dir/signposts.xml"
    xcrun xctrace export --input "$dir/energy.trace" --toc --output "$dir/toc.xml"  # lists every table
}

main() {
    mkdir -p "$OUT"
    push_bundle
    record_mode off
    echo "cooling down for $COOLDOWN s" >&2
    sleep "$COOLDOWN"
    record_mode on
    echo "done: python -m edge_mtp.profiling summarize $OUT" >&2
}

main
