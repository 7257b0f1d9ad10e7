"""Command line (click): `edge-mtp run | make-checkpoint | export | inspect | verify | demo | trace diff |
bench | profile summarize | train-drafter`, and `edge-export` (the same as `edge-mtp export`).

Every user error, click's usage errors included, is one line `error: ...` on stderr and exit code 2;
nothing is written on failure. `main(argv)` and `export_main(argv)` return the exit code (the console
scripts call them with `argv=None`).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import click
from click.core import ParameterSource

from edge_mtp import console
from edge_mtp.console import (CONTEXT, DRAFT_COSTS, DRAFT_LEN, LENGTHS, OUTPUT, TOKEN_IDS, Terminated, progress,
                                summary_line)
from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime.draftlen import AUTO
from edge_mtp.runtime.tracediff import DEFAULT_LOGIT_TOL

PATH = click.Path(path_type=Path)
DTYPES = ("auto", "float32", "bfloat16", "float16")
PRESETS = ("tiny-e2b", "tiny-e4b", "small-e2b", "e2b", "e4b")
# Flags of the PyTorch backend that an export fixed when it was written: given on a BUNDLE they are errors.
PYTORCH_ONLY = {
    "context": "the K/V cache size is fixed at export (edge-export --context)",
    "dtype": "the weights' type is fixed at export (edge-export --quant)",
    "dense_head": "the drafter head is fixed at export (edge-export --dense-head)",
    "prefill_chunk": "an export prefills with its own signatures (edge-export --prefill)",
}

verbose_option = click.option("--verbose", is_flag=True,
                              help="show the native libraries' own log lines (LiteRT, its converter, onnxruntime)")


def _logs(ctx: click.Context, verbose: bool) -> None:
    """Native log noise off, only for the console script (a test calling main([...]) keeps its fd 2)."""
    if ctx.obj and ctx.obj.get("console") and not verbose:
        from edge_mtp.quiet import native_logs_off

        native_logs_off()


@click.group(context_settings=CONTEXT)
@verbose_option
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Gemma 4 + MTP drafter speculative decoding: run, export, inspect, verify, trace diff, bench."""
    _logs(ctx, verbose)


# ---- run ---------------------------------------------------------------------------------------------
def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _refuse_pytorch_flags(ctx: click.Context) -> None:
    """Issue 11 item 5: a flag the export cannot honour is an error, never silently ignored."""
    for name, why in PYTORCH_ONLY.items():
        if _given(ctx, name):
            raise EdgeMTPError(f"{_flag(name)} applies to --target/--drafter (PyTorch) only: on a BUNDLE {why}")


def _sampling(args):
    from edge_mtp.runtime import SamplingConfig

    if args.temperature < 0 or not 0 < args.top_p <= 1:
        raise EdgeMTPError("--temperature must be >= 0 and --top-p in (0, 1]")
    return SamplingConfig(args.temperature, args.top_k, args.top_p, args.seed) if args.temperature > 0 else None


def _loop_config(args, default_k: int | None):
    from edge_mtp.runtime import LoopConfig

    default = default_k if default_k is not None else 4
    k = args.draft_len if args.draft_len not in (None, AUTO) else default
    if args.draft_costs is not None:
        k = args.draft_costs.max_draft_len  # auto: the costs say how deep a round may draft
    return LoopConfig(draft_len=k, max_new_tokens=args.max_new_tokens, sampling=_sampling(args),
                      kv_view=args.kv_view)


def _with_costs(cfg, args, backend, prompt: list[int]):
    """`--draft-len auto`: the policy, with the given costs or ones timed on the backend now."""
    import dataclasses

    from edge_mtp.runtime.draftlen import AutoDraft, calibrate

    if args.draft_len != AUTO:
        return cfg
    costs = args.draft_costs or calibrate(backend, cfg.draft_len, token=prompt[0])
    return dataclasses.replace(cfg, auto=AutoDraft(costs))


def _is_onnx(export: Path) -> bool:
    from edge_mtp.runtime.open import export_kind

    return export_kind(export) == "onnx"


