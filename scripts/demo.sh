#!/usr/bin/env bash
# Fresh machine -> the main job on the built-in default: make the demo target + drafter pair, then
# run speculative generation on it and print acceptance per draft slot.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/edge-mtp demo "$@"
