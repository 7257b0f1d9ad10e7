"""Convert the bundle's graphs to ONNX with the `torch.onnx` dynamo exporter (opset 21).

The same split as the LiteRT bundle and the same wrappers (`edge_mtp.export.graphs`), so tensor
names match across formats (`edge_mtp.contract`, docs/bundle.md):

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
the same buffer, so the cache is updated in place. K/V rows are written with one ScatterElements along
the slot axis (`scatter_writer`).

Like the LiteRT sections, graphs are exported with their weight matrices as inputs and the weights
bound afterwards (`edge_mtp.quantize.onnx`), so the exporter never holds a weight.
"""

from __future__ import annotations

from pathlib import Path

import torch

from edge_mtp import contract as c
from edge_mtp.export.graphs import (DrafterGraph, ExternalWeights, LookupGraph, TargetGraph, drafter_sample,
                                    kv_names, lookup_sample, target_sample)
from edge_mtp.model import Gemma4Drafter, Gemma4Target
from edge_mtp.model.layers import AttentionForm
from edge_mtp.model.target import SlidingReads
from edge_mtp.quiet import quiet

OPSET = 21  # int4 weights (GatherBlockQuantized) need opset 21
# Attention products as matmuls against a transposed view: onnxruntime fuses MatMul(x, Transpose(K)) into one
# FusedMatMul, while it runs an Einsum node (the LiteRT form) about 3x slower (docs/tooling.md#onnx-attention-form).
ATTENTION = AttentionForm(einsum=False)


def scatter_writer(buffer: torch.Tensor, new: torch.Tensor, start: torch.Tensor, dim: int) -> torch.Tensor:
    """K/V write as one ScatterElements along the slot axis `dim` of the buffer as it lies (a `KVWriter`).

    `index_copy` (`layers.write_rows`) exports as a Transpose of the whole buffer that puts the slot axis
    first, a ScatterND, and a Transpose back: at E2B's shape those transposes were 21 ms of a 98 ms
    decode under onnxruntime's profiler, and the scatter into a fresh tensor copied the buffer once more.
    Written in place on the bound buffer, only the new rows move (docs/tooling.md#onnx-attention-form)."""
    shape = [1] * new.dim()
    shape[dim] = new.shape[dim]
    slots = start.long() + torch.arange(new.shape[dim])  # int64 indices, as ONNX's scatters take
    return buffer.scatter(dim, slots.reshape(shape).expand(new.shape), new)


def slice_window(buffer: torch.Tensor, start: torch.Tensor, length, dim: int) -> torch.Tensor:
    """`length` slots of `buffer` from slot `start` along `dim`, as one Slice (a `WindowReader`). The length
    may be symbolic, following the graph's token count T (`SlidingReads(rows=None)`): a sliding layer of the
    one dynamic-T graph reads W + T - 1 positions, rounded to 128-slot blocks, not the whole buffer
    (docs/tooling.md#windowed-sliding-reads). A Slice, not a Gather of start + arange: V lies [D, S], and
    onnxruntime's Gather along the last axis moves one float at a time (9.4 of a 109 ms E2B verify)."""
    first = start.reshape(()).item()  # the exporter turns this into the Slice's computed start
    torch._check(first >= 0)
    torch._check(first + length <= buffer.shape[dim])
    return buffer.narrow(dim, first, length)


def fusable_rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """`rms_norm` as x / sqrt(mean(x^2) + eps) * w over the last axis as it is: the pattern onnxruntime fuses
    into one SimplifiedLayerNormalization (the LiteRT form, rows flattened and multiplied by an rsqrt, stays 8
    nodes: 2 Reshape, Pow, ReduceMean, Add, Sqrt, Reciprocal, Mul). docs/tooling.md#onnx-attention-form."""
    xf = x.float()
    out = xf / torch.sqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        out = out * weight.float()
    return out.type_as(x)


def _export(module: torch.nn.Module, sample: dict, output_names: list[str], dynamic: dict, path: Path) -> Path:
    """`dynamic` names the dynamic axes; every other input (and every entry of a dict input) is static."""
    dynamic = {k: dynamic.get(k, {kk: None for kk in v} if isinstance(v, dict) else None) for k, v in sample.items()}
    with quiet("torch.onnx", "torch.export", "torch._dynamo", "onnxscript"):
        program = torch.onnx.export(module.eval(), (), kwargs=sample, dynamo=True, opset_version=OPSET,
                                    dynamic_shapes=dynamic, output_names=output_names, external_data=False,
                                    optimize=True, verbose=False)
        program.save(str(path), external_data=False)
    return path


def _tokens(context: int):
    return torch.export.Dim("T", min=1, max=context)


def graph_jobs(target: Gemma4Target, drafter: Gemma4Drafter, context: int,
               target_weights: ExternalWeights | None = None, drafter_weights: ExternalWeights | None = None
               ) -> dict[str, tuple]:
    """{graph: (module, sample kwargs, output names, dynamic shapes)}."""
    cfg = target.cfg
    only = lambda key: target_weights.subset(lambda k: k == key) if target_weights else None  # noqa: E731
    body = target_weights.subset(lambda k: k != "embed_tokens_per_layer.weight") if target_weights else None
    tokens = _tokens(context)
    sample = target_sample(cfg, 2, context, body)  # T=2, not 1: a size-1 sample would be specialised
    dynamic = {c.EMBEDDINGS: {1: tokens}, c.INPUT_POS: {0: tokens}}
    if c.PER_LAYER_EMBEDDINGS in sample:
        dynamic[c.PER_LAYER_EMBEDDINGS] = {1: tokens}
    outputs = [c.onnx_output(n) for n in kv_names(cfg)] + [c.LOGITS, c.ACTIVATIONS]
    reads = SlidingReads.for_rows(slice_window, cfg.sliding_window, None, context)
    graph = TargetGraph(target, scatter_writer, external=body, norm=fusable_rms_norm, sliding_reads=reads,
                        attention=ATTENTION)
    jobs = {c.ONNX_TARGET: (graph, sample, outputs, dynamic)}
    for graph, output, key in ((c.ONNX_EMBEDDER, c.EMBEDDINGS, "embed_tokens.weight"),
                               (c.ONNX_PER_LAYER_EMBEDDER, c.PER_LAYER_EMBEDDINGS, "embed_tokens_per_layer.weight")):
        weights = only(key)
        jobs[graph] = (LookupGraph(target, output, weights), lookup_sample(2, weights), [output],
                       {c.TOKEN_IDS: {1: tokens}})
    drafter_graph = DrafterGraph(drafter, cfg, drafter_weights, window_reader=slice_window, attention=ATTENTION,
                                 norm=fusable_rms_norm)
    jobs[c.ONNX_DRAFTER] = (drafter_graph,
                            drafter_sample(cfg, drafter, context, drafter_weights),
                            [c.LOGITS, c.PROJECTED_ACTIVATIONS], {})
    if not cfg.ple_dim:
        del jobs[c.ONNX_PER_LAYER_EMBEDDER]
    return {g: jobs[g] for g in c.ONNX_GRAPHS if g in jobs}


def convert_graphs(jobs: dict[str, tuple], workdir: Path, on_graph=None) -> dict[str, Path]:
    """Write one `.onnx` per graph into `workdir`; returns {graph: path}."""
    workdir.mkdir(parents=True, exist_ok=True)
    paths = {}
    with torch.no_grad():
        for graph, (module, sample, outputs, dynamic) in jobs.items():
            paths[graph] = _export(module, sample, outputs, dynamic, workdir / f"{graph}.onnx")
            if on_graph:
                on_graph(graph)
    return paths
