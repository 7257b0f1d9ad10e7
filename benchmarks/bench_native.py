"""Per-step overhead of the native C loop vs the raw graph time, and the C vs Python loop per round.

For each bundle and K, runs `native/build/edge-mtp-native` (greedy, `--max-new-tokens N`) `--reps`
times and reads its step trace: every decode round records `ms.draft + ms.verify` (the round's wall
time in the C loop) and `ms.graph` (time spent inside `LiteRtRunCompiledModel`, embedder calls
included). Overhead = wall - graph: buffer lock/copy, argmax, drafter views, bookkeeping. The Python
reference loop (`edge_mtp.runtime.litert_backend`, same bundle, same prompt) is timed the same way
for comparison (its trace has no graph time, so only its wall per round). Medians over all decode
rounds of all repetitions.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_native.py BUNDLE [BUNDLE...] --json out.json

`--native LABEL=PATH` (repeatable) times other builds of the C CLI too, interleaved with this checkout's
(`native/build/edge-mtp-native`, label "this") repetition by repetition, so a before/after comparison shares
the machine's state; `--no-python` leaves the Python loop out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from edge_mtp.runtime import LoopConfig, generate
from edge_mtp.runtime.litert_backend import LiteRTBackend
from edge_mtp.runtime.native import find_binary, native_trace


def _native_rounds(binary: Path, bundle: Path, prompt: list[int], k: int, new: int) -> list[dict]:
    os.environ["EDGE_MTP_NATIVE"] = str(binary)  # runtime/native.py's find_binary reads it on every call
    return [x for x in native_trace(bundle, prompt, new, draft_len=k) if x["type"] == "round" and x["index"] > 0]


def _median_row(label: str, bundle: Path, k: int, rounds: list[dict], py_wall: list[float]) -> dict:
    wall = [r["ms"].get("draft", 0.0) + r["ms"]["verify"] for r in rounds]
    graph = [r["ms"]["graph"] for r in rounds]
    over = [w - g for w, g in zip(wall, graph, strict=True)]
    return {
        "native": label, "bundle": bundle.name, "k": k, "rounds": len(rounds),
        "tokens_per_round": sum(len(r["emitted"]) for r in rounds) / len(rounds),
        "c_wall_ms": statistics.median(wall), "c_graph_ms": statistics.median(graph),
        "c_overhead_ms": statistics.median(over),
        "c_overhead_pct": 100.0 * sum(over) / sum(wall),
        "python_wall_ms": statistics.median(py_wall) if py_wall else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--ks", default="0,1,2,3,4")
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--prompt", default="150,1833,1546,1120,4026,1758,981,1228,1254,3102,3993,3477")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--native", action="append", default=[], metavar="LABEL=PATH",
                    help="another build of the C CLI, timed interleaved with this checkout's")
    ap.add_argument("--no-python", action="store_true", help="time the C CLI only")
    args = ap.parse_args()
    prompt = [int(t) for t in args.prompt.split(",")]
    here = find_binary()
    if here is None:
        raise SystemExit("native/build/edge-mtp-native is not built (make -C native)")
    binaries = {"this": here} | {b.split("=", 1)[0]: Path(b.split("=", 1)[1]) for b in args.native}
    results = []
    for bundle in args.bundles:
        for k in (int(x) for x in args.ks.split(",")):
            rounds, py_wall = {label: [] for label in binaries}, []
            for _ in range(args.reps):
                for label, binary in binaries.items():
                    rounds[label] += _native_rounds(binary, bundle, prompt, k, args.new)
                if not args.no_python:
                    gen = generate(LiteRTBackend(bundle), prompt, LoopConfig(draft_len=k, max_new_tokens=args.new))
                    py_wall += [r.ms.get("draft", 0.0) + r.ms["verify"] for r in gen.rounds[1:]]
            for label in binaries:
                row = _median_row(label, bundle, k, rounds[label], py_wall)
                results.append(row)
                python = f"  | Python wall {row['python_wall_ms']:.3f} ms" if py_wall else ""
                print(f"{label:8s} {row['bundle']:24s} K={k}  rounds {row['rounds']:4d}  tok/round "
                      f"{row['tokens_per_round']:.2f}  C wall {row['c_wall_ms']:.3f} ms = graph {row['c_graph_ms']:.3f} "
                      f"+ overhead {row['c_overhead_ms']:.3f} ms ({row['c_overhead_pct']:.1f}%){python}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
