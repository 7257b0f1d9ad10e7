"""`edge-mtp train-drafter` (a click command, added to the `edge-mtp` group by `edge_mtp.cli`)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from edge_mtp.console import CONTEXT, DRAFT_LENS, OUTPUT, progress
from edge_mtp.train.options import Options

PATH = click.Path(path_type=Path)
SHAPE = ("hidden", "intermediate", "heads", "centroids", "top_k")


D = Options(target=Path(), data=(), out=Path())  # the defaults shown in --help


@click.command("train-drafter", context_settings=CONTEXT)
@click.option("--target", type=PATH, required=True, help="target checkpoint folder (HF layout, with tokenizer.json)")
@click.option("--init", type=PATH, default=None, show_default="a fresh drafter, centroids by k-means",
              help="drafter folder to start from (it must be made for this target's shape)")
@click.option("--data", type=PATH, multiple=True, required=True,
              help="UTF-8 text file or folder of them (repeat the option for several)")
@click.option("-o", "--out", type=OUTPUT, required=True, help="output drafter folder (must not exist, its folder must)")
@click.option("--steps", metavar="N", type=click.IntRange(min=1), default=D.steps, help="optimiser steps")
@click.option("--batch", metavar="N", type=click.IntRange(min=1), default=D.batch,
              help="windows per step (every position of a window is a round start)")
@click.option("--lr", type=float, default=D.lr, help="peak learning rate (linear warmup, then cosine decay)")
@click.option("--warmup", metavar="N", type=click.IntRange(min=0), default=D.warmup, help="warmup steps")
@click.option("--draft-len", metavar="K", type=click.IntRange(min=1), default=D.draft_len,
              help="K: chained draft steps trained")
@click.option("--seq-len", metavar="N", type=click.IntRange(min=3), default=D.seq_len, help="tokens per window")
@click.option("--temperature", type=float, default=D.temperature,
              help="of the target's distributions (< 1 sharpens them towards greedy)")
@click.option("--teacher-quant", type=click.Choice(("none", "int8", "int4")), default=D.teacher_quant,
              help="distil against the target with fake-quantized weights (like an int8/int4 export's)")
@click.option("--seed", metavar="N", type=click.IntRange(min=0), default=D.seed,
              help="seed of the fresh drafter, the k-means and the batch order")
@click.option("--device", type=click.Choice(("cpu", "cuda")), default=D.device, help="where the passes run")
@click.option("--dtype", type=click.Choice(("float32", "bfloat16")), default=D.dtype,
              help="teacher passes and drafter compute (weights and optimiser stay float32)")
@click.option("--weights-dtype", type=click.Choice(("float32", "bfloat16")), default=None,
              show_default="the --init drafter's, else float32",
              help="dtype of the written weights (the held-out report runs on them, rounded)")
@click.option("--threads", metavar="N", type=click.IntRange(min=1), default=None, show_default="torch's",
              help="torch CPU threads (results depend on the count)")
@click.option("--checkpoint-every", metavar="N", type=click.IntRange(min=0), default=D.checkpoint_every,
              help="steps between checkpoints in OUT.ckpt/; 0 = none")
@click.option("--resume", is_flag=True, help="continue the interrupted run in OUT.ckpt/ (the same options)")
@click.option("--recluster", is_flag=True,
              help="--init drafter: re-derive token_ordering and centroids by k-means of the target's embedding")
@click.option("--holdout", metavar="N", type=click.IntRange(min=0), default=D.holdout,
              help="every N-th window is held out (0 = none)")
@click.option("--eval-prompts", type=PATH, default=None, show_default="the starts of held-out windows",
              help="JSON {category: [prompt text]} for the acceptance report")
@click.option("--eval-ks", type=DRAFT_LENS, default=",".join(map(str, D.eval_ks)),
              help="draft lengths of the acceptance report")
@click.option("--eval-new-tokens", metavar="N", type=click.IntRange(min=1), default=D.eval_new_tokens,
              help="greedy tokens generated per prompt in the acceptance report")
@click.option("--hidden", metavar="N", type=click.IntRange(min=1), default=None, show_default="scaled from the target",
              help="a fresh drafter's hidden size")
@click.option("--intermediate", metavar="N", type=click.IntRange(min=1), default=None,
              show_default="scaled from the target", help="a fresh drafter's MLP size")
@click.option("--heads", metavar="N", type=click.IntRange(min=1), default=None, show_default="scaled from the target",
              help="a fresh drafter's attention heads")
@click.option("--centroids", metavar="N", type=click.IntRange(min=1), default=None,
              show_default="scaled from the target", help="a fresh drafter's centroid-head clusters")
@click.option("--top-k", metavar="N", type=click.IntRange(min=1), default=None, show_default="scaled from the target",
              help="a fresh drafter's clusters scored per draft step")
def train_drafter_cmd(**opts) -> int:
    """Self-distil the MTP drafter against a (fine-tuned) Gemma 4 target: K chained draft steps trained on
    the target's own next-token distributions over --data text (teacher-forced target passes). Writes OUT in
    the Hugging Face layout (Gemma4AssistantForCausalLM) with a held-out acceptance report
    (OUT/train_drafter.json); checkpoints go to OUT.ckpt/ and --resume continues from there."""
    from rich.console import Console
    from rich.table import Table

    from edge_mtp.train.drafter import REPORT, train_drafter
    from edge_mtp.train.evaluate import table_rows

    start = time.perf_counter()
    o = Options(**{**opts, "data": tuple(opts["data"]), "eval_ks": tuple(opts["eval_ks"])})
    with progress() as bars:
        summary = train_drafter(o, bars)
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
    console.print(f"wrote {o.out} ({REPORT}: options, losses, acceptance) in {time.perf_counter() - start:.0f} s",
                  markup=False)
    return 0