def _check_run_args(ctx: click.Context, args) -> None:
    """Everything that needs no model, checked before one is loaded."""
    if args.prompt is not None and args.prompt_ids is not None:
        raise EdgeMTPError("give --prompt or --prompt-ids, not both")
    if args.prompt is None and args.prompt_ids is None:
        raise EdgeMTPError("give one of --prompt TEXT or --prompt-ids IDS")
    if args.prompt == "" or args.prompt_ids == []:
        raise EdgeMTPError("the prompt is empty; give some text or at least one token id")
    _sampling(args)
    if args.draft_costs is not None and args.draft_len != AUTO:
        raise EdgeMTPError("--draft-costs applies to --draft-len auto only")
    if args.bundle is not None:
        if args.target or args.drafter:
            raise EdgeMTPError("give either a BUNDLE or --target/--drafter, not both")
        _refuse_pytorch_flags(ctx)
        if args.backend == "native" and args.prompt is not None:
            raise EdgeMTPError("--backend native takes --prompt-ids (the native core has no tokenizer)")
        if args.backend == "native" and _is_onnx(args.bundle):
            raise EdgeMTPError(f"--backend native runs a .litertlm bundle; {args.bundle} is an ONNX export")
    elif args.backend == "native":
        raise EdgeMTPError("--backend native runs a BUNDLE (not --target/--drafter)")
    elif not (args.target and args.drafter):
        raise EdgeMTPError("give a BUNDLE, or both --target DIR and --drafter DIR")


def _open_run(args):
    """(backend or None, codec, vocab size, default K) for an export (LiteRT / ONNX Runtime) or a
    checkpoint pair (PyTorch, opened once the prompt length is known)."""
    from edge_mtp.runtime.tokenizer import TextCodec

    if args.bundle is not None:
        from edge_mtp.runtime.open import open_export

        backend = open_export(args.bundle)
        codec = TextCodec.from_json(backend.tokenizer_json, str(args.bundle)) if args.prompt is not None else None
        return backend, codec, backend.vocab_size, backend.draft_len
    from edge_mtp.model import load_drafter_config, load_target_config

    tcfg, dcfg = load_target_config(args.target), load_drafter_config(args.drafter)
    codec = TextCodec(args.target) if args.prompt is not None else None
    return None, codec, tcfg.text.vocab_size, dcfg.num_assistant_tokens


def _run_native(args) -> int:
    """`run BUNDLE --backend native`: the same settings, handed to the C CLI (ids in, ids out)."""
    from edge_mtp.runtime.native import native_args, run_native

    flags = native_args(args.prompt_ids, args.max_new_tokens, args.draft_len, _sampling(args), args.kv_view,
                        args.trace, args.as_json, args.draft_costs)
    return run_native(args.bundle, flags).returncode


@cli.command("run", context_settings=CONTEXT)
@click.argument("bundle", required=False, type=PATH)
@click.option("--target", type=PATH, help="target checkpoint folder (HF layout): the PyTorch backend")
@click.option("--drafter", type=PATH, help="MTP drafter checkpoint folder (HF layout), with --target")
@click.option("--prompt", help="prompt text (tokenized with the export's or the target folder's tokenizer.json)")
@click.option("--prompt-ids", type=TOKEN_IDS, help="prompt as comma-separated token ids")
@click.option("--draft-len", type=DRAFT_LEN, default=None,
              show_default="the drafter's num_assistant_tokens, else 4; a BUNDLE: its exported K",
              help="drafts per round K; 0 = plain decoding; auto = K per round from the call costs and the running "
                   "acceptance, up to that default. On a BUNDLE, a K below the exported one verifies with "
                   "the bundle's verify signature (the unused rows are padding); a larger K is an error")
@click.option("--draft-costs", type=DRAFT_COSTS, default=None, show_default="timed on the backend first",
              help="with --draft-len auto: ms of a round's first drafter step, of each further step, then of a "
                   "verify of 1..K+1 tokens (a trace header's draft_policy has them)")
@click.option("--max-new-tokens", metavar="N", type=click.IntRange(min=1), default=64,
              help="stop after this many new tokens (also at a stop id, or when the K/V cache is full)")
@click.option("--temperature", type=float, default=0.0, help="0 = greedy; > 0 = speculative sampling")
@click.option("--top-k", metavar="N", type=click.IntRange(min=0), default=0,
              help="sampling: keep the k most likely tokens; 0 = all")
@click.option("--top-p", type=float, default=1.0, help="sampling: keep the smallest set of this probability mass")
@click.option("--seed", metavar="N", type=click.IntRange(min=0), default=0, help="sampling: seed of the random stream")
@click.option("--kv-view", type=click.Choice(("hf", "clean")), default="hf",
              help="the target K/V the drafter reads: transformers-exact (stale slots included) or accepted "
                   "tokens only")
