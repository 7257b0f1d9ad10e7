"""`edge-mtp bench` and `edge-mtp profile summarize` (added to the main parser by `add_parsers`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _ks(text: str) -> tuple[int | str, ...]:
    """`0,1,2,auto`: draft lengths K, and `auto` (K per round, runtime/draftlen.py)."""
    try:
        ks = tuple(t.strip() if t.strip() == "auto" else int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated draft lengths or auto, got {text!r}") from None
    if not ks or any(k != "auto" and k < 0 for k in ks):
        raise argparse.ArgumentTypeError(f"expected non-negative draft lengths or auto, got {text!r}")
    return ks


def cmd_bench(args) -> int:
    from edge_mtp.bench.report import print_tables, write_json, write_report
    from edge_mtp.bench.runner import BenchConfig, run_bench

    cfg = BenchConfig(args.bundle, args.backend, args.prompts, args.draft_len, args.max_new_tokens,
                      args.repetitions, args.warmup, args.threads, args.bandwidth_mib)
    result = run_bench(cfg)
    print_tables(result)
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    if args.report:
        for path in write_report(result, args.report):
            print(f"wrote {path}")
    return 0


def cmd_profile_summarize(args) -> int:
    from edge_mtp.profiling.__main__ import main

    argv = ["summarize", str(args.dir), "--package", args.package]
    return main(argv + (["--json", str(args.json)] if args.json else []))


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="sweep the draft length K over an export: rates, acceptance, speedup, report")
    p.add_argument("bundle", type=Path, help=".litertlm bundle, or ONNX export directory/.zip")
    p.add_argument("--backend", choices=("litert", "onnx", "native"), default=None,
                   help="default: by the export (litert for .litertlm, onnx for ONNX); native = the C core")
    p.add_argument("--prompts", default="builtin",
                   help="builtin (code, rewrite, free-form, chat) or a JSON file: [prompt, ...] or "
                        "{category: [prompt, ...]}, a prompt being text or token ids")
    p.add_argument("--draft-len", type=_ks, default=(0, 1, 2, 3, 4),
                   help="draft lengths K to sweep (0 always runs); auto = --draft-len auto up to the export's K, "
                        "with costs timed once")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repetitions", type=int, default=1, help="measured generations per prompt and K")
    p.add_argument("--warmup", type=int, default=1, help="unmeasured generations before each K")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of the LiteRT / ONNX Runtime backends")
    p.add_argument("--bandwidth-mib", type=int, default=512, help="array size of the memory-bandwidth copy")
    p.add_argument("--json", type=Path, help="write the full result here")
    p.add_argument("--report", type=Path, help="write PNG plots and report.html into this directory")
    p.set_defaults(func=cmd_bench)


def add_profile(sub) -> None:
    p = sub.add_parser("profile", help="device energy profiling results (profiling/README.md)")
    psub = p.add_subparsers(dest="profile_command", required=True)
    s = psub.add_parser("summarize", help="J/token per run in a results folder, MTP on vs off")
    s.add_argument("dir", type=Path, help="results folder (profiling/README.md: layout)")
    s.add_argument("--json", type=Path, help="write the summary here (default DIR/energy_summary.json)")
    s.add_argument("--package", default="dev.edgemtp.demo", help="app package for batterystats estimates")
    s.set_defaults(func=cmd_profile_summarize)


def add_parsers(sub) -> None:
    add_bench(sub)
    add_profile(sub)
