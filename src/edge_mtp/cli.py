"""Command line: `edge-mtp run | make-checkpoint | demo | trace diff | train-drafter` and `edge-export`.

Every user error is one line on stderr and exit code 2; nothing is written on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from edge_mtp.errors import EdgeMTPError

DEMO_PREFILL, DEMO_CONTEXT = (32, 128), 512  # the demo bundle: held-out prompts are up to ~250 tokens


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
    p.add_argument("bundle", nargs="?", type=Path,
                   help="an edge-export output: .litertlm bundle (LiteRT) or ONNX directory/.zip (ONNX Runtime)")
    p.add_argument("--target", type=Path, help="target checkpoint folder (HF layout; PyTorch backend)")
    p.add_argument("--drafter", type=Path, help="MTP drafter checkpoint folder (HF layout)")
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
    p.add_argument("--backend", choices=("python", "native"), default="python",
                   help="BUNDLE only: the Python loop, or the native C core (native/build/edge-mtp-native)")


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


def _open_run(args):
    """(backend, codec, vocab size, default K) for an export (LiteRT / ONNX Runtime) or a checkpoint pair (PyTorch)."""
    from edge_mtp.runtime.tokenizer import TextCodec

    if args.bundle is not None:
        if args.target or args.drafter:
            raise EdgeMTPError("give either a BUNDLE or --target/--drafter, not both")
        from edge_mtp.runtime.open import open_export

        backend = open_export(args.bundle)
        codec = TextCodec.from_json(backend.tokenizer_json, str(args.bundle)) if args.prompt is not None else None
        return backend, codec, backend.vocab_size, backend.draft_len
    if not (args.target and args.drafter):
        raise EdgeMTPError("give a BUNDLE, or both --target DIR and --drafter DIR")
    from edge_mtp.model import load_drafter_config, load_target_config

    tcfg, dcfg = load_target_config(args.target), load_drafter_config(args.drafter)
    codec = TextCodec(args.target) if args.prompt is not None else None
    return None, codec, tcfg.text.vocab_size, dcfg.num_assistant_tokens


def _run_native(args) -> int:
    """`run BUNDLE --backend native`: the same flags, handed to the C CLI (ids in, ids out)."""
    from edge_mtp.runtime.native import run_native

    if args.bundle is None or args.target or args.drafter:
        raise EdgeMTPError("--backend native runs a BUNDLE (not --target/--drafter)")
    if args.prompt is not None:
        raise EdgeMTPError("--backend native takes --prompt-ids (the native core has no tokenizer)")
    if args.context is not None or args.prefill_chunk is not None or args.dtype != "auto" or args.dense_head:
        raise EdgeMTPError("--context/--prefill-chunk/--dtype/--dense-head apply to the PyTorch backend only")
    flags = ["--prompt-ids", ",".join(map(str, args.prompt_ids)), "--max-new-tokens", str(args.max_new_tokens),
             "--temperature", repr(args.temperature), "--top-k", str(args.top_k), "--top-p", repr(args.top_p),
             "--seed", str(args.seed), "--kv-view", args.kv_view]
    if args.draft_len is not None:
        flags += ["--draft-len", str(args.draft_len)]
    if args.trace:
        flags += ["--trace", str(args.trace)]
    if args.json:
        flags.append("--json")
    return run_native(args.bundle, flags).returncode


def cmd_run(args) -> int:
    from edge_mtp.runtime import generate, trace_lines, write_trace
    from edge_mtp.runtime.torch_backend import open_torch_backend

    if getattr(args, "backend", "python") == "native":
        return _run_native(args)
    backend, codec, vocab, default_k = _open_run(args)
    prompt = codec.encode(args.prompt) if codec else args.prompt_ids
    if not prompt:
        raise EdgeMTPError("the prompt is empty; give at least one token id")
    bad = [i for i in prompt if not 0 <= i < vocab]
    if bad:
        raise EdgeMTPError(f"--prompt-ids: id {bad[0]} is outside the vocabulary of {vocab}")
    cfg = _loop_config(args, default_k)
    if backend is None:
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


def demo_pair() -> Path:
    """The built-in demo pair: a Gemma-4-shaped target and its MTP drafter trained on the Python standard
    library, shipped inside the package (`edge_mtp/demo_pair/`; rebuilt by scripts/make_demo_pair.sh)."""
    from edge_mtp.train.demo import package_dir

    pair = package_dir()
    if not (pair / "drafter" / "config.json").is_file():
        raise EdgeMTPError(f"{pair}: the demo pair is missing; rebuild it with `bash scripts/make_demo_pair.sh --install`")
    return pair


def demo_bundle(pair: Path, draft_len: int) -> Path:
    """The demo pair exported once to an fp32 .litertlm bundle in the cache ($EDGE_MTP_CACHE)."""
    from edge_mtp.model.checkpoint import checkpoint_id

    root = Path(os.environ.get("EDGE_MTP_CACHE", Path.home() / ".cache" / "edge-mtp"))
    pair_id = checkpoint_id(pair / "target", pair / "drafter").split(":")[1][:12]
    bundle = root / f"demo-{pair_id}-k{draft_len}.litertlm"
    if not bundle.exists():
        from edge_mtp.export.exporter import ExportOptions, export_litertlm

        print(f"exporting the demo pair to {bundle}")
        root.mkdir(parents=True, exist_ok=True)
        with _progress() as progress:
            export_litertlm(pair / "target", pair / "drafter", bundle,
                            ExportOptions("fp32", draft_len, DEMO_PREFILL, DEMO_CONTEXT), progress)
    return bundle


def speedup_line(bundle: Path, prompts: dict[str, list[list[int]]], k: int, new: int) -> str:
    """`edge-mtp bench` in one line: measured decode speed at K vs plain decoding on the bundle (LiteRT,
    Python loop), one held-out prompt per category."""
    from edge_mtp.bench.measure import TimedBackend, measure_python
    from edge_mtp.bench.stats import summarize
    from edge_mtp.runtime.litert_backend import LiteRTBackend

    backend = TimedBackend(LiteRTBackend(bundle))
    first = [ps[0] for ps in prompts.values()]
    measure_python(backend, first[0], k, new, "warmup")
    rows = {kk: summarize([measure_python(backend, p, kk, new, "") for p in first], kk) for kk in (0, k)}
    plain, spec = rows[0], rows[k]
    return (f"measured speedup on this machine (LiteRT, Python loop, {len(first)} held-out prompts): K={k} "
            f"{spec['decode_tok_s']:.0f} vs K=0 {plain['decode_tok_s']:.0f} decode tok/s = "
            f"{spec['decode_tok_s'] / plain['decode_tok_s']:.2f}x ({spec['mean_tokens_per_round']:.2f} tokens/round; "
            f"edge-mtp bench {bundle} for the full table)")


def cmd_demo(args) -> int:
    """The built-in default job: export the shipped demo pair to a LiteRT bundle once, generate from a
    held-out prompt plainly and speculatively with PyTorch and with the bundle, compare, and measure."""
    from edge_mtp.runtime import LoopConfig, generate, trace_lines
    from edge_mtp.runtime.litert_backend import LiteRTBackend
    from edge_mtp.runtime.tokenizer import TextCodec
    from edge_mtp.runtime.torch_backend import open_torch_backend

    pair = demo_pair()
    new, k = args.max_new_tokens, args.draft_len
    bundle = demo_bundle(pair, k)
    codec = TextCodec(pair / "target")
    held_out = {c: [codec.encode(t) for t in ts] for c, ts in json.loads((pair / "prompts.json").read_text()).items()}
    text = args.prompt if args.prompt is not None else json.loads((pair / "prompts.json").read_text())["code"][0]
    prompt = codec.encode(text)
    if len(prompt) + new + k + 1 > DEMO_CONTEXT:
        raise EdgeMTPError(f"--prompt has {len(prompt)} tokens; with --max-new-tokens {new} the bundle's context "
                           f"of {DEMO_CONTEXT} is exceeded")
    runs = {}
    for name, draft_len in (("PyTorch K=0", 0), (f"PyTorch K={k}", k), (f"LiteRT  K={k}", k)):
        cfg = LoopConfig(draft_len=draft_len, max_new_tokens=new)
        backend = (LiteRTBackend(bundle) if name.startswith("LiteRT") else
                   open_torch_backend(pair / "target", pair / "drafter", len(prompt) + new + k + 1)[0])
        runs[name] = trace_lines(generate(backend, prompt, cfg), cfg, backend.name, backend.model_id)
    print(f"prompt:\n{text}")
    print(f"generated (K={k}):\n{codec.decode(runs[f'PyTorch K={k}'][-1]['tokens'])}")
    for name, lines in runs.items():
        print(f"{name}: {summary_line(lines[-1])}")
    plain, spec, lite = (runs[n] for n in runs)
    rounds = lambda lines: [(r["drafts"], r["accepted"], r["emitted"]) for r in lines[1:-1]]  # noqa: E731
    ok = plain[-1]["tokens"] == spec[-1]["tokens"] and rounds(spec) == rounds(lite)
    print(f"speculative output identical to plain greedy: {plain[-1]['tokens'] == spec[-1]['tokens']}; "
          f"LiteRT bundle trace identical to PyTorch: {rounds(spec) == rounds(lite)}; "
          f"target passes {spec[-1]['rounds']} vs {plain[-1]['rounds']}")
    print(speedup_line(bundle, held_out, k, new))
    return 0 if ok else 1


def _lengths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated lengths, got {text!r}") from None


def _add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", type=Path, help="target checkpoint folder (default: the built-in demo pair)")
    p.add_argument("--drafter", type=Path, help="MTP drafter checkpoint folder")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="the .litertlm bundle to write (--format onnx: a directory, or a .zip)")
    p.add_argument("--format", choices=("litertlm", "onnx"), default="litertlm",
                   help="litertlm (LiteRT-LM bundle, default) or onnx (ONNX graphs for onnxruntime)")
    p.add_argument("--quant", default="fp32", help="fp32, fp16, int8, int4 (blockwise-32) or mixed (LiteRT only)")
    p.add_argument("--draft-len", type=int, default=4, help="K: the verify signature checks K drafts + 1")
    p.add_argument("--prefill", type=_lengths, default=(32, 128), help="prefill signature lengths, e.g. 32,128")
    p.add_argument("--context", type=int, default=1024, help="K/V cache slots")
    p.add_argument("--dense-head", action="store_true", help="drafter: full-vocab head instead of centroids")


def cmd_export(args) -> int:
    from edge_mtp.export.exporter import ExportOptions, export_litertlm, export_onnx

    if (args.target is None) != (args.drafter is None):
        raise EdgeMTPError("give both --target and --drafter, or neither (the built-in demo pair)")
    target, drafter = args.target, args.drafter
    if target is None:
        pair = demo_pair()
        target, drafter = pair / "target", pair / "drafter"
    opts = ExportOptions(args.quant, args.draft_len, tuple(args.prefill), args.context, args.dense_head)
    export = export_onnx if args.format == "onnx" else export_litertlm
    with _progress() as progress:
        export(target, drafter, args.output, opts, progress)
    return cmd_inspect(argparse.Namespace(bundle=args.output))


def cmd_inspect(args) -> int:
    """Sections, signatures with shapes/dtypes, manifest summary, bytes read per decode step."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from edge_mtp.inspect import describe

    info = describe(args.bundle)
    table = Table(title=str(args.bundle))
    for column in ("section", "bytes", "signature", "inputs", "outputs"):
        table.add_column(column, overflow="fold")
    for row in info["rows"]:
        table.add_row(*(Text(str(cell)) for cell in row))  # Text: shapes like [1, 1, H] are not markup
    console = Console()
    console.print(table)
    for key, value in info["summary"].items():
        console.print(f"{key}: {value}")
    return 0


