"""Convert the bundle's graphs to ONNX with the `torch.onnx` dynamo exporter (opset 21).

The same split as the LiteRT bundle and the same wrappers (`edge_mtp.export.graphs`), so tensor
names match across formats:

    embedder.onnx            token_ids [1,T] int32 -> embeddings [1,T,H]
    per_layer_embedder.onnx  token_ids [1,T] int32 -> per_layer_embeddings [1,T,L,P]
    target.onnx              embeddings, per_layer_embeddings, input_pos [T], kv_cache_* ->
                             logits [1,T,V], activations [1,T,H], out_kv_cache_* (the updated cache)
    drafter.onnx             activations [1,1,2H], input_pos [1], mask [1,1,1,S], 4 x kv_cache_* ->
                             logits [1,1,V], projected_activations [1,1,H]

The target is ONE graph with a dynamic token axis T serving prefill, decode and verify: ONNX has no
multi-signature file, so fixed-shape signatures would each carry a full copy of the weights (3x the
download), and onnxruntime runs the dynamic graph as fast as fixed ones (benchmarks/README.md).
ONNX forbids an output named like an input, hence `out_kv_cache_*`; the runtime binds both names to
the same buffer, so the cache is updated in place. K/V rows are written with `index_copy` (ScatterND).
"""

from __future__ import annotations

from pathlib import Path

import torch

from edge_mtp.export.graphs import (
    DrafterGraph,
    LookupGraph,
    TargetGraph,
    drafter_sample,
    kv_names,
    target_sample,
)
from edge_mtp.model import Gemma4Drafter, Gemma4Target
from edge_mtp.model.layers import copy_rows
from edge_mtp.quiet import quiet

OPSET = 21  # int4 weights (GatherBlockQuantized) need opset 21
# A protobuf file cannot exceed 2 GB: graphs with more weight bytes than this keep them in `<graph>.onnx.data`
# (a full-size E2B/E4B target does; the tiny test models only when a test lowers this).
EXTERNAL_DATA_MIN_BYTES = 1 << 30
EMBEDDER, PER_LAYER_EMBEDDER, TARGET, DRAFTER = "embedder", "per_layer_embedder", "target", "drafter"


def out_name(kv_name: str) -> str:
    return f"out_{kv_name}"


def _export(module: torch.nn.Module, sample: dict, output_names: list[str], dynamic: dict | None,
            path: Path) -> Path:
    external = sum(p.numel() * p.element_size() for p in module.parameters()) >= EXTERNAL_DATA_MIN_BYTES
    with quiet("torch.onnx", "torch.export", "torch._dynamo", "onnxscript"):
        program = torch.onnx.export(module.eval(), (), kwargs=sample, dynamo=True, opset_version=OPSET,
                                    dynamic_shapes=dynamic, output_names=output_names, external_data=external,
                                    optimize=True, verbose=False)
        program.save(str(path), external_data=external)
    return path


def _target_job(target: Gemma4Target, context: int) -> tuple:
    names = kv_names(target.cfg)
    sample = target_sample(target, 2, context)  # T=2, not 1: a size-1 sample would be specialised
    tokens = torch.export.Dim("T", min=1, max=context)
    dynamic = {"embeddings": {1: tokens}, "input_pos": {0: tokens}, "kv_cache": {k: None for k in sample["kv_cache"]}}
    if "per_layer_embeddings" in sample:
        dynamic["per_layer_embeddings"] = {1: tokens}
    return TargetGraph(target), sample, [out_name(n) for n in names] + ["logits", "activations"], dynamic


def _lookup_job(target: Gemma4Target, output: str, context: int) -> tuple:
    tokens = torch.export.Dim("T", min=1, max=context)
    sample = {"token_ids": torch.zeros(1, 2, dtype=torch.int32)}
    return LookupGraph(target, output), sample, [output], {"token_ids": {1: tokens}}


def convert_graphs(target: Gemma4Target, drafter: Gemma4Drafter, context: int, workdir: Path,
                   progress=None) -> dict[str, Path]:
    """Write one float32 `.onnx` per graph into `workdir`; returns {graph: path}."""
    jobs = {
        EMBEDDER: _lookup_job(target, "embeddings", context),
        PER_LAYER_EMBEDDER: _lookup_job(target, "per_layer_embeddings", context),
        TARGET: _target_job(target, context),
        DRAFTER: (DrafterGraph(drafter, target.cfg), drafter_sample(target, drafter, context),
                  ["logits", "projected_activations"], None),
    }
    if not target.cfg.ple_dim:
        del jobs[PER_LAYER_EMBEDDER]
    workdir.mkdir(parents=True, exist_ok=True)
    task = progress.add_task("convert to ONNX", total=len(jobs)) if progress else None
    paths = {}
    previous, target.kv_writer = target.kv_writer, copy_rows
    try:
        with torch.no_grad():
            for graph, (module, sample, outputs, dynamic) in jobs.items():
                paths[graph] = _export(module, sample, outputs, dynamic, workdir / f"{graph}.onnx")
                if task is not None:
                    progress.advance(task)
    finally:
        target.kv_writer = previous
    return paths

