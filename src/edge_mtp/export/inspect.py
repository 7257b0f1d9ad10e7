"""What is inside a bundle: sections, signatures with shapes and dtypes, manifest, bytes per decode step."""

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


def describe(path: Path | str) -> dict:
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
    kv_bytes = sum(4 * int(np.prod(s)) for s in manifest["kv_cache"].values())
    summary = {
        "format": manifest["format"],
        "quantization": manifest["options"]["quant"],
        "draft_len (verify checks K+1)": manifest["draft_len"],
        "context": manifest["context"],
        "model id": "sha256:" + bundle.manifest_sha256()[:16],
        "bytes read per target decode step": f"{decoder_weights + kv_bytes:,} "
                                             f"(weights {decoder_weights:,} + K/V cache {kv_bytes:,})",
    }
    return {"rows": rows, "summary": summary, "manifest": manifest}
