"""Build the demo pair: `python -m edge_mtp.train.demo {corpus,target} ...` (scripts/make_demo_pair.sh runs
every step, the drafter being trained by `edge-mtp train-drafter`).

    corpus DIR            the training text (python/*.txt, the fine-tune domain c/headers.txt), the held-out
                          prompts (prompts.json) and where the text came from (manifest.json)
    target CORPUS -o DIR  a BPE tokenizer trained on CORPUS/python, the `demo` preset's target written by
                          transformers (config files), then trained from scratch on CORPUS/python
    finetune TARGET DATA... -o DIR
                          continue training a target on other text (the fine-tune scenario)

Every step is deterministic for its seed and thread count (`--threads`): float sums depend on the number
of threads, so rebuilding with another count gives a slightly different pair.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from edge_mtp.atomic import atomic_write
from edge_mtp.errors import EdgeMTPError
from edge_mtp.train import corpus
from edge_mtp.train.lm import LMOptions, train_target

PRESET = "demo"
KINDS = ("code", "chat", "rewrite", "docs")


def write_corpus(out: Path) -> dict:
    """Training text per kind, the fine-tune domain, held-out prompts and the manifest, under `out`."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise EdgeMTPError(f"{out} already exists and is not empty; choose a new one")
    (out / "python").mkdir(parents=True, exist_ok=True)
    (out / "c").mkdir(exist_ok=True)
    docs = corpus.python_corpus()
    sizes = {}
    for kind in KINDS:
        with atomic_write(out / "python" / f"{kind}.txt") as f:
            f.write("".join(docs[kind]))
        sizes[kind] = sum(map(len, docs[kind]))
    with atomic_write(out / "c" / "headers.txt") as f:
        f.write("".join(corpus.c_corpus()))
    with atomic_write(out / "prompts.json") as f:
        json.dump(corpus.heldout_prompts(), f, indent=1)
    manifest = {**corpus.manifest(), "chars": sizes}
    with atomic_write(out / "manifest.json") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def _python_files(corpus_dir: Path) -> list[Path]:
    return [Path(corpus_dir) / "python" / f"{kind}.txt" for kind in KINDS]


def initial_target(corpus_dir: Path, out: Path, vocab_size: int) -> None:
    """The `demo` preset's target saved by transformers (config files) with a tokenizer trained on the corpus."""
    from edge_mtp.checkpoints.make import _no_tqdm, build_target
    from edge_mtp.checkpoints.presets import PRESETS
    from edge_mtp.checkpoints.tokenizer import save_tokenizer
    from edge_mtp.train.data import read_text
    from edge_mtp.train.tokenizer import train_tokenizer

    preset = PRESETS[PRESET]
    tokenizer = train_tokenizer([read_text(f) for f in _python_files(corpus_dir)], vocab_size)
    model = build_target(preset, seed=0)
    model.generation_config.eos_token_id = [1, 106]
    model.generation_config.bos_token_id, model.generation_config.pad_token_id = 2, 0
    with _no_tqdm():
        model.save_pretrained(out)
    save_tokenizer(tokenizer, Path(out) / "tokenizer.json")


def make_target(corpus_dir: Path, out: Path, o: LMOptions, progress=None) -> dict:
    from edge_mtp.checkpoints.presets import PRESETS

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise EdgeMTPError(f"{out} already exists and is not empty; choose a new one")
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        init = Path(tmp) / "init"
        initial_target(corpus_dir, init, PRESETS[PRESET].tokenizer_vocab_size)
        return train_target(init, _python_files(corpus_dir), out, o, progress)


def _lm_options(args, **defaults) -> LMOptions:
    names = ("steps", "batch", "lr", "warmup", "seq_len", "seed", "dtype")
    fields = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    return LMOptions(**{**defaults, **fields})


def main(argv: list[str] | None = None) -> int:
    from edge_mtp.console import progress as progress_bars

    parser = argparse.ArgumentParser(prog="python -m edge_mtp.train.demo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("corpus", help="write the training text, held-out prompts and manifest")
    c.add_argument("out", type=Path)
    for name in ("target", "finetune"):
        p = sub.add_parser(name, help="train the demo target" if name == "target" else "fine-tune a target")
        if name == "target":
            p.add_argument("corpus", type=Path)
        else:
            p.add_argument("source", type=Path, help="the target folder to continue from")
            p.add_argument("data", type=Path, nargs="+")
        p.add_argument("-o", "--out", type=Path, required=True)
        for flag, kind in (("--steps", int), ("--batch", int), ("--lr", float), ("--warmup", int),
                           ("--seq-len", int), ("--seed", int)):
            p.add_argument(flag, type=kind)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--dtype", choices=("float32", "bfloat16"), help="matmul precision (bfloat16: autocast)")
        p.add_argument("--report", type=Path, help="write the losses and options here (JSON)")
    args = parser.parse_args(argv)

    def run(args) -> int:
        if args.command == "corpus":
            print(json.dumps(write_corpus(args.out), indent=1))
            return 0
        torch.set_num_threads(args.threads)
        with progress_bars() as progress:
            if args.command == "target":
                result = make_target(args.corpus, args.out, _lm_options(args), progress)
            else:
                o = _lm_options(args, fresh=False, steps=400, lr=1e-3, warmup=20, weight_decay=0.0)
                result = train_target(args.source, args.data, args.out, o, progress, label="fine-tune target")
        result["threads"] = args.threads
        if args.report:
            with atomic_write(args.report) as f:
                json.dump(result, f, indent=1)
        print(json.dumps({k: v for k, v in result.items() if k != "history"}))
        return 0

    try:
        return run(args)
    except EdgeMTPError as e:  # the CLI's rule: one line, exit 2
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
