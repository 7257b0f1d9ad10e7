"""The fine-tune scenario: the demo target fine-tuned on a second domain (C: the interpreter's API headers),
the stock drafter's acceptance there, and `edge-mtp train-drafter` restoring it.

    python benchmarks/finetune.py fp32  WORK   # fine-tune, retrain the drafter, PyTorch fp32 acceptance
    python benchmarks/finetune.py quant WORK   # the same pairs as int8 / int4 LiteRT bundles (run after fp32)
    python benchmarks/finetune.py teacher WORK # only the drafters distilled against the fake-quantized target
                                               # (`train-drafter --teacher-quant int8|int4`; quant builds them too)

Each step runs the real command (printed before it runs) and is skipped when its output exists, so a rerun
only measures. Acceptance is the speculative loop's own (greedy, `edge_mtp.train.evaluate`) on held-out
prompts of every category: the demo pair's (code, rewrite, chat, free-form) and the new domain's (c).
Results: WORK/finetune-<mode>.json and Markdown tables on stdout (benchmarks/README.md, "Fine-tuned
target: re-training the drafter").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAIR = ROOT / "src" / "edge_mtp" / "demo_pair"
PY = str(Path(sys.executable))
KS = (1, 2, 3, 4)
NEW_TOKENS = 48
THREADS = "1"
FINETUNE = ["--steps", "300", "--batch", "8", "--lr", "1e-3", "--warmup", "20", "--seed", "0", "--threads", THREADS,
            "--dtype", "bfloat16"]
RETRAIN = ["--steps", "300", "--batch", "8", "--lr", "1e-3", "--warmup", "20", "--draft-len", "3", "--seed", "0",
           "--threads", THREADS, "--dtype", "bfloat16"]


def sh(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def corpus(work: Path) -> Path:
    out = work / "corpus"
    if not out.exists():
        sh([PY, "-m", "edge_mtp.train.demo", "corpus", str(out)])
    return out


def finetuned_target(work: Path) -> Path:
    out = work / "ft-target"
    if not out.exists():
        sh(["/usr/bin/time", "-v", PY, "-m", "edge_mtp.train.demo", "finetune", str(PAIR / "target"),
            str(corpus(work) / "c"), "-o", str(out), *FINETUNE, "--report", str(work / "ft-target.json")])
    return out


def retrained_drafter(work: Path, target: Path, name: str = "ft-drafter", extra: tuple[str, ...] = ()) -> Path:
    out = work / name
    if not out.exists():
        sh(["/usr/bin/time", "-v", str(Path(PY).parent / "edge-mtp"), "train-drafter", "--target", str(target),
            "--init", str(PAIR / "drafter"), "--data", str(corpus(work) / "c"), "-o", str(out),
            "--eval-prompts", str(PAIR / "prompts.json"), *RETRAIN, *extra])
    return out


def prompts() -> dict[str, list[list[int]]]:
    from edge_mtp.runtime.tokenizer import TextCodec

    codec = TextCodec(PAIR / "target")
    return {c: [codec.encode(t) for t in ts] for c, ts in json.loads((PAIR / "prompts.json").read_text()).items()}


def cached(path: Path, make) -> dict:
    """`make()`'s report, kept in `path` so that a rerun (or a second process run beside a long step) only
    measures what is missing."""
    if path.exists():
        return json.loads(path.read_text())
    report = make()
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    return report


def torch_report(work: Path, name: str, target: Path, drafter: Path) -> dict:
    from edge_mtp.model import load_pair
    from edge_mtp.train.evaluate import acceptance_report, torch_backends

    def make() -> dict:
        t, tcfg, d, _ = load_pair(target, drafter, "float32")
        return acceptance_report(torch_backends(t, tcfg, d), prompts(), KS, NEW_TOKENS)

    return cached(work / "reports" / f"fp32-{name}.json", make)


def bundle_report(work: Path, bundle: Path) -> dict:
    from edge_mtp.runtime.litert_backend import LiteRTBackend
    from edge_mtp.train.evaluate import acceptance_report

    def make() -> dict:
        backend = LiteRTBackend(bundle, threads=int(THREADS))
        return acceptance_report(lambda context: backend, prompts(), KS, NEW_TOKENS)

    return cached(work / "reports" / f"{bundle.stem}.json", make)


def table(reports: dict[str, dict], k: int | None = None) -> str:
    """Markdown: one row per category, one column per pair: slot-1 acceptance and tokens/round at K."""
    names = list(reports)
    lines = ["| category | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    categories = [r["category"] for r in next(iter(reports.values()))["rows"] if r["draft_len"] == KS[0]]
    for category in categories:
        cells = []
        for name in names:
            row = next(r for r in reports[name]["rows"] if r["category"] == category and r["draft_len"] == k)
            slots = "/".join(f"{a:.2f}" for a in row["acceptance_per_slot"])
            cells.append(f"{slots} ({row['mean_tokens_per_round']:.2f})")
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_k(reports: dict[str, dict], category: str) -> str:
    names = list(reports)
    lines = [f"| K ({category}) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in KS:
        rows = [next(r for r in rep["rows"] if r["category"] == category and r["draft_len"] == k)
                for rep in reports.values()]
        cells = [f"{row['mean_tokens_per_round']:.2f}" for row in rows]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compact(reports: dict[str, dict]) -> str:
    """The reports as JSON with one line per (category, K) row (the "all" rows last), to keep the file small."""
    parts = []
    for name, r in reports.items():
        head = {k: v for k, v in r.items() if k not in ("rows", "all")}
        rows = ",\n  ".join(json.dumps(row, separators=(",", ":")) for row in r["rows"] + r["all"])
        parts.append(f' {json.dumps(name)}: {{"summary": {json.dumps(head)}, "rows": [\n  {rows}]}}')
    return "{\n" + ",\n".join(parts) + "\n}\n"


def show(reports: dict[str, dict], out: Path) -> None:
    out.write_text(compact(reports))
    for k in KS:
        print(f"\nK = {k}: acceptance per slot (mean tokens per round)\n")
        print(table(reports, k))
    print("\nmean tokens per round on the new domain\n")
    print(per_k(reports, "c"))
    print(f"\nwrote {out}")


def fp32(work: Path, stock_only: bool = False) -> None:
    target = finetuned_target(work)
    reports = {  # the first two need no retrained drafter: run `fp32 --stock-only` beside the retraining
        "stock target + stock drafter": torch_report(work, "stock+stock", PAIR / "target", PAIR / "drafter"),
        "fine-tuned target + stock drafter": torch_report(work, "ft+stock", target, PAIR / "drafter"),
    }
    if stock_only:
        return
    reports["fine-tuned target + retrained drafter"] = torch_report(work, "ft+retrained", target,
                                                                     retrained_drafter(work, target))
    show(reports, work / "finetune-fp32.json")


def teacher_drafters(work: Path, quants: list[str]) -> dict[str, Path]:
    """Per quant mode, the drafter retrained against the target with that mode's weights quantized and
    dequantized (`--teacher-quant`, edge_mtp.train.fakequant): the same run as `retrained_drafter` otherwise."""
    target = finetuned_target(work)
    return {q: retrained_drafter(work, target, f"ft-drafter-tq-{q}", ("--teacher-quant", q)) for q in quants}


def quant(work: Path, quants: list[str]) -> None:
    """int8 / int4 bundles of the fine-tuned target with the stock drafter, the retrained one and the one
    retrained against that quantized target (the exporter's current recipes; rerun after an exporter change
    to refresh the numbers). The `--teacher-quant` drafters come last: they are the ones still to train."""
    target, drafter = finetuned_target(work), retrained_drafter(work, finetuned_target(work))
    pairs = [(q, name, d) for q in quants for name, d in (("stock", PAIR / "drafter"), ("retrained", drafter))]
    pairs += [(q, "retrained-tq", None) for q in quants]
    reports = {}
    for q, name, d in pairs:
        d = d or teacher_drafters(work, [q])[q]
        bundle = work / f"ft-{q}-{name}.litertlm"
        if not bundle.exists():
            sh([str(Path(PY).parent / "edge-export"), "--target", str(target), "--drafter", str(d), "-o", str(bundle),
                "--quant", q, "--draft-len", str(max(KS)), "--prefill", "32,128", "--context", "512"])
        reports[f"{q} {name} drafter"] = bundle_report(work, bundle)
    show(reports, work / "finetune-quant.json")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("fp32", "quant", "teacher"))
    p.add_argument("work", type=Path)
    p.add_argument("--quant", default="int8,int4")
    p.add_argument("--stock-only", action="store_true", help="fp32: only the reports of the stock drafter")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    import torch

    torch.set_num_threads(int(THREADS))
    if args.mode == "fp32":
        fp32(args.work, args.stock_only)
    elif args.mode == "teacher":
        teacher_drafters(args.work, args.quant.split(","))
    else:
        quant(args.work, args.quant.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
