#!/usr/bin/env bash
# Copy the MetricKit payloads the demo app saved (Documents/metrickit/*.json, one
# MXMetricPayload.jsonRepresentation() each) into OUT_DIR/metrickit/, and the newest one to
# OUT_DIR/metrickit.json, where `python -m edge_mtp.profiling summarize OUT_DIR` reads it.
# Payloads arrive about once a day (Xcode > Debug > Simulate MetricKit Payloads for a fake one).
#
#   profiling/ios/pull_metrickit.sh DEVICE OUT_DIR
set -euo pipefail

BUNDLE_ID=${BUNDLE_ID:-dev.edgemtp.demo}
[ $# -eq 2 ] || { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }
DEVICE=$1
OUT=$2
mkdir -p "$OUT/metrickit"
xcrun devicectl device copy from --device "$DEVICE" --domain-type appDataContainer \
    --domain-identifier "$BUNDLE_ID" --source Documents/metrickit --destination "$OUT/metrickit" >/dev/null
newest=$(find "$OUT/metrickit" -name '*.json' -type f -print0 | xargs -0 ls -t 2>/dev/null | head -n 1)
[ -n "$newest" ] || { echo "pull_metrickit.sh: no payload yet in Documents/metrickit" >&2; exit 1; }
cp "$newest" "$OUT/metrickit.json"
echo "newest payload: $newest -> $OUT/metrickit.json" >&2
