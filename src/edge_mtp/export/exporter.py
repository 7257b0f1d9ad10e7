"""`edge-export`: HF-layout target + drafter -> a `.litertlm` bundle that LiteRT-LM runs with MTP (or ONNX).

Stages, in bounded memory whatever the model's size (docs/architecture.md):

1. load a *skeleton* of both models: configs and small tensors only; every weight matrix stays in the
   checkpoint files;
2. convert each section's graphs with the weight matrices as inputs (the converter holds no weight);
3. bind the weights into each converted file, streaming them from the checkpoint in row chunks and
   quantizing them on the way (`edge_mtp.quantize`);
4. pack the sections, the tokenizer, LiteRT-LM's `LlmMetadata` and our manifest.

Everything happens in a temporary folder beside the output (not in /tmp, which is often a RAM disk);
the output appears atomically, nothing partial stays behind on an error, Ctrl-C or SIGTERM, and its bytes
depend only on the inputs.
"""

from __future__ import annotations

import errno
import json
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterator

from edge_mtp import contract as c
from edge_mtp.errors import EdgeMTPError
from edge_mtp.export.graph_cache import cached, graph_key
from edge_mtp.export.graphs import ExternalWeights, kv_names
from edge_mtp.model import (Gemma4Drafter, Gemma4Target, TargetConfig, check_pair, load_drafter_config,
                            load_target_config)
from edge_mtp.model.checkpoint import TensorReader, load_drafter_skeleton, load_target_skeleton
from edge_mtp.quantize.recipes import LITERT_MODES, ONNX_MODES, Rules, quantizable
from edge_mtp.quantize.tflite import WeightSource


@dataclass(frozen=True)
class ExportOptions:
    quant: str = "fp32"
    draft_len: int = 4
    prefill_lengths: tuple[int, ...] = (32, 128)
    context: int = 1024
    dense_head: bool = False
    rms_norm: str = "ops"  # LiteRT: "ops" or "composite" (odml.rms_norm), edge_mtp.export.litert.NORMS


LITERT_TOOLS = ("litert-torch", "ai-edge-litert", "litert-lm-builder")
ONNX_TOOLS = ("onnx", "onnxscript", "onnxruntime")


def _versions(tools: tuple[str, ...]) -> dict[str, str]:
    return {n: metadata.version(n) for n in ("edge-mtp", "torch", *tools)}


def llm_metadata(bos: int, stop_ids: tuple[int, ...], context: int) -> bytes:
    """LiteRT-LM's LlmMetadata: Gemma 4 model type, <bos>, stop tokens, top-p sampler (CPU has no greedy)."""
    from litert_lm_builder.runtime.proto import llm_metadata_pb2, sampler_params_pb2

    msg = llm_metadata_pb2.LlmMetadata()
    msg.start_token.token_ids.ids.append(bos)
    for stop in stop_ids:
        msg.stop_tokens.add().token_ids.ids.append(stop)
    msg.llm_model_type.gemma4.SetInParent()
    msg.sampler_params.type = sampler_params_pb2.SamplerParameters.TOP_P
    msg.sampler_params.k = 1
    msg.sampler_params.p = 0.0
    msg.sampler_params.temperature = 1.0
    msg.max_num_tokens = context
    return msg.SerializeToString(deterministic=True)


def check_options(opts: ExportOptions, modes: dict, container: str) -> None:
    if opts.quant not in modes:
        raise EdgeMTPError(f"--quant '{opts.quant}' is not supported for {container}; "
                           f"expected one of {', '.join(modes)}")
    if opts.draft_len < 1:
        raise EdgeMTPError("--draft-len must be >= 1 (the verify signature checks K drafts + 1)")
    if not opts.draft_len + 2 <= opts.context <= 1 << 20:
        raise EdgeMTPError(f"--context {opts.context} is out of range (K + 2 .. 1048576)")
    if not opts.prefill_lengths or min(opts.prefill_lengths) < 1 or max(opts.prefill_lengths) > opts.context:
        raise EdgeMTPError(f"--prefill lengths must be between 1 and --context={opts.context}")


