"""Median over several `bench_litert.py --json` runs of the per-run medians, per quant, side and graph,
with the ratio of each side to export_hf's ("theirs") and the load average of each run.

    .venv/bin/python benchmarks/median_of_runs.py run2.json run3.json run4.json
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

GRAPHS = ("decode", "verify", "drafter")


def main(paths: list[str]) -> int:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    sides = list(dict.fromkeys(s for r in runs for q in r["ms"] for s in r["ms"][q]))
    print("| quant | graph | " + " | ".join(f"{s} ms" for s in sides) + " | "
          + " | ".join(f"{s}/theirs" for s in sides if s != "theirs") + " |")
    print("|---" * (2 + 2 * len(sides) - 1) + "|")
    for quant in dict.fromkeys(q for r in runs for q in r["ms"]):
        for graph in GRAPHS:
            med = {}
            for side in sides:
                values = [r["ms"][quant][side][graph] for r in runs
                          if graph in r["ms"].get(quant, {}).get(side, {})]
                med[side] = statistics.median(values) if values else None
            theirs = med.get("theirs")
            cells = [f"{med[s]:.2f}" if med[s] is not None else "n/a" for s in sides]
            ratios = [f"{med[s] / theirs:.2f}" if med[s] is not None and theirs else "n/a"
                      for s in sides if s != "theirs"]
            print(f"| {quant} | {graph} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    for p, r in zip(paths, runs, strict=True):
        m = r["machine"]
        print(f"{Path(p).name}: load average {' '.join(m['loadavg_start'])} at start, "
              f"{' '.join(m.get('loadavg_end', []))} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
