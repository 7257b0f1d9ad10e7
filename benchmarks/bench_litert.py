"""LiteRT speed of our `.litertlm` graphs vs the graphs `litert_torch.generative.export_hf` makes.

Both are built from the same random-weight Gemma-4-E2B-shaped checkpoint (preset `small-e2b`, ~103 M
target parameters) and run with `ai_edge_litert.CompiledModel` on the CPU:

  * ours:   `edge_mtp.export.exporter.export_litertlm` (sections embedder / per-layer embedder /
            prefill_decode with prefill_<N>, decode, verify / mtp_drafter), quant fp32, int8, int4;
  * theirs: `export_hf.export(..., externalize_embedder=True, assistant_model=<drafter>,
            mtp_verifier_step=K+1)`, which for Gemma 4 gives embedder, per_layer_embedder and one
            model with prefill_<N> / decode / verify. Its int8 / int4 variants are made from its float
            files with export_hf's own `quantize_model` (the step `export_hf` runs after converting),
            with the recipes `dynamic_wi8_afp32` (export_hf's default) and `dynamic_wi4b32_afp32`.

Each number is the median over `--iters` calls of `CompiledModel.run_by_name` alone: inputs are written
once (cache position `--position`), the K/V cache buffers are passed as both input and output (in place,
as LiteRT-LM binds them) and outputs are not read back. Ours and theirs are timed interleaved, in
`--rounds` rounds, so that load on the (shared) machine hits both alike.

Both sides get identical inputs and starting caches, and the first decode's logits are compared
(parity). Conversions run in child processes (logs under the work dir); the peer export has a timeout,
and any failure is recorded with its error message instead of a number. A peer int4 model that XNNPACK
refuses (zero quantization scales) is recorded as failed, then timed after `fix_zero_scales`, with a note.

    .venv/bin/python benchmarks/bench_litert.py --quant fp32,int8,int4 --json /tmp/bench.json
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from opcount import op_counts

SECTIONS = {  # our bundle section -> the peer's file holding the same graph
    "tf_lite_embedder": "embedder.tflite",
    "tf_lite_per_layer_embedder": "per_layer_embedder.tflite",
    "tf_lite_prefill_decode": "model.tflite",
}
PEER_RECIPES = {"int8": "dynamic_wi8_afp32", "int4": "dynamic_wi4b32_afp32"}


# ---- child processes ---------------------------------------------------------------------------------
def _child_main(fn_name: str, args: tuple, log: str) -> None:
    """Child entry: send stdout/stderr to `log`, run `fn_name(*args)`, exit 1 with the traceback logged."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        globals()[fn_name](*args)
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


def run_child(fn_name: str, args: tuple, log: Path, timeout: float) -> str | None:
    """Run a conversion step in a fresh process; None on success, else a one-line reason."""
    proc = multiprocessing.get_context("spawn").Process(target=_child_main, args=(fn_name, args, str(log)))
    start = time.monotonic()
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.terminate()
        proc.join(30)
        return f"timed out after {timeout:.0f} s (log: {log})"
    print(f"  {fn_name}: {time.monotonic() - start:.0f} s, exit {proc.exitcode} (log: {log})")
    if proc.exitcode != 0:
        return f"exit {proc.exitcode}: {_last_error(log)} (log: {log})"
    return None


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["no output"])[-1][:400]


# ---- building the artefacts (these run in child processes) -------------------------------------------
def make_pair(preset: str, out: str) -> None:
    from edge_mtp.checkpoints.make import make_checkpoint

    make_checkpoint(preset, Path(out), seed=0)


def export_ours(target: str, drafter: str, out: str, quant: str, draft_len: int, prefill: tuple, context: int,
                rms_norm: str = "composite") -> None:
    from edge_mtp.export.exporter import ExportOptions, export_litertlm

    opts = ExportOptions(quant, draft_len, tuple(prefill), context, rms_norm=rms_norm)
    export_litertlm(Path(target), Path(drafter), Path(out), opts)