def _file_entry(path: Path) -> dict:
    """sha256 and size of a section/graph file; an ONNX graph's external weights (`.onnx.data`) too,
    with `bytes` the total of both."""
    entry = {"sha256": c.file_sha256(path), "bytes": path.stat().st_size}
    if path.suffix == ".onnx":
        from edge_mtp.quantize.onnx import external_files

        entry["file"] = path.name
        data = c.onnx_data_file(path)
        if data.exists():
            entry["data"] = {"file": data.name, "sha256": c.file_sha256(data), "bytes": data.stat().st_size}
            entry["bytes"] += entry["data"]["bytes"]
        reads = [name for name in external_files(path) if name != data.name]
        if reads:  # another graph's data file (hashed in that graph's entry): the tied embedding, stored once
            entry["reads"] = reads
    return entry


def _checkpoint_hashes(directory: Path) -> dict[str, str]:
    return {p.name: c.file_sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}


def _manifest(container: str, target_dir: Path, drafter_dir: Path, opts: ExportOptions, tcfg, recipes: dict,
              files: dict[str, Path], tools: tuple[str, ...]) -> dict:
    """The manifest both formats carry: sources, config, options, cache layout, recipes, file hashes."""
    kv = dict(zip(kv_names(tcfg.text), Gemma4Target.kv_shapes_of(tcfg.text, opts.context), strict=True))
    return {
        "format": c.MANIFEST_FORMAT,
        "container": container,
        "source": {"target": _checkpoint_hashes(Path(target_dir)), "drafter": _checkpoint_hashes(Path(drafter_dir))},
        "config": {"target": json.loads((Path(target_dir) / "config.json").read_text()),
                   "drafter": json.loads((Path(drafter_dir) / "config.json").read_text())},
        "options": asdict(opts),
        "draft_len": opts.draft_len,
        "context": opts.context,
        "sliding_window": tcfg.text.sliding_window,
        "vocab_size": tcfg.text.vocab_size,
        "stop_ids": list(tcfg.eos_ids),
        "bos_id": tcfg.bos_id,
        "kv_cache": {n: list(s) for n, s in kv.items()},
        "recipes": recipes,
        ("sections" if container == "litertlm" else "graphs"): {kind: _file_entry(p) for kind, p in files.items()},
        "versions": _versions(tools),
    }


@dataclass
class Skeletons:
    """Both models without their weight matrices, and where each matrix is read from."""

    target: Gemma4Target
    tcfg: TargetConfig
    drafter: Gemma4Drafter
    target_weights: ExternalWeights
    drafter_weights: ExternalWeights
    sources: dict[str, WeightSource]
    configs: list[Path]  # target and drafter config.json


def load_skeletons(target_dir: Path, drafter_dir: Path, dense_head: bool) -> Skeletons:
    check_pair(load_target_config(target_dir), load_drafter_config(drafter_dir))
    target, tcfg, t_ext = load_target_skeleton(target_dir)
    drafter, _, d_ext = load_drafter_skeleton(drafter_dir, dense_head)
    tw, dw = ExternalWeights(target, "target", t_ext), ExternalWeights(drafter, "drafter", d_ext)
    sources = {}
    for weights, directory in ((tw, target_dir), (dw, drafter_dir)):
        reader = TensorReader(directory)
        for key, (name, shape) in weights.sources().items():
            sources[key] = WeightSource(name, shape, lambda a, b, r=reader, n=name: r.rows(n, a, b))
    return Skeletons(target, tcfg, drafter, tw, dw, sources,
                     [Path(target_dir) / "config.json", Path(drafter_dir) / "config.json"])


