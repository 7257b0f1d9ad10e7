"""How well `--draft-len auto`'s calibrated costs predict what rounds cost in a generation (Python loop).

`auto` decides from a cost table timed before generating (`runtime/draftlen.py: calibrate`). Per prompt,
in turn: a calibration, a plain generation (K = 0) and one at the bundle's K; the calibration's decode,
verify(K+1) and drafter steps are set against the medians of the same calls inside the generations (the
rounds that drafted K). What the policy compares is a K-round against a decode, so the figure of merit is
that ratio, calibrated against measured.

    PYTHONPATH=src .venv/bin/python benchmarks/calibration_fidelity.py demo.litertlm --compare before.py \\
        --json benchmarks/results/issue12/calibration/demo.json

`--compare FILE` also runs another version's `calibrate` (its draftlen.py, e.g. `git show
552d41b:src/edge_mtp/runtime/draftlen.py > before.py`) next to this one, alternating which goes first,
since on a shared VM the same call drifts by 2x within minutes and only interleaved runs compare.
Results: benchmarks/README.md, "Calibration from steady runs".
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

from edge_mtp.bench.prompts import load_prompts
from edge_mtp.quiet import native_logs_off
from edge_mtp.runtime import LoopConfig, generate
from edge_mtp.runtime.draftlen import calibrate
from edge_mtp.runtime.open import open_export
from edge_mtp.runtime.tokenizer import TextCodec


def measured(backend, prompt: list[int], k: int, new: int) -> dict:
    """Medians of the calls of a K = 0 and a K = k generation of `new` tokens."""
    plain = generate(backend, prompt, LoopConfig(draft_len=0, max_new_tokens=new)).rounds[1:]
    drafted = [r for r in generate(backend, prompt, LoopConfig(draft_len=k, max_new_tokens=new)).rounds[1:]
               if len(r.drafts) == k]
    return {"decode_ms": statistics.median(r.ms["verify"] for r in plain),
            "verify_ms": statistics.median(r.ms["verify"] for r in drafted),
            "draft_step_ms": statistics.median(r.ms["draft"] / k for r in drafted)}


def load_calibrate(path: Path):
    """`calibrate` of another draftlen.py (its own module, so its dataclasses resolve)."""
    spec = importlib.util.spec_from_file_location("compared_draftlen", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.calibrate


def round_per_decode(k: int, decode_ms: float, verify_ms: float, draft_step_ms: float) -> float:
    return (k * draft_step_ms + verify_ms) / decode_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--prompts", default="builtin", help="as for `edge-mtp bench --prompts`")
    parser.add_argument("--limit", type=int, default=8, help="the first N prompts")
    parser.add_argument("--repetitions", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--compare", type=Path, help="another version's draftlen.py, calibrated in turn")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    native_logs_off()
    backend = open_export(args.bundle, 2)
    k = int(backend.manifest["draft_len"])
    data = backend.tokenizer_json
    codec = TextCodec.from_json(data if isinstance(data, bytes) else data.encode(), str(args.bundle)) if data else None
    prompts = [p for ps in load_prompts(args.prompts, int(backend.manifest["vocab_size"]),
                                        int(backend.manifest["context"]), codec).values() for p in ps][: args.limit]
    versions = {"calibrate (this checkout)": calibrate}
    if args.compare:
        versions[f"calibrate ({args.compare.name})"] = load_calibrate(args.compare)
    load_before, rows, seconds = os.getloadavg()[0], {name: [] for name in [*versions, "in generations"]}, []
    for rep in range(args.repetitions):
        for prompt in prompts:
            for name, fn in list(versions.items())[:: -1 if rep % 2 else 1]:
                t0 = time.perf_counter()
                costs = fn(backend, k, token=prompt[0])
                seconds.append(time.perf_counter() - t0)
                rows[name].append({"decode_ms": costs.verify_ms[0], "verify_ms": costs.verify_ms[k],
                                   "draft_step_ms": (costs.first_draft_ms + (k - 1) * costs.draft_ms) / k})
            rows["in generations"].append(measured(backend, prompt, k, args.max_new_tokens))
        print(f"repetition {rep + 1}/{args.repetitions}", flush=True)
    for xs in rows.values():
        for x in xs:
            x["k_round_per_decode"] = round_per_decode(k, x["decode_ms"], x["verify_ms"], x["draft_step_ms"])
    med = {name: {key: statistics.median(x[key] for x in xs) for key in xs[0]} for name, xs in rows.items()}
    truth = rows["in generations"]
    print(f"{'':34}{'decode ms':>10}{f'verify({k + 1}) ms':>14}{'draft step ms':>15}{f'K={k} round/decode':>19}"
          f"{'error':>8}{'per prompt':>12}")
    errors = {}
    for name, m in med.items():
        per_prompt = statistics.median(x["k_round_per_decode"] / t["k_round_per_decode"] - 1
                                       for x, t in zip(rows[name], truth))
        errors[name] = {"of_medians": m["k_round_per_decode"] / med["in generations"]["k_round_per_decode"] - 1,
                        "median_per_prompt": per_prompt}
        print(f"{name:34}{m['decode_ms']:>10.3f}{m['verify_ms']:>14.3f}{m['draft_step_ms']:>15.3f}"
              f"{m['k_round_per_decode']:>19.2f}{100 * errors[name]['of_medians']:>+7.1f}%{100 * per_prompt:>+11.1f}%")
    print(f"a calibration takes {statistics.median(seconds):.2f} s (median)")
    if args.json:
        args.json.write_text(json.dumps({"bundle": str(args.bundle), "k": k, "prompts": len(prompts),
                                         "repetitions": args.repetitions, "medians": med, "errors": errors,
                                         "calibration_s": statistics.median(seconds),
                                         "load_avg_1min": [load_before, os.getloadavg()[0]]}, indent=1))


if __name__ == "__main__":
    main()