@click.option("--context", metavar="N", type=click.IntRange(min=1), default=None,
              show_default="just enough for the run",
              help="PyTorch only: K/V cache slots")
@click.option("--prefill-chunk", metavar="N", type=click.IntRange(min=1), default=None,
              show_default="the whole prompt at once",
              help="PyTorch only: prefill in chunks of this many tokens, as a fixed-shape exported graph would")
@click.option("--dtype", type=click.Choice(DTYPES), default="auto",
              help="PyTorch only: compute dtype; auto = the checkpoint's")
@click.option("--dense-head", is_flag=True,
              help="PyTorch only: the drafter scores the full vocabulary instead of its top clusters")
@click.option("--trace", type=OUTPUT, help="write the edge-mtp-trace/1 step trace here (docs/trace.md)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--backend", type=click.Choice(("python", "native")), default="python",
              help="BUNDLE only: the Python loop, or the native C core (native/build/edge-mtp-native; --prompt-ids)")
@click.pass_context
def run_cmd(ctx: click.Context, **opts) -> int:
    """Speculative generation with an export (BUNDLE: a .litertlm bundle for LiteRT, an ONNX folder/.zip for
    ONNX Runtime) or with a checkpoint pair (--target/--drafter, PyTorch)."""
    from edge_mtp.runtime import generate, trace_lines, write_trace
    from edge_mtp.runtime.torch_backend import open_torch_backend

    args = SimpleNamespace(**opts)
    _check_run_args(ctx, args)
    if args.backend == "native":
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
    cfg = _with_costs(cfg, args, backend, prompt)
    gen = generate(backend, prompt, cfg)
    lines = trace_lines(gen, cfg, backend.name, backend.model_id)
    if args.trace:
        write_trace(args.trace, lines)
    summary = lines[-1]
    if args.as_json:
        text = codec.decode(gen.tokens) if codec else None
        print(json.dumps({"prompt_ids": prompt, "tokens": gen.tokens, "text": text, "summary": summary}))
    else:
        print(codec.decode(gen.tokens) if codec else ",".join(map(str, gen.tokens)))
        print(summary_line(summary))
    return 0


# ---- make-checkpoint, demo -----------------------------------------------------------------------------
@cli.command("make-checkpoint", context_settings=CONTEXT)
@click.option("--preset", required=True, type=click.Choice(PRESETS),
              help="tiny-*: CPU-sized with every architectural feature; e2b/e4b: the published shapes (bf16)")
@click.argument("out_dir", type=OUTPUT, metavar="OUT_DIR")
@click.option("--seed", metavar="N", type=click.IntRange(min=0), default=0, help="weight initialisation seed")
@click.option("--distill-steps", metavar="N", type=click.IntRange(min=0), default=0,
              help="train the drafter on the target's greedy continuations (tiny presets)")
def make_checkpoint_cmd(preset: str, out_dir: Path, seed: int, distill_steps: int) -> int:
    """Write a random target + drafter pair in the real HF layout: OUT_DIR/target/ and OUT_DIR/drafter/
    (OUT_DIR must not exist or be empty; its folder must exist)."""
    from edge_mtp.checkpoints.make import make_checkpoint

    with progress() as bars:
        target, drafter = make_checkpoint(preset, out_dir, seed=seed, distill_steps=distill_steps, progress=bars)
    print(f"target  {target}\ndrafter {drafter}")
    return 0


@cli.command("demo", context_settings=CONTEXT)
@click.option("--draft-len", metavar="K", type=click.IntRange(min=1), default=3,
              help="K of the exported demo bundle and of the speculative runs")
@click.option("--max-new-tokens", metavar="N", type=click.IntRange(min=1), default=48, help="tokens generated per run")
@click.option("--prompt", default=None, show_default="a held-out code prompt of the demo pair", help="prompt text")
def demo_cmd(draft_len: int, max_new_tokens: int, prompt: str | None) -> int:
    """Export the shipped demo pair (a small Gemma-4-shaped target + MTP drafter trained on Python's standard
    library) to a bundle once (in $EDGE_MTP_CACHE, else ~/.cache/edge-mtp/), then generate plainly and
    speculatively with PyTorch and the bundle: text, tokens/s, and whether they agree."""
    from edge_mtp.demo import run_demo

    return run_demo(draft_len, max_new_tokens, prompt)


