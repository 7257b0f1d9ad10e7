"""What is inside an export (.litertlm bundle or ONNX directory): sections/graphs, signatures with
shapes and dtypes, manifest, bytes per decode step (LiteRT sections read from their flatbuffers, ONNX
graphs through onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_mtp import contract as c
from edge_mtp.litertlm import read_bundle


def _io(tensors: dict[str, tuple[list[int], str]]) -> str:
    shown = ", ".join(f"{k} {shape} {dtype}" for k, (shape, dtype) in sorted(tensors.items()) if not c.is_kv(k))
    kv = sum(c.is_kv(k) for k in tensors)
    return shown + (f", {kv} kv_cache_*" if kv else "")


def _signature_rows(data) -> list[tuple[str, str, str]]:
    return [(name, _io(sig["inputs"]), _io(sig["outputs"])) for name, sig in c.tflite_signatures(data).items()]


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
    return _io({v.name: (list(v.shape), v.type.removeprefix("tensor(").removesuffix(")")) for v in values})


def describe_onnx(path: Path | str) -> dict:
    """The ONNX export's graphs with their inputs/outputs; weights read per decode = the target's initializers."""
    from edge_mtp.runtime.onnx_backend import OnnxBackend

    backend = OnnxBackend(path)
    rows = []
    for graph, meta in sorted(backend.manifest["graphs"].items()):
        session = backend.sessions[graph]
        rows.append((meta["file"], meta["bytes"], graph, _onnx_io(session.get_inputs()),
                     _onnx_io(session.get_outputs())))
    weights = backend.manifest["graphs"]["target"]["bytes"]  # graph + .onnx.data: (almost) all initializers
    summary = _summary(backend.manifest, backend.model_id, weights)
    return {"rows": rows, "summary": summary, "manifest": backend.manifest}


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
        if section.kind not in c.SECTIONS:
            rows.append((section.kind, size, "", "", ""))
            continue
        data = bundle.view(section)
        for i, (sig, inputs, outputs) in enumerate(_signature_rows(data)):
            rows.append((section.kind if i == 0 else "", size if i == 0 else "", sig, inputs, outputs))
        if section.kind == c.PREFILL_DECODE:
            decoder_weights = sum(c.tflite_weight_bytes(data).values())
    summary = _summary(manifest, bundle.model_id(), decoder_weights)
    return {"rows": rows, "summary": summary, "manifest": manifest}
