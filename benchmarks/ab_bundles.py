"""Interleaved A/B timing of `.litertlm` bundles, each on the edge-mtp code that exported it.

    .venv/bin/python benchmarks/ab_bundles.py REPS LABEL=SRC:BUNDLE [LABEL=SRC:BUNDLE ...]

Each bundle runs in its own process with SRC (a checkout's `src/`) first on sys.path; one repetition asks
every process in turn for the median of 5 calls of decode (1 row), verify (4 rows) and one drafter step
after a 200-token prefill, so slow phases of a noisy machine hit every side alike. Prints the medians over
the repetitions and their ratios (benchmarks/README.md, "Speed at full size").
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

CALLS = 5
PROMPT = [2, 818, 5279, 529, 7001, 563, 496, 2455, 1003, 236881] * 20


def backend_calls(backend, verify_rows: int = 4) -> dict:
    """{decode, verify, draft: a function timing `count` calls of it, median ms} after a 200-token prefill;
    every call is rolled back to the prompt (also used by perf_profile.py)."""
    from edge_mtp.runtime.views import drafter_views

    n = len(PROMPT)
    carry = backend.prefill(PROMPT).hidden[-1]
    views = drafter_views(0, n - 1, n, backend.sliding_window)
    calls = {"decode": lambda: backend.verify([7], n), "verify": lambda: backend.verify([7] * verify_rows, n),
             "draft": lambda: backend.draft(12, carry, n, views)}

    def timed(call):
        def median_ms(count: int) -> float:
            times = []
            for _ in range(count):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
                backend.rollback(n)
            return statistics.median(times) * 1e3
        return median_ms

    return {name: timed(call) for name, call in calls.items()}


def child(src: str, bundle: str) -> None:
    sys.path.insert(0, src)
    from edge_mtp.runtime.litert_backend import LiteRTBackend

    calls = backend_calls(LiteRTBackend(bundle))
    for _ in sys.stdin:
        print(json.dumps({name: median_ms(CALLS) for name, median_ms in calls.items()}), flush=True)


def main() -> None:
    reps, sides = int(sys.argv[1]), [arg.split("=", 1) for arg in sys.argv[2:]]
    procs = {}
    for label, spec in sides:
        src, bundle = spec.split(":", 1)
        procs[label] = subprocess.Popen([sys.executable, __file__, "--child", src, bundle], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rows = {label: [] for label in procs}
    for _ in range(reps):
        for label, proc in procs.items():
            proc.stdin.write("go\n")
            proc.stdin.flush()
            rows[label].append(json.loads(proc.stdout.readline()))
    for label, runs in rows.items():
        m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(label, {k: round(v, 2) for k, v in m.items()},
              f"v/d {m['verify'] / m['decode']:.3f} dr/d {m['draft'] / m['decode']:.3f}")
    print("load", os.getloadavg())


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
