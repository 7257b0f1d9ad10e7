"""What the Python loop spends outside its timed calls: the wall time of whole generations against the sum of
their rounds' timed draft and verify calls, with the round's top list and the sampler's ranking as they are
now and as full sorts of the vocabulary (what they were before 2026-12-07 evening).

Every round records the target's top-5 logits (the trace's `top_logits`), and sampling ranks the logits of
every draft and every verified position. At Gemma's 262144-token vocabulary a full sort costs 32-36 ms,
about what an E2B int4 decode costs, and `edge-mtp bench` did not see it: its round times stop before the
top list is taken. Greedy and sampled (Gemma's top-k 64, top-p 0.95), K = 0 and K = 3, every variant in
turn per repetition; the output tokens must be the same for both rankings (they are exact stand-ins).

    .venv/bin/python benchmarks/loop_overhead.py ~/.cache/edge-mtp/scale/e2b-int4.litertlm \\
        --json benchmarks/results/issue12/loop-overhead/e2b-int4.json

Results: benchmarks/README.md, "The loop's own time".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

import edge_mtp.runtime.loop as loop
import edge_mtp.runtime.sampling as sampling
from edge_mtp.quiet import native_logs_off
from edge_mtp.runtime.open import open_export
from edge_mtp.runtime.sampling import SamplingConfig

PROMPT = [2, 1813, 3108, 148, 3466, 3487, 3395, 1330, 3609, 1616, 3923, 900]
GEMMA_SAMPLING = SamplingConfig(temperature=1.0, top_k=64, top_p=0.95, seed=1)


def sorted_top_logits(row: np.ndarray, k: int = loop.TOP_LOGITS) -> list[list]:
    ids = np.argsort(-row, kind="stable")[:k]
    return [[int(i), float(row[i])] for i in ids]


def sorted_ranking(x: np.ndarray, top_k: int = 0) -> np.ndarray:
    order = np.lexsort((np.arange(x.size), -x))
    return order[:top_k] if top_k else order


RANKINGS = {"sort": (sorted_top_logits, sorted_ranking), "now": (loop.top_logits, sampling.ranked)}


def one(backend, ranking: str, k: int, sampled: bool, new: int) -> dict:
    loop.top_logits, sampling.ranked = RANKINGS[ranking]
    cfg = loop.LoopConfig(draft_len=k, max_new_tokens=new, sampling=GEMMA_SAMPLING if sampled else None)
    start = time.perf_counter()
    gen = loop.generate(backend, PROMPT, cfg)
    wall = time.perf_counter() - start
    timed = sum(r.ms.get("draft", 0.0) + r.ms["verify"] for r in gen.rounds) / 1000.0
    return {"tokens": gen.tokens, "wall_s": wall, "timed_s": timed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export", type=Path, help="a .litertlm bundle or ONNX export")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--verbose", action="store_true", help="keep LiteRT's and onnxruntime's own logs")
    args = parser.parse_args()
    if not args.verbose:
        native_logs_off()

    backend = open_export(args.export, args.threads)
    variants = [(r, k, s) for r in RANKINGS for k in (0, 3) for s in (False, True)]
    runs: dict[tuple, list[dict]] = {v: [] for v in variants}
    for rep in range(args.repetitions + 1):  # the first pass warms up and is not kept
        for v in variants[:: -1 if rep % 2 else 1]:
            result = one(backend, *v, args.max_new_tokens)
            if rep:
                runs[v].append(result)
    rows = []
    for (ranking, k, sampled), results in runs.items():
        tokens = results[0]["tokens"]
        assert all(r["tokens"] == tokens for r in results), "a generation changed between repetitions"
        wall = statistics.median(r["wall_s"] for r in results)
        timed = statistics.median(r["timed_s"] for r in results)
        rows.append({"ranking": ranking, "draft_len": k, "mode": "sample" if sampled else "greedy",
                     "tokens": len(tokens), "wall_s": wall, "timed_s": timed, "wall_tok_s": len(tokens) / wall,
                     "untimed_share": 1.0 - timed / wall})
    for k, sampled in {v[1:] for v in variants}:
        same = runs[("now", k, sampled)][0]["tokens"] == runs[("sort", k, sampled)][0]["tokens"]
        assert same, f"K={k} {'sampled' if sampled else 'greedy'}: the two rankings gave different tokens"
    print(f"{'ranking':8s} {'K':>2s} {'mode':7s} {'tokens':>6s} {'wall s':>8s} {'timed s':>8s} {'wall tok/s':>10s} "
          f"{'untimed':>8s}")
    for r in rows:
        print(f"{r['ranking']:8s} {r['draft_len']:2d} {r['mode']:7s} {r['tokens']:6d} {r['wall_s']:8.3f} "
              f"{r['timed_s']:8.3f} {r['wall_tok_s']:10.2f} {r['untimed_share']:8.1%}")
    print("same tokens with both rankings, every variant")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"export": args.export.name, "max_new_tokens": args.max_new_tokens,
                                         "repetitions": args.repetitions, "threads": args.threads,
                                         "load_average": os.getloadavg(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
