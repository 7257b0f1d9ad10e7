#!/usr/bin/env bash
# Fresh machine -> the main job on the built-in default: the shipped trained demo pair (exported once), then
# run speculative generation on it and print acceptance per draft slot.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/edge-mtp demo "$@"
