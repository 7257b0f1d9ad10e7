"""What is inside an export (.litertlm bundle or ONNX directory): sections/graphs, signatures with shapes and dtypes, manifest, bytes per decode step."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_mtp.litertlm import read_bundle
from edge_mtp.quantize import weight_bytes


def _signature_rows(data: bytes) -> list[tuple[str, str, str]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    rows = []
    for name in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(name)
        fmt = lambda d: ", ".join(  # noqa: E731
            f"{k} {v['shape'].tolist()} {np.dtype(v['dtype']).name}" for k, v in sorted(d.items())
            if not k.startswith("kv_cache_"))
        kv = sum(k.startswith("kv_cache_") for k in runner.get_input_details())
        rows.append((name, fmt(runner.get_input_details()) + (f", {kv} kv_cache_*" if kv else ""),
                     fmt(runner.get_output_details())))
    return rows


def _summary(manifest: dict, model_id: str, decoder_weights: int) -> dict:
    kv_bytes = sum(4 * int(np.prod(s)) for s in manifest["kv_cache"].values())
    return {
        "format": f"{manifest['format']} ({manifest.get('container', 'litertlm')})",
        "quantization": manifest["options"]["quant"],
        "draft_len (verify checks K+1)": manifest["draft_len"],
        "context": manifest["context"],
        "model id": model_id,
        "bytes read per target decode step": f"{decoder_weights + kv_bytes:,} "
                                             f"(weights {decoder_weights:,} + K/V cache {kv_bytes:,})",
    }


def _onnx_io(values) -> str:
    kv = sum(v.name.startswith(("kv_cache_", "out_kv_cache_")) for v in values)
    shown = [f"{v.name} {list(v.shape)} {v.type.removeprefix('tensor(').removesuffix(')')}" for v in values
             if not v.name.startswith(("kv_cache_", "out_kv_cache_"))]
    return ", ".join(shown) + (f", {kv} kv_cache_*" if kv else "")


def describe_onnx(path: Path | str) -> dict:
    """The ONNX export's graphs with their inputs/outputs; weights read per decode = the target's initializers."""
    from edge_mtp.runtime.onnx_backend import OnnxBackend

    backend = OnnxBackend(path)
    rows = []
    for graph, meta in sorted(backend.manifest["graphs"].items()):
        session = backend.sessions[graph]
        rows.append((meta["file"], meta["bytes"], graph, _onnx_io(session.get_inputs()), _onnx_io(session.get_outputs())))
    weights = backend.manifest["graphs"]["target"]["bytes"]  # graph + .onnx.data: (almost) all initializers
    return {"rows": rows, "summary": _summary(backend.manifest, backend.model_id, weights), "manifest": backend.manifest}


def describe(path: Path | str) -> dict:
    from edge_mtp.runtime.open import export_kind

    if export_kind(path) == "onnx":
        return describe_onnx(path)
    bundle = read_bundle(path)
    manifest = bundle.manifest()
    rows = []
    decoder_weights = 0
    for section in bundle.sections:
        size = section.end - section.begin
        if not section.kind.startswith("tf_lite_"):
            rows.append((section.kind, size, "", "", ""))
            continue
        data = bundle.read(section)
        for i, (sig, inputs, outputs) in enumerate(_signature_rows(data)):
            rows.append((section.kind if i == 0 else "", size if i == 0 else "", sig, inputs, outputs))
        if section.kind == "tf_lite_prefill_decode":
            decoder_weights = sum(weight_bytes(data).values())
    summary = _summary(manifest, "sha256:" + bundle.manifest_sha256()[:16], decoder_weights)
    return {"rows": rows, "summary": summary, "manifest": manifest}
