"""`edge-export`: HF-layout target + drafter -> a `.litertlm` bundle that LiteRT-LM runs with MTP.

Stages: load (one copy of the weights) -> convert each section to `.tflite` -> quantize per section ->
pack the sections, the tokenizer, LiteRT-LM's `LlmMetadata` and our manifest. Everything happens in a
temporary directory; the bundle appears atomically and its bytes depend only on the inputs.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from edge_mtp.errors import EdgeMTPError
from edge_mtp.export.graphs import kv_names
from edge_mtp.export.litert import GraphShapes, convert_sections
from edge_mtp.litertlm import write_bundle
from edge_mtp.model import load_pair
from edge_mtp.quantize import QUANT_MODES, quantize_sections
from edge_mtp.quantize.onnx import data_file

FORMAT = "edge-mtp-bundle/1"


@dataclass(frozen=True)
class ExportOptions:
    quant: str = "fp32"
    draft_len: int = 4
    prefill_lengths: tuple[int, ...] = (32, 128)
    context: int = 1024
    dense_head: bool = False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checkpoint_hashes(directory: Path) -> dict[str, str]:
    return {p.name: _sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}


LITERT_TOOLS = ("litert-torch", "ai-edge-litert", "ai-edge-quantizer", "litert-lm-builder")
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


def _check_options(opts: ExportOptions) -> None:
    if opts.quant not in QUANT_MODES:
        raise EdgeMTPError(f"--quant '{opts.quant}' is not supported; expected one of {', '.join(QUANT_MODES)}")
    if opts.draft_len < 1:
        raise EdgeMTPError("--draft-len must be >= 1 (the verify signature checks K drafts + 1)")
    if not opts.draft_len + 2 <= opts.context <= 1 << 20:
        raise EdgeMTPError(f"--context {opts.context} is out of range (K + 2 .. 1048576)")
    if not opts.prefill_lengths or min(opts.prefill_lengths) < 1 or max(opts.prefill_lengths) > opts.context:
        raise EdgeMTPError(f"--prefill lengths must be between 1 and --context={opts.context}")


def _load(target_dir: Path, drafter_dir: Path, out: Path, opts: ExportOptions):
    _check_options(opts)
    if not Path(out).parent.is_dir():
        raise EdgeMTPError(f"{out}: directory {Path(out).parent} does not exist")
    return load_pair(target_dir, drafter_dir, "float32", opts.dense_head)


def _file_entry(path: Path) -> dict:
    """sha256 and size of a section/graph file; an ONNX graph's external weights (`.onnx.data`) too,
    with `bytes` the total of both."""
    entry = {"sha256": _sha256(path), "bytes": path.stat().st_size}
    if path.suffix == ".onnx":
        entry["file"] = path.name
        data = data_file(path)
        if data.exists():
            entry["data"] = {"file": data.name, "sha256": _sha256(data), "bytes": data.stat().st_size}
            entry["bytes"] += entry["data"]["bytes"]
    return entry


def _manifest(container: str, target_dir: Path, drafter_dir: Path, opts: ExportOptions, tcfg, kv: dict,
              recipes: dict, files: dict[str, Path], tools: tuple[str, ...]) -> dict:
    """The manifest both formats carry: sources, config, options, cache layout, recipes, file hashes."""
    return {
        "format": FORMAT,
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


def export_litertlm(target_dir: Path, drafter_dir: Path, out: Path, opts: ExportOptions, progress=None) -> dict:
    """Write the bundle to `out`; returns its manifest."""
    out = Path(out)
    target, tcfg, drafter, _ = _load(target_dir, drafter_dir, out, opts)
    shapes = GraphShapes(opts.draft_len, tuple(sorted(set(opts.prefill_lengths))), opts.context)
    kv = dict(zip(kv_names(tcfg.text), target.kv_shapes(opts.context), strict=True))
    with tempfile.TemporaryDirectory(prefix="edge-export-") as tmp:
        work = Path(tmp)
        floats = convert_sections(target, drafter, shapes, work, progress)
        del target, drafter
        models, recipes = quantize_sections(floats, opts.quant, work, progress)
        manifest = _manifest("litertlm", target_dir, drafter_dir, opts, tcfg, kv, recipes, models, LITERT_TOOLS)
        manifest_path = work / "manifest.json"
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        tokenizer = Path(target_dir) / "tokenizer.json"
        write_bundle(out, models, tokenizer if tokenizer.exists() else None,
                     llm_metadata(tcfg.bos_id, tcfg.eos_ids, opts.context), manifest_path, work)
    return manifest


def export_onnx(target_dir: Path, drafter_dir: Path, out: Path, opts: ExportOptions, progress=None) -> dict:
    """Write the ONNX graphs, tokenizer and manifest to the directory `out` (or a `.zip`); returns the manifest."""
    from edge_mtp.export.onnx import convert_graphs
    from edge_mtp.export.publish import check_destination, publish_directory
    from edge_mtp.quantize.onnx import ONNX_QUANT_MODES, quantize_graphs

    out = Path(out)
    if opts.quant not in ONNX_QUANT_MODES:
        raise EdgeMTPError(f"--quant '{opts.quant}' is not supported for ONNX; "
                           f"expected one of {', '.join(ONNX_QUANT_MODES)}")
    check_destination(out)
    target, tcfg, drafter, _ = _load(target_dir, drafter_dir, out, opts)
    kv = dict(zip(kv_names(tcfg.text), target.kv_shapes(opts.context), strict=True))
    with tempfile.TemporaryDirectory(prefix="edge-export-onnx-") as tmp:
        work = Path(tmp)
        floats = convert_graphs(target, drafter, opts.context, work / "float", progress)
        del target, drafter
        files, recipes = quantize_graphs(floats, opts.quant, work / opts.quant, progress)
        final = next(iter(files.values())).parent  # the graphs (and any .onnx.data) with their final names
        tokenizer = Path(target_dir) / "tokenizer.json"
        if tokenizer.exists():
            (final / "tokenizer.json").write_bytes(tokenizer.read_bytes())
        manifest = _manifest("onnx", target_dir, drafter_dir, opts, tcfg, kv, recipes, files, ONNX_TOOLS)
        (final / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        publish_directory(final, out)
    return manifest