def cmd_verify(args) -> int:
    """Layered parity report of a bundle against its source checkpoints; exit 1 on any failed check."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from edge_mtp.verify import verify_bundle

    checks = verify_bundle(args.bundle, args.target, args.drafter)
    table = Table(title=f"verify {args.bundle}")
    for column in ("check", "result", "status"):
        table.add_column(column)
    for c in checks:
        status = ("ok" if c.ok else "FAIL") if c.judged else "info"
        table.add_row(Text(c.name), Text(c.value), Text(status, style="green" if c.ok else "red"))
    Console().print(table)
    return 0 if all(c.ok for c in checks) else 1


def cmd_trace_diff(args) -> int:
    """`trace diff A B`: 0 = parity, 1 = mismatch (first divergence + table), 2 = unreadable input."""
    from edge_mtp.runtime.tracediff import diff_traces, load_trace, render

    if args.logit_tol < 0:
        raise EdgeMTPError("--logit-tol must be >= 0")
    a, b = load_trace(args.a), load_trace(args.b)
    d = diff_traces(a, b, args.logit_tol)
    if args.json:
        print(json.dumps({"match": d.ok, "max_logit_delta": d.max_logit_delta, "logit_tol": d.logit_tol,
                          "differences": [x.line() for x in d.differences]}))
    else:
        render(d, (str(args.a), str(args.b)), rows=args.rows)
    return 0 if d.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-mtp", description="Gemma 4 + MTP drafter speculative decoding")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="speculative generation: PyTorch (--target/--drafter), or an export (LiteRT, ONNX Runtime, native)")
    _add_run_args(run)
    run.set_defaults(func=cmd_run)
    make = sub.add_parser("make-checkpoint", help="write a random target + drafter pair in the real HF layout")
    make.add_argument("--preset", required=True, choices=("tiny-e2b", "tiny-e4b", "small-e2b", "e2b", "e4b"))
    make.add_argument("out_dir", type=Path)
    make.add_argument("--seed", type=_positive, default=0)
    make.add_argument("--distill-steps", type=_positive, default=0,
                      help="train the drafter on the target's greedy continuations (tiny presets)")
    make.set_defaults(func=cmd_make_checkpoint)
    export = sub.add_parser("export", help="export a target + drafter to a .litertlm bundle or ONNX (= edge-export)")
    _add_export_args(export)
    export.set_defaults(func=cmd_export)
    inspect = sub.add_parser("inspect", help="show an export's sections/graphs, signatures and manifest")
    inspect.add_argument("bundle", type=Path)
    inspect.set_defaults(func=cmd_inspect)
    verify = sub.add_parser("verify", help="parity report of an export against its source checkpoints")
    verify.add_argument("bundle", type=Path)
    verify.add_argument("--target", type=Path, required=True)
    verify.add_argument("--drafter", type=Path, required=True)
    verify.set_defaults(func=cmd_verify)
    demo = sub.add_parser("demo", help="run the built-in trained demo pair: plain vs speculative, PyTorch vs LiteRT")
    demo.add_argument("--draft-len", type=_positive, default=3)
    demo.add_argument("--prompt", help="prompt text (default: a held-out code prompt of the demo pair)")
    demo.add_argument("--max-new-tokens", type=int, default=48)
    demo.set_defaults(func=cmd_demo)
    from edge_mtp.runtime.tracediff import DEFAULT_LOGIT_TOL

    trace = sub.add_parser("trace", help="step-trace tools (edge-mtp-trace/1)")
    trace_sub = trace.add_subparsers(dest="trace_command", required=True)
    diff = trace_sub.add_parser("diff", help="compare two step traces round by round; exit 1 on mismatch",
                                description="Compare trace A with trace B (e.g. a device trace with the Python "
                                            "reference): header, every round's drafts/target/accepted/emitted, "
                                            "top logits within --logit-tol, summary. Timings and `implementation` "
                                            "are ignored; `model` must match. Exit 0 match, 1 mismatch, 2 "
                                            "unreadable input.")
    diff.add_argument("a", type=Path)
    diff.add_argument("b", type=Path)
    diff.add_argument("--logit-tol", type=float, default=DEFAULT_LOGIT_TOL,
                      help=f"max |difference| of top-logit values (default {DEFAULT_LOGIT_TOL:g}; "
                           "same-machine runs: 1e-4 or less)")
    diff.add_argument("--rows", type=int, default=24, help="rounds shown in the table (default 24)")
    diff.add_argument("--json", action="store_true", help="print the verdict and differences as JSON")
    diff.set_defaults(func=cmd_trace_diff)
    # `bench` and `profile summarize`
    from edge_mtp.bench.cli import add_parsers as add_bench_parsers

    add_bench_parsers(sub)
    from edge_mtp.train.cli import add_parser as add_train_parser  # `train-drafter`

    add_train_parser(sub)
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
    """`edge-export`: the same as `edge-mtp export`."""
    parser = argparse.ArgumentParser(prog="edge-export", description="Gemma 4 + MTP drafter -> .litertlm bundle or ONNX")
    _add_export_args(parser)
    return _guarded(cmd_export, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
