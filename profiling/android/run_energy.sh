#!/usr/bin/env bash
# Energy per generated token on an Android phone, MTP off then on (profiling/README.md).
#
#   profiling/android/run_energy.sh BUNDLE.litertlm OUT_DIR [options]
#
# For each mode: reset batterystats, start Perfetto (perfetto_energy.pbtxt), run the demo app's
# benchmark mode, stop Perfetto, then pull bench.json + step traces, the Perfetto trace and
# `dumpsys batterystats -c` (checkin format); with trace_processor_shell on PATH, also export counters.csv.
# Then: python -m edge_mtp.profiling summarize OUT_DIR
#
# Options: --draft-len K (4)  --max-new-tokens N (256)  --repetitions R (3)  --warmup W (1)
#          --prompt-file FILE  --cooldown S (60; seconds between the runs)  --serial SERIAL
# Env:     ADB (adb)  TRACE_PROCESSOR (trace_processor_shell)  PERFETTO (perfetto; e.g. a pushed
#          /data/local/tmp/tracebox perfetto)  PKG (dev.edgemtp.demo)  TIMEOUT_S (1800)
#          SETTLE_S (3; seconds of counters before and after the app runs)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ADB=${ADB:-adb}
TRACE_PROCESSOR=${TRACE_PROCESSOR:-trace_processor_shell}
PERFETTO=${PERFETTO:-perfetto}
PKG=${PKG:-dev.edgemtp.demo}
TIMEOUT_S=${TIMEOUT_S:-1800}
SETTLE_S=${SETTLE_S:-3}
DRAFT_LEN=4
MAX_NEW=256
REPS=3
WARMUP=1
COOLDOWN=60
PROMPT_FILE=""

die() { echo "run_energy.sh: $*" >&2; exit 2; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }

[ $# -ge 2 ] || usage
BUNDLE=$1
OUT=$2
shift 2
while [ $# -gt 0 ]; do
    case "$1" in
        --draft-len) DRAFT_LEN=$2; shift 2 ;;
        --max-new-tokens) MAX_NEW=$2; shift 2 ;;
        --repetitions) REPS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --prompt-file) PROMPT_FILE=$2; shift 2 ;;
        --cooldown) COOLDOWN=$2; shift 2 ;;
        --serial) ADB="$ADB -s $2"; shift 2 ;;
        *) die "unknown option $1" ;;
    esac
done
[ -f "$BUNDLE" ] || die "$BUNDLE: no such bundle file"
for n in "$DRAFT_LEN" "$MAX_NEW" "$REPS" "$WARMUP" "$COOLDOWN"; do
    case "$n" in ''|*[!0-9]*) die "expected a non-negative integer, got '$n'" ;; esac
done

APP_DIR=/sdcard/Android/data/$PKG/files/edge-mtp
CONFIG_ON_DEVICE=/data/misc/perfetto-configs/edge-mtp-energy.pbtxt
TRACE_DIR=/data/misc/perfetto-traces

adb_sh() { $ADB shell "$@"; }

check_device() {
    [ "$($ADB get-state 2>/dev/null)" = device ] || die "no device (adb get-state); connect one or pass --serial"
    adb_sh pm path "$PKG" >/dev/null 2>&1 || die "$PKG is not installed on the device"
    adb_sh setprop persist.traced.enable 1 >/dev/null 2>&1 || true  # Android 9-10 only
}

push_inputs() {
    adb_sh mkdir -p "$APP_DIR" "$APP_DIR/out"
    $ADB push "$BUNDLE" "$APP_DIR/$(basename "$BUNDLE")" >/dev/null
    # Android 12+ perfetto reads configs from /data/misc/perfetto-configs; older ones from anywhere.
    if ! $ADB push "$HERE/perfetto_energy.pbtxt" "$CONFIG_ON_DEVICE" >/dev/null 2>&1; then
        CONFIG_ON_DEVICE=/data/local/tmp/edge-mtp-energy.pbtxt
        $ADB push "$HERE/perfetto_energy.pbtxt" "$CONFIG_ON_DEVICE" >/dev/null
    fi
    if [ -n "$PROMPT_FILE" ]; then
        $ADB push "$PROMPT_FILE" "$APP_DIR/prompt.txt" >/dev/null
    fi
}

device_info() {
    {
        echo "model: $(adb_sh getprop ro.product.model)"
        echo "fingerprint: $(adb_sh getprop ro.build.fingerprint)"
        echo "sdk: $(adb_sh getprop ro.build.version.sdk)"
        echo "--- dumpsys battery"
        adb_sh dumpsys battery
        echo "--- power rails present if non-empty (Pixel ODPM)"
        adb_sh ls /sys/bus/iio/devices 2>/dev/null || true
    } > "$OUT/device.txt"
}

