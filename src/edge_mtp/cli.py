"""Command line: `edge-mtp run | make-checkpoint | demo` and `edge-export`.

Every user error is one line on stderr and exit code 2; nothing is written on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from edge_mtp.errors import EdgeMTPError

DEMO_PRESET = "tiny-e2b"
DEMO_DISTILL_STEPS = 300


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def _prompt_ids(text: str) -> list[int]:
    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated token ids, got {text!r}") from None
    return ids


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", required=True, type=Path, help="target checkpoint folder (HF layout)")
    p.add_argument("--drafter", required=True, type=Path, help="MTP drafter checkpoint folder (HF layout)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="prompt text (needs tokenizer.json in the target folder)")
    src.add_argument("--prompt-ids", type=_prompt_ids, help="prompt as comma-separated token ids")
    p.add_argument("--draft-len", type=_positive, default=None,
                   help="drafts per round K (default: the drafter's num_assistant_tokens, else 4); 0 = plain")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=_positive, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=_positive, default=0)
    p.add_argument("--kv-view", choices=("hf", "clean"), default="hf",
                   help="drafter K/V view: transformers-exact (with stale slots) or accepted tokens only")
    p.add_argument("--context", type=int, default=None, help="K/V cache slots (default: just enough)")
    p.add_argument("--prefill-chunk", type=int, default=None, help="prefill in chunks of this many tokens")
    p.add_argument("--dtype", default="auto", help="auto (checkpoint's), float32, bfloat16, float16")
    p.add_argument("--dense-head", action="store_true", help="drafter: full-vocab head instead of centroids")
    p.add_argument("--trace", type=Path, help="write the edge-mtp-trace/1 step trace here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _loop_config(args, default_k: int | None):
    from edge_mtp.runtime import LoopConfig, SamplingConfig

    if args.temperature < 0 or not 0 < args.top_p <= 1:
        raise EdgeMTPError("--temperature must be >= 0 and --top-p in (0, 1]")
    sampling = None
    if args.temperature > 0:
        sampling = SamplingConfig(args.temperature, args.top_k, args.top_p, args.seed)
    k = args.draft_len if args.draft_len is not None else (default_k if default_k is not None else 4)
    return LoopConfig(draft_len=k, max_new_tokens=args.max_new_tokens, sampling=sampling, kv_view=args.kv_view)


def summary_line(summary: dict) -> str:
    slots = ", ".join(f"{a:.2f}" for a in summary["accepted_per_position"]) or "-"
    return (f"tokens {len(summary['tokens'])} | rounds {summary['rounds']} | acceptance per draft slot [{slots}] "
            f"| mean tokens/round {summary['mean_emitted_per_round']:.2f} | stop {summary['stop']}")


def cmd_run(args) -> int:
    from edge_mtp.model import load_drafter_config, load_target_config
    from edge_mtp.runtime import generate, trace_lines, write_trace
    from edge_mtp.runtime.tokenizer import TextCodec
    from edge_mtp.runtime.torch_backend import open_torch_backend

    tcfg, dcfg = load_target_config(args.target), load_drafter_config(args.drafter)
    codec = TextCodec(args.target) if args.prompt is not None else None
    prompt = codec.encode(args.prompt) if codec else args.prompt_ids
    if not prompt:
        raise EdgeMTPError("the prompt is empty; give at least one token id")
    if max(prompt) >= tcfg.text.vocab_size:
        raise EdgeMTPError(f"--prompt-ids: id {max(prompt)} is outside the vocabulary of {tcfg.text.vocab_size}")
    cfg = _loop_config(args, dcfg.num_assistant_tokens)
    context = args.context or len(prompt) + cfg.max_new_tokens + cfg.draft_len + 1
    backend, _, _ = open_torch_backend(args.target, args.drafter, context, args.dtype, args.dense_head,
                                       args.prefill_chunk)
    gen = generate(backend, prompt, cfg)
    lines = trace_lines(gen, cfg, backend.name, backend.model_id)
    if args.trace:
        write_trace(args.trace, lines)
    summary = lines[-1]
    if args.json:
        text = codec.decode(gen.tokens) if codec else None
        print(json.dumps({"prompt_ids": prompt, "tokens": gen.tokens, "text": text, "summary": summary}))
    else:
        print(codec.decode(gen.tokens) if codec else ",".join(map(str, gen.tokens)))
        print(summary_line(summary))
    return 0


def _progress():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), transient=False)


def cmd_make_checkpoint(args) -> int:
    from edge_mtp.checkpoints.make import make_checkpoint

    with _progress() as progress:
        target, drafter = make_checkpoint(args.preset, args.out_dir, seed=args.seed,
                                          distill_steps=args.distill_steps, progress=progress)
    print(f"target  {target}\ndrafter {drafter}")
    return 0


def demo_dir() -> Path:
    root = Path(os.environ.get("EDGE_MTP_CACHE", Path.home() / ".cache" / "edge-mtp"))
    return root / f"demo-{DEMO_PRESET}-seed0-distill{DEMO_DISTILL_STEPS}"


def cmd_demo(args) -> int:
    """The built-in default job: make the demo pair once, then speculative vs plain generation on it."""
    from edge_mtp.runtime import LoopConfig, generate, trace_lines
    from edge_mtp.runtime.torch_backend import open_torch_backend

    pair = demo_dir()
    if not (pair / "drafter" / "config.json").exists():
        from edge_mtp.checkpoints.make import make_checkpoint

        print(f"making the demo pair ({DEMO_PRESET}, drafter distilled {DEMO_DISTILL_STEPS} steps) in {pair}")
        pair.parent.mkdir(parents=True, exist_ok=True)
        with _progress() as progress:
            make_checkpoint(DEMO_PRESET, pair, seed=0, distill_steps=DEMO_DISTILL_STEPS, progress=progress)
    prompt = json.loads((pair / "drafter" / "distill_prompts.json").read_text())[0]
    new = args.max_new_tokens
    results = {}
    for k in (0, args.draft_len):
        cfg = LoopConfig(draft_len=k, max_new_tokens=new)
        backend, _, _ = open_torch_backend(pair / "target", pair / "drafter", len(prompt) + new + k + 1)
        results[k] = trace_lines(generate(backend, prompt, cfg), cfg, backend.name, backend.model_id)[-1]
    plain, spec = results[0], results[args.draft_len]
    print(f"prompt ids  {','.join(map(str, prompt))}")
    print(f"generated   {','.join(map(str, spec['tokens']))}")
    print(f"K={args.draft_len}: {summary_line(spec)}")
    print(f"K=0: {summary_line(plain)}")
    same = "identical" if plain["tokens"] == spec["tokens"] else "DIFFERENT (bug)"
    print(f"speculative output is {same} to plain greedy; target passes {spec['rounds']} vs {plain['rounds']}")
    return 0 if plain["tokens"] == spec["tokens"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-mtp", description="Gemma 4 + MTP drafter speculative decoding")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="speculative generation with the PyTorch reference runtime")
    _add_run_args(run)
    run.set_defaults(func=cmd_run)
    make = sub.add_parser("make-checkpoint", help="write a random target + drafter pair in the real HF layout")
    make.add_argument("--preset", required=True, choices=("tiny-e2b", "tiny-e4b", "e2b", "e4b"))
    make.add_argument("out_dir", type=Path)
    make.add_argument("--seed", type=_positive, default=0)
    make.add_argument("--distill-steps", type=_positive, default=0,
                      help="train the drafter on the target's greedy continuations (tiny presets)")
    make.set_defaults(func=cmd_make_checkpoint)
    demo = sub.add_parser("demo", help="make the built-in demo pair and run speculative generation on it")
    demo.add_argument("--draft-len", type=_positive, default=4)
    demo.add_argument("--max-new-tokens", type=int, default=48)
    demo.set_defaults(func=cmd_demo)
    return parser


def _guarded(func, *args) -> int:
    try:
        return func(*args)
    except EdgeMTPError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _guarded(args.func, args)


def export_main(argv: list[str] | None = None) -> int:
    """`edge-export`: the LiteRT/ONNX exporter is the next milestone; say so plainly instead of pretending."""
    print("error: edge-export is not implemented yet (LiteRT .litertlm / ONNX export is planned next)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
