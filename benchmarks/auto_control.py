"""How far one `--draft-len auto` measurement can be trusted: K = 0 against three `auto` runs of the C core,
one of them a control that does exactly K = 0's work.

`auto` with costs under which drafting can never pay (a verify of two tokens costs more than two decodes)
never calls the drafter, not even to probe, so it decodes like K = 0 through the same code; what separates
the two is the machine. Next to it: `auto` calibrating its own costs (what `bench` runs) and `auto` with
fixed realistic costs (probes, no calibration). Every variant runs once per repetition, in turn (reversed
every other repetition); each run is its own process, as in `bench --backend native`. Prints each variant's
decode time against K = 0's (all rounds summed) and the median decode round.

    PYTHONPATH=src .venv/bin/python benchmarks/auto_control.py CACHE/e2b-int4.litertlm --repetitions 6 \\
        --costs 2.9,2.6,62,87,87,90

Results: benchmarks/README.md, "The loop's own time".
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from edge_mtp.runtime.draftlen import DraftCosts, parse_costs
from edge_mtp.runtime.native import native_trace

PROMPT = [2, 818, 5279, 529, 7001, 563, 496, 2455, 1003, 236881]


def never_pays(costs: DraftCosts) -> DraftCosts:
    """The same costs with every verify of more than one token dearer than that many decodes."""
    decode = costs.verify_ms[0]
    return DraftCosts(costs.first_draft_ms, costs.draft_ms,
                      (decode, *(decode * (t + 2) * 10 for t in range(len(costs.verify_ms) - 1))))


def round_ms(r: dict) -> float:
    return r["ms"].get("draft", 0.0) + r["ms"]["verify"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--costs", required=True, help="F,D,V1..V(K+1) as for --draft-costs: the given-costs run")
    parser.add_argument("--repetitions", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    costs = parse_costs(args.costs)
    variants = {"K=0": ("0", None), "auto, never pays (control)": ("auto", never_pays(costs)),
                "auto, calibrated": ("auto", None), "auto, given costs": ("auto", costs)}
    rounds: dict[str, list[dict]] = {v: [] for v in variants}
    for rep in range(args.repetitions):
        for name in list(variants)[:: -1 if rep % 2 else 1]:
            k, given = variants[name]
            lines = native_trace(args.bundle, PROMPT, args.max_new_tokens, draft_len=k, draft_costs=given)
            rounds[name] += [x for x in lines if x.get("type") == "round" and x["index"] > 0]
            print(f"repetition {rep + 1}/{args.repetitions}: {name}", flush=True)
    base = sum(map(round_ms, rounds["K=0"]))
    rows = []
    for name, rs in rounds.items():
        rows.append({"variant": name, "rounds": len(rs), "time_vs_k0": sum(map(round_ms, rs)) / base,
                     "median_round_ms": statistics.median(map(round_ms, rs)),
                     "probes": sum("probe" in r for r in rs), "drafting_rounds": sum(bool(r["drafts"]) for r in rs)})
    print(f"{'variant':28s} {'rounds':>6s} {'time / K=0':>10s} {'tok/s vs K=0':>12s} {'median ms':>9s} {'probes':>6s}")
    for r in rows:
        print(f"{r['variant']:28s} {r['rounds']:6d} {r['time_vs_k0']:10.3f} {1 / r['time_vs_k0']:12.3f} "
              f"{r['median_round_ms']:9.2f} {r['probes']:6d}")
    if args.json:
        args.json.write_text(json.dumps({"bundle": args.bundle.name, "repetitions": args.repetitions,
                                         "max_new_tokens": args.max_new_tokens, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