start_perfetto() {  # $1 = remote trace path; prints perfetto's PID
    adb_sh "$PERFETTO" --background --txt -c "$CONFIG_ON_DEVICE" -o "$1" | tr -d '\r' | tail -n 1
}

stop_perfetto() {  # $1 = PID: SIGTERM makes perfetto flush and finish the file
    adb_sh kill -TERM "$1" || true
    for _ in $(seq 1 30); do
        adb_sh kill -0 "$1" >/dev/null 2>&1 || return 0
        sleep 1
    done
    die "perfetto (pid $1) did not stop within 30 s"
}

start_bench() {  # $1 = mtp true|false, $2 = remote result folder
    local prompt_arg=()
    [ -n "$PROMPT_FILE" ] && prompt_arg=(--es prompt_file "$APP_DIR/prompt.txt")
    adb_sh am start -W -S -n "$PKG/.MainActivity" \
        --es bundle "$APP_DIR/$(basename "$BUNDLE")" --ez mtp "$1" --ei draft_len "$DRAFT_LEN" \
        --ei max_new_tokens "$MAX_NEW" --ei repetitions "$REPS" --ei warmup "$WARMUP" \
        ${prompt_arg[@]+"${prompt_arg[@]}"} --es bench_out "$2" --ez exit_when_done true >/dev/null
}

wait_for_result() {  # $1 = remote bench.json (the app renames it into place when done)
    local waited=0
    until adb_sh test -f "$1"; do
        [ "$waited" -lt "$TIMEOUT_S" ] || die "no $1 after $TIMEOUT_S s (see adb logcat -s EdgeMTP)"
        sleep 5
        waited=$((waited + 5))
    done
}

export_counters() {  # $1 = local run folder
    if command -v "$TRACE_PROCESSOR" >/dev/null 2>&1; then
        "$TRACE_PROCESSOR" -q "$HERE/energy_counters.sql" "$1/energy.perfetto-trace" > "$1/counters.csv"
    else
        echo "note: $TRACE_PROCESSOR not found; export later with:" >&2
        echo "  trace_processor_shell -q $HERE/energy_counters.sql $1/energy.perfetto-trace > $1/counters.csv" >&2
    fi
}

run_mode() {  # $1 = off|on
    local mode=$1 mtp=false local_dir="$OUT/mtp_$1" remote_out="$APP_DIR/out/mtp_$1"
    local remote_trace="$TRACE_DIR/edge-mtp-$1.perfetto-trace" pid
    [ "$mode" = on ] && mtp=true
    mkdir -p "$local_dir"
    adb_sh rm -rf "$remote_out" "$remote_trace"
    adb_sh dumpsys batterystats --reset >/dev/null
    pid=$(start_perfetto "$remote_trace")
    case "$pid" in ''|*[!0-9]*) die "perfetto did not start (got '$pid'); see the config notes in perfetto_energy.pbtxt" ;; esac
    sleep "$SETTLE_S"  # first battery / rail samples before the app starts
    echo "MTP $mode: running the benchmark (perfetto pid $pid)" >&2
    start_bench "$mtp" "$remote_out"
    wait_for_result "$remote_out/bench.json"
    sleep "$SETTLE_S"
    stop_perfetto "$pid"
    # `-c` prints the current stats in checkin format; `--checkin` would print an older saved period
    # instead when one exists (BatteryStatsService: "prefer the last complete checkin file").
    adb_sh dumpsys batterystats -c > "$local_dir/batterystats.txt"
    $ADB pull "$remote_out" "$OUT/" >/dev/null  # the remote folder is mtp_$mode too: lands in $local_dir
    $ADB pull "$remote_trace" "$local_dir/energy.perfetto-trace" >/dev/null
    export_counters "$local_dir"
}

restore_battery() { adb_sh dumpsys battery reset >/dev/null 2>&1 || true; }

main() {
    check_device
    mkdir -p "$OUT"
    push_inputs
    device_info
    trap restore_battery EXIT
    # Count as on battery even with USB attached, so batterystats accumulates. The fuel gauge still
    # sees USB power: for real numbers disconnect USB (adb over Wi-Fi) during the runs.
    adb_sh dumpsys battery unplug
    run_mode off
    echo "cooling down for $COOLDOWN s" >&2
    sleep "$COOLDOWN"
    run_mode on
    echo "done: python -m edge_mtp.profiling summarize $OUT" >&2
}

main