def export_theirs(target: str, drafter: str, out: str, draft_len: int, prefill: tuple, context: int) -> None:
    """export_hf, float weights; the Gemma 4 path needs the external (per-layer) embedders."""
    from litert_torch.generative.export_hf import export as export_hf

    export_hf.export(
        target, out, prefill_lengths=list(prefill), cache_length=context, quantization_recipe="none",
        externalize_embedder=True, single_token_embedder=True, assistant_model=drafter,
        mtp_verifier_step=draft_len + 1, keep_temporary_files=True)


def quantize_theirs(src: str, dst: str, recipe: str) -> None:
    """export_hf's own post-conversion step (`export_lib.quantize_model`) on each float file."""
    from litert_torch.generative.export_hf.core import export_lib

    tmp = Path(dst + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in SECTIONS.values():
        shutil.copy(Path(src) / name, tmp / name)
        quantized = export_lib.quantize_model(str(tmp / name), recipe)
        os.replace(quantized, tmp / name)
    os.replace(tmp, dst)


# ---- timing -----------------------------------------------------------------------------------------
class Graph:
    """One CompiledModel with buffers for its signatures; `kv_cache_*` buffers are shared and aliased."""

    def __init__(self, data: bytes, env, options, kv: dict | None = None):
        from ai_edge_litert.compiled_model import CompiledModel

        self.data = data  # the model must outlive the CompiledModel
        self.model = CompiledModel.from_buffer(data, environment=env, options=options)
        self.kv = {} if kv is None else kv
        self.details = {s: self.model.get_input_tensor_details(s) for s in self.model.get_signature_list()}
        self.buffers: dict[str, tuple[dict, dict]] = {}

    def prepare(self, sig: str, position: int) -> None:
        """Create the buffers of `sig` and write valid inputs for rows at `position`, `position+1`, ...

        Values depend only on the tensor's name and shape, so ours and theirs get identical inputs and
        identical starting caches (which the parity check relies on)."""
        io = self.model.get_signature_list()[sig]
        inputs = {}
        for name in io["inputs"]:
            shape, dtype = tuple(self.details[sig][name]["shape"]), np.dtype(self.details[sig][name]["dtype"])
            if name.startswith("kv_cache_"):
                if name not in self.kv:
                    self.kv[name] = self.model.create_input_buffer_by_name(sig, name)
                    self.kv[name].write((_rng(name).standard_normal(shape) * 0.5).astype(np.float32))
                inputs[name] = self.kv[name]
            else:
                inputs[name] = self.model.create_input_buffer_by_name(sig, name)
                inputs[name].write(sample_input(name, shape, dtype, position))
        outputs = {n: self.kv[n] if n in self.kv else self.model.create_output_buffer_by_name(sig, n)
                   for n in io["outputs"]}
        self.buffers[sig] = (inputs, outputs)

    def runner(self, sig: str):
        inputs, outputs = self.buffers[sig]
        return lambda: self.model.run_by_name(sig, inputs, outputs)

    def read(self, sig: str, name: str) -> np.ndarray:
        shape = tuple(self.model.get_output_tensor_details(sig)[name]["shape"])
        return self.buffers[sig][1][name].read(int(np.prod(shape)), np.float32).reshape(shape)

    def kv_bytes(self) -> int:
        sig = next(iter(self.details))
        return sum(int(np.prod(d["shape"])) * 4 for n, d in self.details[sig].items() if n.startswith("kv_cache_"))


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def sample_input(name: str, shape: tuple, dtype: np.dtype, position: int) -> np.ndarray:
    """A valid value for a graph input, by its name: ids, positions, causal masks, activations."""
    if name == "token_ids":
        return np.full(shape, 7, np.int32)
    if name == "input_pos":
        return np.arange(position, position + shape[0], dtype=np.int32)
    if name == "mask":  # [1, 1, rows, context]: row r sees slots <= position + r
        rows, context = shape[-2], shape[-1]
        visible = np.arange(context)[None, :] <= position + np.arange(rows)[:, None]
        if dtype == np.bool_:
            return visible.reshape(shape)
        return np.where(visible, 0.0, np.finfo(np.float32).min).astype(dtype).reshape(shape)
    return _rng(name).standard_normal(shape).astype(dtype)


def time_interleaved(runners: dict[str, object], iters: int, warmup: int, rounds: int) -> dict[str, float]:
    """Median ms per call of each runner; the runners take turns in `rounds` blocks of calls."""
    samples: dict[str, list[float]] = {k: [] for k in runners}
    for run in runners.values():
        for _ in range(warmup):
            run()
    per_round = max(1, iters // rounds)
    for _ in range(rounds):
        for label, run in runners.items():
            for _ in range(per_round):
                start = time.perf_counter()
                run()
                samples[label].append((time.perf_counter() - start) * 1e3)
    return {k: statistics.median(v) for k, v in samples.items()}


def litert_options(threads: int):
    from ai_edge_litert.environment import Environment
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, Options

    env = Environment.create() if hasattr(Environment, "create") else None
    return env, Options(hardware_accelerators=HardwareAccelerator.CPU, cpu_options=CpuOptions(num_threads=threads))


def load_ours(bundle: Path, env, options) -> dict[str, Graph]:
    from edge_mtp.litertlm import read_bundle

    b = read_bundle(bundle)
    target = Graph(b.model("tf_lite_prefill_decode"), env, options)
    graphs = {"target": target, "drafter": Graph(b.model("tf_lite_mtp_drafter"), env, options, target.kv)}
    graphs["embedder"] = Graph(b.model("tf_lite_embedder"), env, options)
    graphs["per_layer_embedder"] = Graph(b.model("tf_lite_per_layer_embedder"), env, options)
    return graphs


def load_theirs(folder: Path, env, options) -> dict[str, Graph]:
    names = {"target": "model.tflite", "embedder": "embedder.tflite", "per_layer_embedder": "per_layer_embedder.tflite"}
    return {k: Graph((folder / f).read_bytes(), env, options) for k, f in names.items()}


def runners_for(graphs: dict[str, Graph], position: int) -> dict[str, object]:
    """Row label -> callable, for the signatures this side has."""
    rows = {"decode": ("target", "decode"), "verify": ("target", "verify"), "drafter": ("drafter", "mtp_drafter"),
            "embedder": ("embedder", None), "per_layer_embedder": ("per_layer_embedder", None)}
    out = {}
    for label, (graph_name, sig) in rows.items():
        graph = graphs.get(graph_name)
        if graph is None:
            continue
        sig = sig or next(iter(graph.details))
        if sig not in graph.details:
            continue
        graph.prepare(sig, position)
        out[label] = graph.runner(sig)
    return out


def weight_bytes(data: bytes) -> int:
    from edge_mtp.contract import tflite_weight_bytes as by_type

    return sum(by_type(data).values())


def copy_bandwidth(mib: int = 512, reps: int = 5) -> float:
    """GB/s of a large numpy copy, counting bytes read + bytes written."""
    src = np.ones(mib << 18, np.float32)
    dst = np.empty_like(src)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    return 2 * src.nbytes / min(times) / 1e9


# ---- orchestration ----------------------------------------------------------------------------------
@dataclass
class Result:
    config: dict
    machine: dict
    params: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    ms: dict = field(default_factory=dict)  # quant -> {"ours": {row: ms}, "theirs": {row: ms}}
    bandwidth: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)  # quant -> ours vs theirs decode logits on identical inputs
    op_counts: dict = field(default_factory=dict)  # quant -> side -> signature -> {op type: count}
    notes: dict = field(default_factory=dict)
    build_s: dict = field(default_factory=dict)


def count_params(preset: str) -> dict:
    from edge_mtp.checkpoints.make import build_drafter, build_target
    from edge_mtp.checkpoints.presets import PRESETS

    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    target = build_target(PRESETS[preset], device="meta")
    embeddings = sum(p.numel() for n, p in target.named_parameters() if "embed" in n)
    return {"target": count(target), "target_embeddings": embeddings,
            "drafter": count(build_drafter(PRESETS[preset], device="meta"))}


def build(args, res: Result) -> tuple[Path, dict[str, Path], dict[str, Path]]:
    """Checkpoint, our bundles, the peer's float export and quantized copies (cached in the work dir)."""
    root = args.workdir / args.preset
    root.mkdir(parents=True, exist_ok=True)
    ckpt = root / "checkpoint"
    step = functools.partial(_step, res, root, timeout=args.timeout)
    step("checkpoint", "make_pair", (args.preset, str(ckpt)), ckpt / "drafter" / "config.json")
    target, drafter = str(ckpt / "target"), str(ckpt / "drafter")
    tag = f"c{args.context}-k{args.draft_len}-p{'_'.join(map(str, args.prefill))}"
    ours, theirs = {}, {}
    norm = "" if args.rms_norm == "ops" else f"-norm_{args.rms_norm}"
    for quant in args.quant:
        out = root / f"ours-{quant}-{tag}{norm}.litertlm"
        if step(f"ours-{quant}{norm}", "export_ours",
                (target, drafter, str(out), quant, args.draft_len, tuple(args.prefill), args.context, args.rms_norm),
                out):
            ours[quant] = out
    if args.skip_peer:
        return ckpt, ours, theirs
    peer_fp32 = root / f"theirs-fp32-{tag}"
    if step("theirs-fp32", "export_theirs",
            (target, drafter, str(peer_fp32), args.draft_len, tuple(args.prefill), args.context),
            peer_fp32 / "model.litertlm", timeout=args.peer_timeout) or (peer_fp32 / "model.tflite").exists():
        theirs["fp32"] = peer_fp32
    for quant in (q for q in args.quant if q != "fp32" and "fp32" in theirs):
        out = root / f"theirs-{quant}-{tag}"
        if step(f"theirs-{quant}", "quantize_theirs", (str(peer_fp32), str(out), PEER_RECIPES[quant]),
                out / SECTIONS["tf_lite_prefill_decode"]):
            theirs[quant] = out
    return ckpt, ours, theirs


def _step(res: Result, root: Path, key: str, fn: str, fargs: tuple, done: Path, timeout: float) -> bool:
    """Run one build step unless its output `done` exists; record time or error. True when `done` exists."""
    if done.exists():
        return True
    print(f"building {key} ...", flush=True)
    start = time.monotonic()
    error = run_child(fn, fargs, root / f"{key}.log", timeout)
    res.build_s[key] = round(time.monotonic() - start, 1)
    if error:
        res.errors[key] = error
        print(f"  FAILED: {error}")
    return done.exists()


def extra_bundles(specs: list[str], quant: str) -> list[tuple[str, Path]]:
    """(label, bundle) of each `--extra LABEL=PATH` whose PATH (with `{quant}` filled in) exists."""
    out = []
    for spec in specs:
        label, _, template = spec.partition("=")
        path = Path(template.format(quant=quant))
        if path.exists():
            out.append((label, path))
    return out


def measure(args, res: Result, ours: dict[str, Path], theirs: dict[str, Path]) -> None:
    env, options = litert_options(args.threads)
    for quant in args.quant:
        sides, runners, logits = {}, {}, {}
        extras = [(label, path, load_ours) for label, path in extra_bundles(args.extra, quant)]
        for side, path, loader in (("ours", ours.get(quant), load_ours), *extras,
                                   ("theirs", theirs.get(quant), load_theirs)):
            if path is None:
                continue
            loaded = start_side(res, f"{side}-{quant}", loader, path, env, options, args.position)
            if loaded is None and side == "theirs" and quant == "int4":
                # export_hf's int4 LM head has all-zero blocks (pad-token row) with scale 0, which XNNPACK
                # rejects; the same one-line repair our exporter applies makes it loadable, model unchanged
                fixed, count = zero_scale_fixed(path)
                res.notes[f"theirs-{quant}"] = (f"timed after edge_mtp.quantize.fix_zero_scales replaced {count} "
                                                "zero scales by 1 (all-zero weight blocks, model unchanged)")
                loaded = start_side(res, f"{side}-{quant}-zerofix", loader, fixed, env, options, args.position)
            if loaded is not None:
                sides[side], side_runners, logits[side] = loaded
                runners.update({(side, label): run for label, run in side_runners.items()})
        if "ours" in logits and "theirs" in logits:
            res.parity[quant] = parity(logits["ours"], logits["theirs"], softcap(args.preset))
        for label, _, _ in extras:
            if label in logits and "ours" in logits:
                res.notes[f"{label}-{quant}"] = (f"max |logit ours - {label}| on the first decode = "
                                                 f"{float(np.abs(logits['ours'] - logits[label]).max()):.3g}")
        for side, graphs in sides.items():
            res.op_counts.setdefault(quant, {})[side] = op_counts(graphs["target"].data)
        print(f"timing {quant}: {len(runners)} graphs, {args.iters} calls each ...", flush=True)
        medians = time_interleaved(runners, args.iters, args.warmup, args.rounds)
        res.ms[quant] = {side: {label: round(ms, 3) for (s, label), ms in medians.items() if s == side}
                         for side in sides}
        res.sizes[quant] = sizes_of(sides, ours.get(quant), theirs.get(quant), {e[0]: e[1] for e in extras})
        del sides, runners


def softcap(preset: str) -> float | None:
    from edge_mtp.checkpoints.presets import PRESETS

    return PRESETS[preset].target.get("final_logit_softcapping") if preset in PRESETS else None


def parity(ours: np.ndarray, theirs: np.ndarray, cap: float | None) -> dict:
    """Compare the first decode's logits. export_hf's Gemma 4 decode returns `lm_head(h)` without the final
    logit soft-cap (it calls lm_head itself), so theirs is also compared after applying cap*tanh(x/cap)."""
    out = {"max_abs_diff_logits": float(np.abs(ours - theirs).max()), "logit_std": float(ours.std()),
           "same_top1": bool(ours.argmax() == theirs.argmax())}
    if cap:
        out["max_abs_diff_after_softcapping_theirs"] = float(np.abs(ours - cap * np.tanh(theirs / cap)).max())
    return out


@contextmanager
def native_stderr(sink: list[str]):
    """Collect what native code (LiteRT/XNNPACK) writes to fd 2 meanwhile, and still show it."""
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            sys.stderr.write(text)
            sink.extend(line.strip() for line in text.splitlines() if line.startswith("ERROR"))


def start_side(res: Result, key: str, loader, path: Path, env, options, position: int):
    """Load one side, prepare its signatures and run each once (decode first, from the initial cache).

    Returns (graphs, runners that worked, decode logits), or None if the target's decode cannot run;
    every failure is recorded in `res.errors`."""
    native: list[str] = []
    try:
        with native_stderr(native):
            graphs = loader(path, env, options)
            runners = runners_for(graphs, position)
            runners["decode"]()
        logits = graphs["target"].read("decode", "logits").reshape(-1)
    except Exception as e:  # noqa: BLE001 - recorded, not hidden
        res.errors[key] = _one_line(e)[:300] + "".join(f" | {line}" for line in native[:3])
        return None
    for label, run in list(runners.items()):
        try:
            run()
        except Exception as e:  # noqa: BLE001
            res.errors[f"{key}-{label}"] = _one_line(e)[:400]
            del runners[label]
    return graphs, runners, logits


def _one_line(e: Exception) -> str:
    return " ".join(f"{type(e).__name__}: {e}".replace("\u2514", " ").split())


def zero_scale_fixed(folder: Path) -> tuple[Path, int]:
    """A copy of the peer's files with quantization scales of 0 replaced by 1 (edge_mtp.quantize)."""
    from edge_mtp.quantize import fix_zero_scales

    out = folder.with_name(folder.name + "-zerofix")
    if not out.exists():
        tmp = folder.with_name(folder.name + "-zerofix.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(folder, tmp)
        count = sum(fix_zero_scales(tmp / name) for name in SECTIONS.values())
        (tmp / "zero_scales_fixed.txt").write_text(f"{count}\n")
        os.replace(tmp, out)
    return out, int((out / "zero_scales_fixed.txt").read_text())


def sizes_of(sides: dict[str, dict[str, Graph]], ours: Path | None, theirs: Path | None,
             extras: dict[str, Path] | None = None) -> dict:
    """File sizes and the bytes one decode step must read (target weights + the whole K/V cache)."""
    out = {}
    for side, graphs in sides.items():
        target = graphs["target"]
        out[side] = {"target_weight_bytes": weight_bytes(target.data), "kv_bytes": target.kv_bytes(),
                     "section_bytes": {k: len(g.data) for k, g in graphs.items()}}
    for side, path in {"ours": ours, **(extras or {})}.items():
        if path and side in out:
            out[side]["file_bytes"] = path.stat().st_size
    if theirs:
        bundle = theirs / "model.litertlm"
        files = [bundle] if bundle.exists() else [theirs / f for f in SECTIONS.values()]
        out.setdefault("theirs", {})["file_bytes"] = sum(f.stat().st_size for f in files if f.exists())
        out["theirs"]["file_is"] = "model.litertlm" if bundle.exists() else "sum of the three .tflite files"
    return out


# ---- report -----------------------------------------------------------------------------------------
ROWS = [("decode", "target decode (T=1)"), ("verify", "target verify (T=K+1)"), ("drafter", "drafter step"),
        ("embedder", "embedder (1 token)"), ("per_layer_embedder", "per-layer embedder (1 token)")]


def fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def report(res: Result, draft_len: int) -> str:
    extras = sorted({s for sides in res.ms.values() for s in sides} - {"ours", "theirs"})
    head = "| quant | graph | ours ms | " + "".join(f"{e} ms | " for e in extras) + "theirs ms | ours/theirs | "
    head += "".join(f"{e}/theirs | " for e in extras)
    lines = [head.rstrip(), "|---" * (5 + 2 * len(extras)) + "|"]
    for quant, sides in res.ms.items():
        ours, theirs = sides.get("ours", {}), sides.get("theirs", {})
        for key, label in ROWS:
            a, b = ours.get(key), theirs.get(key)
            others = [sides.get(e, {}).get(key) for e in extras]
            ratios = [x / b if x is not None and b else None for x in (a, *others)]
            label = label.replace("K+1", str(draft_len + 1))
            lines.append(f"| {quant} | {label} | {fmt(a, 3)} | " + "".join(f"{fmt(o, 3)} | " for o in others)
                         + f"{fmt(b, 3)} |" + "".join(f" {fmt(r)} |" for r in ratios))
    lines += ["", "| quant | side | decode ops | verify ops | RMSNorm composites | MEAN | RESHAPE | TRANSPOSE |",
              "|---|---|---|---|---|---|---|---|"]
    for quant, sides in res.op_counts.items():
        for side, sigs in sides.items():
            dec, ver = sigs.get("decode", {}), sigs.get("verify", {})
            lines.append(f"| {quant} | {side} | {sum(dec.values())} | {sum(ver.values())} | "
                         f"{dec.get('STABLEHLO_COMPOSITE:odml.rms_norm', 0)} | {dec.get('MEAN', 0)} | "
                         f"{dec.get('RESHAPE', 0)}/{ver.get('RESHAPE', 0)} | "
                         f"{dec.get('TRANSPOSE', 0)}/{ver.get('TRANSPOSE', 0)} |")
    lines += ["", "| quant | side | file MB | target weights MB | K/V MB | MB read / decode | decode ms | GB/s |",
              "|---|---|---|---|---|---|---|---|"]
    for quant, sides in res.sizes.items():
        for side, s in sides.items():
            decode = res.ms.get(quant, {}).get(side, {}).get("decode")
            read = s.get("target_weight_bytes", 0) + s.get("kv_bytes", 0)
            gbs = read / decode / 1e6 if decode else None
            lines.append(f"| {quant} | {side} | {fmt(s.get('file_bytes', 0) / 1e6, 1)} | "
                         f"{fmt(s.get('target_weight_bytes', 0) / 1e6, 1)} | {fmt(s.get('kv_bytes', 0) / 1e6, 1)} | "
                         f"{fmt(read / 1e6, 1)} | {fmt(decode)} | {fmt(gbs, 1)} |")
    lines.append(f"\nmemory bandwidth (numpy copy, read+write): {res.bandwidth.get('copy_GBps', 0):.1f} GB/s")
    for quant, p in res.parity.items():
        lines.append(f"parity {quant} (one decode, same inputs and cache): max |logit ours - theirs| = "
                     f"{p['max_abs_diff_logits']:.3g} (logit std {p['logit_std']:.3g}), same top-1: {p['same_top1']}"
                     + (f"; after soft-capping theirs: {p['max_abs_diff_after_softcapping_theirs']:.3g}"
                        if "max_abs_diff_after_softcapping_theirs" in p else ""))
    for key, note in res.notes.items():
        lines.append(f"NOTE {key}: {note}")
    for key, error in res.errors.items():
        lines.append(f"FAILED {key}: {error}")
    return "\n".join(lines)


SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
              "avx512_fp16", "avx_vnni", "amx_tile")


def machine_info() -> dict:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    def field_of(key: str) -> str:
        return next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith(key)), "")

    flags = set(field_of("flags").split())
    return {"cpu": field_of("model name") or "?", "cores": os.cpu_count(), "platform": platform.platform(),
            "simd_flags": [f for f in SIMD_FLAGS if f in flags],
            "loadavg_start": open("/proc/loadavg").read().split()[:3]}