# ---- export, inspect, verify ---------------------------------------------------------------------------
def _export_options(f):
    for decorator in reversed((
        click.option("--target", type=PATH, default=None, show_default="the built-in demo pair",
                     help="target checkpoint folder (HF layout)"),
        click.option("--drafter", type=PATH, default=None, show_default="the built-in demo pair",
                     help="MTP drafter checkpoint folder (HF layout), with --target"),
        click.option("-o", "--output", type=OUTPUT, required=True,
                     help="the .litertlm bundle to write (--format onnx: a directory, or a .zip)"),
        click.option("--format", "fmt", type=click.Choice(("litertlm", "onnx")), default="litertlm",
                     help="litertlm (LiteRT-LM bundle) or onnx (ONNX graphs for onnxruntime)"),
        click.option("--quant", default="fp32",
                     help="fp32, fp16, int8, int4 (blockwise), or mixed (int4 + int2 per-layer-embedding table; "
                          "LiteRT only)"),
        click.option("--draft-len", metavar="K", type=int, default=4,
                     help="K: the verify signature checks K drafts + 1"),
        click.option("--prefill", type=LENGTHS, default="32,128", help="prefill signature lengths"),
        click.option("--context", metavar="N", type=int, default=1024, help="K/V cache slots"),
        click.option("--dense-head", is_flag=True, help="drafter: full-vocab head instead of centroids"),
    )):
        f = decorator(f)
    return f


def _check_export_output(out: Path, fmt: str) -> None:
    """The output's name must fit the format: a `.litertlm` file, or an ONNX directory / `.zip`."""
    if fmt == "litertlm" and out.suffix != ".litertlm":
        raise EdgeMTPError(f"-o {out}: a LiteRT bundle is written to a .litertlm file "
                           "(for ONNX graphs pass --format onnx)")
    if fmt == "onnx" and out.suffix not in ("", ".zip"):
        raise EdgeMTPError(f"-o {out}: an ONNX export is a directory (no suffix) or a .zip")


def run_export(target: Path | None, drafter: Path | None, output: Path, fmt: str, quant: str, draft_len: int,
               prefill: tuple[int, ...], context: int, dense_head: bool) -> int:
    from edge_mtp import demo
    from edge_mtp.export.exporter import ExportOptions, export_litertlm, export_onnx

    if (target is None) != (drafter is None):
        raise EdgeMTPError("give both --target and --drafter, or neither (the built-in demo pair)")
    _check_export_output(output, fmt)
    if target is None:
        pair = demo.demo_pair()
        print(f"no --target/--drafter given: exporting the built-in demo pair in {pair}", file=sys.stderr)
        target, drafter = pair / "target", pair / "drafter"
    opts = ExportOptions(quant, draft_len, tuple(prefill), context, dense_head)
    export = export_onnx if fmt == "onnx" else export_litertlm
    with progress() as bars:
        export(target, drafter, output, opts, bars)
    return show_inspect(output)


EXPORT_HELP = ("Export a target + drafter pair to a .litertlm bundle (LiteRT-LM) or to ONNX graphs, then show "
               "what was written (as `inspect`).")


@cli.command("export", context_settings=CONTEXT, help=EXPORT_HELP + " The same as edge-export.")
@_export_options
def export_cmd(**opts) -> int:
    return run_export(**opts)


@click.command("edge-export", context_settings=CONTEXT, help=EXPORT_HELP + " The same as edge-mtp export.")
@_export_options
@verbose_option
@click.pass_context
def edge_export(ctx: click.Context, verbose: bool, **opts) -> int:
    _logs(ctx, verbose)
    return run_export(**opts)


