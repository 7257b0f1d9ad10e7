#!/usr/bin/env bash
# Fresh machine -> install everything and run the whole test suite (fast and slow tiers).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the fast tier only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