def versions() -> dict:
    from edge_mtp.export.graph_cache import installed_versions

    return installed_versions(("torch", "transformers", "litert-torch", "ai-edge-litert", "ai-edge-quantizer",
                               "tensorflow-cpu"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small-e2b")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/edge-mtp-bench"), help="cache of checkpoints/exports")
    p.add_argument("--quant", default="fp32", help="comma list of fp32,int8,int4")
    p.add_argument("--draft-len", type=int, default=4, help="K: verify runs K+1 rows")
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--prefill", default="32,128")
    p.add_argument("--position", type=int, default=100, help="cache position of the timed calls")
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per build step")
    p.add_argument("--peer-timeout", type=float, default=3600, help="seconds for the export_hf conversion")
    p.add_argument("--skip-peer", action="store_true", help="only our graphs")
    p.add_argument("--build-only", action="store_true", help="build (or find) the graphs, time nothing")
    p.add_argument("--rms-norm", default="ops", help="our target's RMSNorm form (ExportOptions.rms_norm)")
    p.add_argument("--extra", action="append", default=[], metavar="LABEL=PATH",
                   help="another bundle of ours to time interleaved with the rest; `{quant}` in PATH is filled in")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    args.quant = [q for q in args.quant.split(",") if q]
    args.prefill = [int(n) for n in args.prefill.split(",")]
    unknown = set(args.quant) - {"fp32", "int8", "int4"}
    if unknown:
        p.error(f"--quant: unknown {', '.join(sorted(unknown))}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"}
    res = Result(config=config, machine=machine_info())
    res.machine["versions"] = versions()
    res.params = count_params(args.preset)
    print(f"{args.preset}: target {res.params['target']:,} parameters "
          f"({res.params['target_embeddings']:,} in embeddings), drafter {res.params['drafter']:,}")
    _, ours, theirs = build(args, res)
    if args.build_only:
        print("\n".join([f"built {p}" for p in (*ours.values(), *theirs.values())]
                         + [f"FAILED {k}: {e}" for k, e in res.errors.items()]))
        return 1 if res.errors else 0
    res.bandwidth["copy_GBps"] = round(copy_bandwidth(), 2)
    measure(args, res, ours, theirs)
    res.machine["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    text = report(res, args.draft_len)
    print(text)
    print(f"load average (1/5/15 min) at start {' '.join(res.machine['loadavg_start'])}, "
          f"at end {' '.join(res.machine['loadavg_end'])}; CPU {res.machine['cpu']}, "
          f"SIMD flags {' '.join(res.machine['simd_flags'])}")
    if args.json:
        args.json.write_text(json.dumps(asdict(res), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