def show_inspect(bundle: Path) -> int:
    """Sections, signatures with shapes/dtypes, manifest summary, bytes read per decode step."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from edge_mtp.inspect import describe

    info = describe(bundle)
    table = Table(title=str(bundle))
    for column in ("section", "bytes", "signature", "inputs", "outputs"):
        table.add_column(column, overflow="fold")
    for row in info["rows"]:
        table.add_row(*(Text(str(cell)) for cell in row))  # Text: shapes like [1, 1, H] are not markup
    console = Console()
    console.print(table)
    for key, value in info["summary"].items():
        console.print(f"{key}: {value}")
    return 0


@cli.command("inspect", context_settings=CONTEXT)
@click.argument("bundle", type=PATH)
def inspect_cmd(bundle: Path) -> int:
    """Show an export's sections or graphs, signatures (shapes, dtypes), manifest, and the bytes read per
    target decode step."""
    return show_inspect(bundle)


@cli.command("verify", context_settings=CONTEXT)
@click.argument("bundle", type=PATH)
@click.option("--target", type=PATH, required=True, help="the target checkpoint folder the export was made from")
@click.option("--drafter", type=PATH, required=True, help="the drafter checkpoint folder the export was made from")
@click.option("--dtype", type=click.Choice(DTYPES), default="auto",
              help="the PyTorch reference's dtype: auto = the checkpoint's (e.g. bf16)")
def verify_cmd(bundle: Path, target: Path, drafter: Path, dtype: str) -> int:
    """Layered parity report of an export against its source checkpoints; exit 1 on any failed check."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from edge_mtp.verify import verify_bundle

    checks = verify_bundle(bundle, target, drafter, dtype)
    table = Table(title=f"verify {bundle}")
    for column in ("check", "result", "status"):
        table.add_column(column)
    for c in checks:
        status = ("ok" if c.ok else "FAIL") if c.judged else "info"
        table.add_row(Text(c.name), Text(c.value), Text(status, style="green" if c.ok else "red"))
    Console().print(table)
    return 0 if all(c.ok for c in checks) else 1


# ---- trace diff ---------------------------------------------------------------------------------------
@cli.group("trace", context_settings=CONTEXT)
def trace_group() -> None:
    """Step-trace tools (edge-mtp-trace/1, docs/trace.md)."""


@trace_group.command("diff", context_settings=CONTEXT)
@click.argument("a", type=PATH)
@click.argument("b", type=PATH)
@click.option("--logit-tol", metavar="X", type=click.FloatRange(min=0), default=DEFAULT_LOGIT_TOL,
              help="max |difference| of top-logit values (same-machine runs: 1e-4 or less)")
@click.option("--ignore-model", is_flag=True,
              help="compare runs of different model ids, e.g. the LiteRT and ONNX exports of the same checkpoints "
                   "(the ids are printed as a note)")
@click.option("--rows", metavar="N", type=click.IntRange(min=0), default=24, help="rounds shown in the table")
@click.option("--json", "as_json", is_flag=True, help="print the verdict and differences as JSON")
def trace_diff_cmd(a: Path, b: Path, logit_tol: float, ignore_model: bool, rows: int, as_json: bool) -> int:
    """Compare trace A with trace B (e.g. a device trace with the Python reference): header, every round's
    drafts/target/accepted/emitted, top logits within --logit-tol, summary. Timings and `implementation`
    are ignored; `model` must match unless --ignore-model. Exit 0 match, 1 mismatch, 2 unreadable input."""
    from edge_mtp.runtime.tracediff import diff_files

    return diff_files(a, b, logit_tol, ignore_model, rows, as_json)


def _add_commands() -> None:
    from edge_mtp.bench.cli import bench, profile
    from edge_mtp.train.cli import train_drafter_cmd

    cli.add_command(bench)
    cli.add_command(profile)
    cli.add_command(train_drafter_cmd)


_add_commands()


# ---- entry points -------------------------------------------------------------------------------------
def _usage_line(e: click.ClickException) -> str:
    where = getattr(e, "ctx", None)
    message = " ".join(e.format_message().split())  # one line, whatever click wrapped
    return f"{where.command_path}: {message}" if where is not None else message


def _invoke(command: click.Command, argv: list[str] | None, prog: str) -> int:
    """Run a click command without its standalone mode: usage errors and EdgeMTPError are one line with
    exit 2, Ctrl-C 130, SIGTERM 143 (after cleanup); the command's return value is the exit code."""
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    previous = signal.signal(signal.SIGTERM, console.on_sigterm)
    console.TERMINATED.clear()
    try:
        rc = command.main(args, prog_name=prog, standalone_mode=False, obj={"console": argv is None})
        console.raise_if_terminated()  # a SIGTERM whose exception Python dropped, after the last progress update
        return rc if isinstance(rc, int) else 0
    except click.exceptions.NoArgsIsHelpError as e:
        print(e.format_message(), file=sys.stderr)
        return 2
    except click.ClickException as e:
        print(f"error: {_usage_line(e)}", file=sys.stderr)
        return 2
    except EdgeMTPError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (click.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """`edge-mtp`."""
    return _invoke(cli, argv, "edge-mtp")


def export_main(argv: list[str] | None = None) -> int:
    """`edge-export`: the same as `edge-mtp export`."""
    return _invoke(edge_export, argv, "edge-export")


if __name__ == "__main__":
    sys.exit(main())