def check_output(out: Path, *, directory: bool) -> None:
    """Fail before any work if `out` cannot receive the export (a file, or a directory export)."""
    if not out.parent.is_dir():
        raise EdgeMTPError(f"{out}: directory {out.parent} does not exist")
    if not directory and out.is_dir():
        raise EdgeMTPError(f"{out}: is a directory; a .litertlm bundle is one file (for ONNX use --format onnx)")


@contextmanager
def work_dir(out: Path) -> Iterator[Path]:
    """A temporary folder beside `out`, removed afterwards whatever happens."""
    try:
        tmp = tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.edge-export-")
    except OSError as e:
        raise EdgeMTPError(f"{out}: cannot write in {out.parent} ({e.strerror})") from None
    with tmp as path:
        yield Path(path)


@contextmanager
def disk_errors(out: Path) -> Iterator[None]:
    """An OSError while writing (disk full, quota, permissions) becomes one line naming the output."""
    try:
        yield
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise EdgeMTPError(f"{out}: no space left on the device while writing the export") from None
        raise EdgeMTPError(f"{out}: cannot write the export ({e.strerror or e})") from None


class _Progress:
    """Two bars: graphs converted, float32 weight bytes bound (a table shared by two sections counts twice)."""

    def __init__(self, progress, graphs: int, sources: dict[str, WeightSource]):
        self.progress, self.sources = progress, sources
        self.bytes_of = {s.name: 4 * s.shape[0] * s.shape[1] for s in sources.values()}
        if progress:
            self.convert = progress.add_task("convert graphs", total=graphs)
            self.bind = progress.add_task("bind + quantize weights", total=None)

    def converted(self, _name) -> None:
        if self.progress:
            self.progress.advance(self.convert)

    def all_converted(self) -> None:
        if self.progress:
            self.progress.update(self.convert, completed=self.progress.tasks[self.convert].total)

    def to_bind(self, keys: list[set[str]]) -> None:
        if self.progress:
            total = sum(self.bytes_of[self.sources[k].name] for graph in keys for k in graph)
            self.progress.update(self.bind, total=total)

    def bound(self, tensor: str) -> None:
        if self.progress:
            self.progress.advance(self.bind, self.bytes_of[tensor])


def _shapes(sources: dict[str, WeightSource]) -> dict[str, tuple[int, ...]]:
    """{checkpoint tensor name: shape} of the weights bound into a graph."""
    return {s.name: tuple(s.shape) for s in sources.values()}


def _check_quantized(mode: str, section: str, schemes: dict[str, str], rules: Rules,
                     shapes: dict[str, tuple[int, ...]]) -> None:
    """A quantized mode must quantize something in every section where some weight fits a rule (a rule that
    matches nothing is a bug); a section whose weights no block divides stays float32 (`quantizable`)."""
    if mode == "fp32" or any(s != "f32" for s in schemes.values()):
        return
    if any(quantizable(rules, name, shapes[name]) for name in schemes):
        raise EdgeMTPError(f"--quant {mode}: no weight of {section} matched a quantization rule")


