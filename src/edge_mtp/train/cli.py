"""`edge-mtp train-drafter` (added to the main parser by `add_parser`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _ks(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated draft lengths, got {text!r}") from None


def add_parser(sub) -> None:
    from edge_mtp.train.drafter import Options

    d = Options(target=Path(), data=(), out=Path())
    p = sub.add_parser("train-drafter", help="self-distil an MTP drafter against a (fine-tuned) Gemma 4 target",
                       description="Train the MTP drafter on the target's own next-token distributions over K "
                                   "chained draft steps (teacher-forced target passes over --data text). Writes "
                                   "OUT_DIR in the Hugging Face layout (Gemma4AssistantForCausalLM); checkpoints "
                                   "go to OUT_DIR.ckpt/ and --resume continues from there.")
    p.add_argument("--target", type=Path, required=True, help="target checkpoint folder (HF layout, with tokenizer.json)")
    p.add_argument("--init", type=Path, help="drafter to start from (default: a fresh one, centroids by k-means)")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="UTF-8 text files (or folders of them)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output drafter folder (must not exist)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch, help="windows per step (every position is a round start)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (warmup, then cosine decay)")
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--draft-len", type=int, default=d.draft_len, help="K: chained draft steps trained")
    p.add_argument("--seq-len", type=int, default=d.seq_len, help="tokens per window")
    p.add_argument("--temperature", type=float, default=d.temperature,
                   help="of the target's distributions (< 1 sharpens them towards greedy)")
    p.add_argument("--teacher-quant", choices=("none", "int8", "int4"), default=d.teacher_quant,
                   help="distil against the target with fake-quantized weights (like an int8/int4 bundle's)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", choices=("cpu", "cuda"), default=d.device)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=d.dtype,
                   help="teacher passes and drafter compute (weights and optimiser stay float32)")
    p.add_argument("--threads", type=int, help="torch CPU threads (results depend on the count)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps; 0 = none")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in OUT_DIR.ckpt/")
    p.add_argument("--recluster", action="store_true",
                   help="--init drafter: re-derive token_ordering and centroids by k-means of the target's embedding")
    p.add_argument("--holdout", type=int, default=d.holdout, help="every N-th window is held out (0 = none)")
    p.add_argument("--eval-prompts", type=Path, help="JSON {category: [prompt text]} for the acceptance report "
                                                     "(default: the starts of held-out windows)")
    p.add_argument("--eval-ks", type=_ks, default=d.eval_ks, help="draft lengths of the acceptance report")
    p.add_argument("--eval-new-tokens", type=int, default=d.eval_new_tokens)
    for flag in ("--hidden", "--intermediate", "--heads", "--centroids", "--top-k"):
        p.add_argument(flag, type=int, help="shape of a fresh drafter (default: scaled from the target)")
    p.set_defaults(func=cmd_train_drafter)


def options(args):
    from edge_mtp.train.drafter import Options

    return Options(
        target=args.target, data=tuple(args.data), out=args.out, init=args.init, steps=args.steps, batch=args.batch,
        lr=args.lr, warmup=args.warmup, draft_len=args.draft_len, seq_len=args.seq_len,
        temperature=args.temperature, teacher_quant=args.teacher_quant, seed=args.seed, device=args.device, dtype=args.dtype, threads=args.threads,
        checkpoint_every=args.checkpoint_every, resume=args.resume, recluster=args.recluster, holdout=args.holdout,
        eval_prompts=args.eval_prompts, eval_ks=args.eval_ks, eval_new_tokens=args.eval_new_tokens,
        hidden=args.hidden, intermediate=args.intermediate, heads=args.heads, centroids=args.centroids,
        top_k=args.top_k)


def cmd_train_drafter(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from edge_mtp.cli import _progress
    from edge_mtp.train.drafter import REPORT, train_drafter
    from edge_mtp.train.evaluate import table_rows

    start = time.perf_counter()
    with _progress() as progress:
        summary = train_drafter(options(args), progress)
    console = Console()
    history = summary["history"]
    if history:
        console.print(f"loss {history[0]['loss']:.4f} (first {history[0]['step']} steps) -> {history[-1]['loss']:.4f}; "
                      f"agreement per chained step {history[-1]['agree']}", markup=False)
    report = summary["acceptance"]
    if report:
        table = Table(title=f"held-out acceptance (greedy, {report['new_tokens']} new tokens per prompt)")
        for column in ("category", "K", "acceptance per slot", "tokens/round"):
            table.add_column(column)
        for row in table_rows(report):
            table.add_row(*row)
        console.print(table)
        console.print(f"speculative output identical to plain greedy: {report['identical_to_plain']}")
    console.print(f"wrote {args.out} ({REPORT}: options, losses, acceptance) in {time.perf_counter() - start:.0f} s",
                  markup=False)
    return 0
