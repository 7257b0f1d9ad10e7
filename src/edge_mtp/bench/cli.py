"""`edge-mtp bench` and `edge-mtp profile summarize` (click commands the main group adds)."""

from __future__ import annotations

from pathlib import Path

import click

from edge_mtp.console import CONTEXT, DRAFT_LENS, OUTPUT


@click.command("bench", context_settings=CONTEXT)
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(("litert", "onnx", "native")), default=None,
              show_default="by the export: litert for .litertlm, onnx for ONNX",
              help="the runtime measured; native = the C core (native/build/edge-mtp-native)")
@click.option("--prompts", default="builtin",
              help="builtin (code, rewrite, free-form, chat) or a JSON file: [prompt, ...] or "
                   "{category: [prompt, ...]}, a prompt being text or token ids")
@click.option("--draft-len", "draft_lens", type=DRAFT_LENS, default="0,1,2,3,4",
              help="draft lengths K to sweep (K=0, plain decoding, always runs); auto = --draft-len auto up to the "
                   "export's K, each generation timing its costs first (untimed)")
@click.option("--max-new-tokens", metavar="N", type=click.IntRange(min=1), default=64, help="tokens per generation")
@click.option("--repetitions", metavar="N", type=click.IntRange(min=1), default=1,
              help="measured generations per prompt and K")
@click.option("--warmup", metavar="N", type=click.IntRange(min=0), default=1,
              help="unmeasured generations before each K")
@click.option("--threads", metavar="N", type=click.IntRange(min=1), default=2,
              help="CPU threads of LiteRT / ONNX Runtime (every backend, the native core too)")
@click.option("--bandwidth-mib", metavar="N", type=click.IntRange(min=1), default=512,
              help="array size of the memory-bandwidth copy")
@click.option("--json", "json_out", type=OUTPUT, help="write the full result here (its folder must exist)")
@click.option("--report", type=OUTPUT,
              help="write PNG plots and report.html into this directory (created; its parent must exist)")
def bench(bundle: Path, backend: str | None, prompts: str, draft_lens: tuple[int | str, ...],
          max_new_tokens: int, repetitions: int, warmup: int, threads: int, bandwidth_mib: int, json_out: Path | None,
          report: Path | None) -> int:
    """Sweep the draft length K over an export (BUNDLE: .litertlm, or an ONNX folder/.zip): rates,
    acceptance per draft slot, measured and predicted speedup; tables, JSON, plots."""
    from edge_mtp.bench.report import print_tables, write_json, write_report
    from edge_mtp.bench.runner import BenchConfig, run_bench

    cfg = BenchConfig(bundle, backend, prompts, draft_lens, max_new_tokens, repetitions, warmup, threads,
                      bandwidth_mib)
    result = run_bench(cfg)
    print_tables(result)
    if json_out:
        write_json(result, json_out)
        print(f"wrote {json_out}")
    if report:
        for path in write_report(result, report):
            print(f"wrote {path}")
    return 0


@click.group("profile", context_settings=CONTEXT)
def profile() -> None:
    """Device energy profiling results (profiling/README.md)."""


@profile.command("summarize", context_settings=CONTEXT)
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--json", "json_out", type=OUTPUT, default=None, show_default="DIR/energy_summary.json",
              help="write the summary here")
@click.option("--package", default="dev.edgemtp.demo", help="app package for batterystats estimates")
def summarize(directory: Path, json_out: Path | None, package: str) -> int:
    """J/token per run in a results folder DIR (profiling/README.md: layout), MTP on vs off."""
    from edge_mtp.profiling.__main__ import main

    argv = ["summarize", str(directory), "--package", package]
    return main(argv + (["--json", str(json_out)] if json_out else []))