def export_litertlm(target_dir: Path, drafter_dir: Path, out: Path, opts: ExportOptions, progress=None) -> dict:
    """Write the bundle to `out`; returns its manifest."""
    from edge_mtp.export.litert import GraphShapes, bind_sources, convert_sections, row_orders, section_jobs
    from edge_mtp.litertlm import write_bundle
    from edge_mtp.quantize.tflite import bind_weights, weight_keys

    out = Path(out)
    check_options(opts, LITERT_MODES, "LiteRT")
    check_output(out, directory=False)
    sk = load_skeletons(target_dir, drafter_dir, opts.dense_head)
    shapes = GraphShapes(opts.draft_len, tuple(sorted(set(opts.prefill_lengths))), opts.context)
    jobs = section_jobs(sk.target, sk.drafter, shapes, sk.target_weights, sk.drafter_weights, opts.rms_norm)
    bars = _Progress(progress, len(jobs), sk.sources)
    rules = LITERT_MODES[opts.quant]
    key = graph_key("litertlm", sk.configs, asdict(shapes) | {"dense_head": opts.dense_head, "rms_norm": opts.rms_norm},
                    [sk.target, sk.drafter])
    with disk_errors(out), work_dir(out) as work:
        graphs = cached(key, work, lambda d: convert_sections(jobs, d, bars.converted))
        bars.all_converted()
        bars.to_bind([weight_keys(g) for g in graphs.values()])
        orders = row_orders(sk.drafter, sk.drafter_weights)
        sources, permuted = bind_sources(sk.sources, orders), orders.keys()
        sections, recipes = {}, {}
        for section, graph in graphs.items():
            sections[section] = work / f"{section}.tflite"
            keys = weight_keys(graph)
            with open(sections[section], "wb") as f:
                schemes = bind_weights(graph, f, sources, rules, bars.bound)
            graph.unlink()
            _check_quantized(opts.quant, section, schemes, rules, _shapes(sources))
            recipes[section] = {"mode": opts.quant, "weights": schemes}
            if keys & permuted:
                recipes[section][c.RECIPE_ROW_ORDER] = {sources[k].name: c.TOKEN_ORDERING for k in keys & permuted}
        manifest = _manifest("litertlm", target_dir, drafter_dir, opts, sk.tcfg, recipes, sections, LITERT_TOOLS)
        manifest_path = work / c.MANIFEST_FILE
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        tokenizer = Path(target_dir) / c.TOKENIZER_FILE
        write_bundle(out, sections, tokenizer if tokenizer.exists() else None,
                     llm_metadata(sk.tcfg.bos_id, sk.tcfg.eos_ids, opts.context), manifest_path, work)
    return manifest


def export_onnx(target_dir: Path, drafter_dir: Path, out: Path, opts: ExportOptions, progress=None) -> dict:
    """Write the ONNX graphs, tokenizer and manifest to the directory `out` (or a `.zip`); returns the manifest."""
    from edge_mtp.export.onnx import convert_graphs, graph_jobs
    from edge_mtp.export.publish import check_destination, publish_directory
    from edge_mtp.quantize.onnx import bind_weights, weight_keys

    out = Path(out)
    check_options(opts, ONNX_MODES, "ONNX")
    check_destination(out)
    sk = load_skeletons(target_dir, drafter_dir, opts.dense_head)
    jobs = graph_jobs(sk.target, sk.drafter, opts.context, sk.target_weights, sk.drafter_weights)
    bars = _Progress(progress, len(jobs), sk.sources)
    rules = ONNX_MODES[opts.quant]
    key = graph_key("onnx", sk.configs, {"context": opts.context, "dense_head": opts.dense_head},
                    [sk.target, sk.drafter])
    with disk_errors(out), work_dir(out) as work:
        skeletons = cached(key, work / "graphs", lambda d: convert_graphs(jobs, d, bars.converted))
        bars.all_converted()
        bars.to_bind([weight_keys(g) for g in skeletons.values()])
        final = work / "export"
        final.mkdir()
        files, recipes, written = {}, {}, {}
        for graph in sorted(skeletons, key=lambda g: g != c.ONNX_TARGET):  # the target writes the shared table
            skeleton = skeletons[graph]
            files[graph] = final / skeleton.name
            schemes = bind_weights(skeleton, files[graph], sk.sources, rules, bars.bound, written)
            skeleton.unlink()
            _check_quantized(opts.quant, graph, schemes, rules, _shapes(sk.sources))
            recipes[graph] = {"mode": opts.quant, "weights": schemes}
        tokenizer = Path(target_dir) / c.TOKENIZER_FILE
        if tokenizer.exists():
            (final / c.TOKENIZER_FILE).write_bytes(tokenizer.read_bytes())
        files = {g: files[g] for g in skeletons}  # manifest in the graphs' usual order
        manifest = _manifest("onnx", target_dir, drafter_dir, opts, sk.tcfg, recipes, files, ONNX_TOOLS)
        (final / c.MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        publish_directory(final, out)
    return manifest
