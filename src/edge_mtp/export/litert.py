"""Convert the bundle's graphs to LiteRT `.tflite` files with `litert_torch.Converter`.

One converter call per bundle section; all signatures of a section share its weights. Shapes are
static (litert-torch cannot lower a dynamic sequence length), so the target gets one `prefill_<N>`
signature per requested length, `decode` (T=1) and `verify` (T=K+1).

Graphs are converted with their weight matrices as inputs (`edge_mtp.export.graphs.ExternalWeights`):
the converter then holds no weight at all (a full-size E2B decoder converts in ~1.3 GB), and
`edge_mtp.quantize.tflite.bind_weights` writes the weights in afterwards.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from edge_mtp import contract as c
from edge_mtp.export.graphs import (DrafterGraph, ExternalWeights, LookupGraph, TargetGraph, drafter_sample,
                                    has_centroid_head, lookup_sample, target_sample)
from edge_mtp.model import Gemma4Drafter, Gemma4Target
from edge_mtp.model.drafter import HeadForm
from edge_mtp.model.layers import AttentionForm, rms_norm
from edge_mtp.model.target import SlidingReads
from edge_mtp.quiet import quiet


@dataclass(frozen=True)
class GraphShapes:
    draft_len: int  # K: verify runs K+1 tokens
    prefill_lengths: tuple[int, ...]
    context: int  # K/V slots


def dus_writer(buffer: torch.Tensor, new: torch.Tensor, start: torch.Tensor, dim: int) -> torch.Tensor:
    """K/V write as TFLite DYNAMIC_UPDATE_SLICE at (0, 0, start, 0) or (0, 0, 0, start).

    ~2.5x faster than the scatter `index_copy` lowers to, and the contiguous write LiteRT-LM's padded
    prefill chunks rely on (docs/tooling.md#kv-writes-dynamic_update_slice-vs-scatter).
    """
    from litert_torch.generative.custom_ops import dynamic_update_slice as dus

    zero = torch.zeros((), dtype=torch.int32)
    indices = [zero] * buffer.dim()
    indices[dim] = start.to(torch.int32).reshape(())
    return dus.dynamic_update_slice(buffer, new, indices)


@functools.cache
def _dynamic_slice_op():
    """`edge_mtp::dynamic_slice(x, starts, sizes)`: a TFLite SLICE with a runtime `begin` (a strided copy).
    litert-torch has no lowering of a slice at a tensor offset, so this op lowers to stablehlo.dynamic_slice."""
    from litert_converter.mlir.dialects import stablehlo
    from litert_torch.backend import lowerings

    @torch.library.custom_op("edge_mtp::dynamic_slice", mutates_args=())
    def dynamic_slice(x: torch.Tensor, starts: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
        for dim, (start, size) in enumerate(zip(starts, sizes, strict=True)):
            x = x.narrow(dim, int(start), size)
        return x.clone()

    @dynamic_slice.register_fake
    def _(x, starts, sizes):
        return x.new_empty(sizes)

    @lowerings.lower(torch.ops.edge_mtp.dynamic_slice)
    def _(lctx, x, starts, sizes):
        return stablehlo.dynamic_slice(x, starts, sizes)

    return dynamic_slice


def dynamic_window(buffer: torch.Tensor, start: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """`length` slots of `buffer` from slot `start` along `dim` (a `WindowReader`: sliding layers read a
    window of a context-long buffer, docs/tooling.md#drafter-head, docs/tooling.md#windowed-sliding-reads)."""
    zero = torch.zeros((), dtype=torch.int32)
    starts = [zero] * buffer.dim()
    starts[dim] = start.to(torch.int32).reshape(())
    sizes = list(buffer.shape)
    sizes[dim] = length
    return _dynamic_slice_op()(buffer, starts, sizes)


def composite_rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """`rms_norm`, the same ops, marked as the StableHLO composite `odml.rms_norm` (inputs x and, when
    the norm has one, its constant weight; attribute `epsilon`), as litert-torch marks its RMSNorm.

    A runtime that knows the composite (LiteRT's GPU delegate) runs it as one fused kernel; the CPU
    runs its decomposition, which is exactly `rms_norm`.
    """
    from litert_torch.hlfb import StableHLOCompositeBuilder

    builder = StableHLOCompositeBuilder(name="odml.rms_norm", attr={"epsilon": float(eps)})
    if weight is None:
        return builder.mark_outputs(rms_norm(builder.mark_inputs(x), None, eps))
    x, weight = builder.mark_inputs(x, weight)
    return builder.mark_outputs(rms_norm(x, weight, eps))


# How the target graphs compute RMSNorm. "ops" is the default: with ai-edge-litert 2.3.0 the CPU runs each
# composite as a call of its decomposition outside XNNPACK (one delegate partition per norm), which made
# small-e2b's decode ~15% slower (benchmarks/README.md#issue-12-graphs); "composite" is for runtimes that fuse it.
NORMS = {"ops": rms_norm, "composite": composite_rms_norm}


def _convert(signatures: list[tuple[str, torch.nn.Module, dict]], path: Path) -> Path:
    import litert_torch

    converter = litert_torch.Converter()
    for name, module, sample in signatures:
        converter.add_signature(name, module.eval(), sample_kwargs=sample)
    with quiet("litert_torch", "absl"):
        converter.convert().export(str(path))
    return path


# Attention layers whose head dim reaches this compute their cache products with the cache as the left operand
# (`model/layers.py: _cache_times`): in decode and verify (the drafter has its own, `DRAFTER_ATTENTION`). Measured
# on XNNPACK, 2 threads (docs/tooling.md#cache-first-products): faster for 512-wide heads (E2B/E4B's full layers)
# at 1-4 tokens; slower for one token over a 256-wide sliding layer's 768-slot window (+35%). Prefill
# (128 tokens of 8 heads) was not measured in this form and keeps the other.
CACHE_FIRST_HEAD_DIM = 512


def attention_form() -> AttentionForm:
    """The attention products of the decode and verify graphs: einsums, cache first from
    `CACHE_FIRST_HEAD_DIM` on (read when called, so a test can lower it)."""
    return AttentionForm(einsum=True, cache_first_head_dim=CACHE_FIRST_HEAD_DIM)


def row_orders(drafter: Gemma4Drafter, weights: ExternalWeights) -> dict[str, torch.Tensor]:
    """{weight input key: row order} of the drafter weights the LiteRT graphs read with permuted rows: with
    a centroid head, the token table in cluster order (`model.drafter.cluster_ordered`), so that a draft
    step reads its candidates' rows as top-k contiguous runs (docs/tooling.md#drafter-head)."""
    if not has_centroid_head(drafter):
        return {}
    return {weights.key(c.DRAFTER_TABLE): drafter.masked_embedding.token_ordering}


def bind_sources(sources: dict, orders: dict[str, torch.Tensor]) -> dict:
    """The weight sources to bind into the LiteRT sections: `sources` with `row_orders`' orders applied."""
    return {k: s.permuted(orders[k].numpy()) if k in orders else s for k, s in sources.items()}


# The drafter step's forms, measured on the E2B drafter section (int4, context 2048, CompiledModel;
# docs/tooling.md#drafter-head): for its one token of 4 query heads, every layer's products written cache first
# in one batch were fastest (with the batch-of-two split, XNNPACK's memmoves of the full layer's K and V were
# 13 % of a step), and the head reads its table in cluster order and scores by multiply-sum
# (`model.drafter.HeadForm`).
DRAFTER_ATTENTION = AttentionForm(einsum=True, cache_first_head_dim=0, halves=False)
DRAFTER_HEAD = HeadForm(clustered_table=True, multiply_sum=True)


def drafter_signatures(drafter: Gemma4Drafter, cfg, context: int, weights: ExternalWeights | None = None,
                       window_reader=dynamic_window) -> list[tuple[str, torch.nn.Module, dict]]:
    """The drafter section's signatures: LiteRT-LM's `mtp_drafter` and, with a centroid head, ours without
    the vocabulary-sized placement (docs/bundle.md#drafter-candidates). With a centroid head both read the
    token table in cluster order (`row_orders`)."""
    head = DRAFTER_HEAD if has_centroid_head(drafter) else HeadForm()
    graph = lambda candidates: DrafterGraph(drafter, cfg, weights, candidates=candidates,  # noqa: E731
                                            window_reader=window_reader, attention=DRAFTER_ATTENTION, head=head)
    jobs = [(c.SIG_DRAFTER, graph(False), drafter_sample(cfg, drafter, context, weights))]
    if has_centroid_head(drafter):
        jobs.append((c.SIG_DRAFTER_CANDIDATES, graph(True), drafter_sample(cfg, drafter, context, weights)))
    return jobs


def section_jobs(target: Gemma4Target, drafter: Gemma4Drafter, shapes: GraphShapes,
                 target_weights: ExternalWeights | None = None, drafter_weights: ExternalWeights | None = None,
                 rms_norm: str = "ops") -> dict[str, list[tuple[str, torch.nn.Module, dict]]]:
    """{section: [(signature, graph module, sample kwargs)]}; with `*_weights`, the graphs take the
    weights as inputs; `rms_norm` picks the target's norm form from `NORMS`."""
    if rms_norm not in NORMS:
        raise ValueError(f"rms_norm '{rms_norm}': expected one of {', '.join(NORMS)}")
    norm = NORMS[rms_norm]
    cfg = target.cfg
    only = lambda *keys: target_weights.subset(lambda k: k in keys) if target_weights else None  # noqa: E731
    body_weights = target_weights.subset(lambda k: k != "embed_tokens_per_layer.weight") if target_weights else None
    embed_weights, ple_weights = only("embed_tokens.weight"), only("embed_tokens_per_layer.weight")
    # decode and verify read the same window length (verify's), which keeps their rows equal bit for bit;
    # prefill still reads the whole buffer (windowed prefill chunks, each length with its own window, are not
    # measured yet)
    reads = SlidingReads.for_rows(dynamic_window, cfg.sliding_window, shapes.draft_len + 1, shapes.context)
    body = TargetGraph(target, dus_writer, external=body_weights, norm=norm, sliding_reads=reads,
                       attention=attention_form())
    prefill = TargetGraph(target, dus_writer, with_outputs=False, external=body_weights, norm=norm)
    jobs = {
        c.EMBEDDER: [(c.SIG_EMBEDDER, LookupGraph(target, c.EMBEDDINGS, embed_weights),
                      lookup_sample(1, embed_weights))],
        c.PER_LAYER_EMBEDDER: [(c.SIG_PER_LAYER_EMBEDDER, LookupGraph(target, c.PER_LAYER_EMBEDDINGS, ple_weights),
                                lookup_sample(1, ple_weights))],
        c.PREFILL_DECODE: [(c.prefill_signature(n), prefill, target_sample(cfg, n, shapes.context, body_weights))
                           for n in shapes.prefill_lengths]
        + [(c.SIG_DECODE, body, target_sample(cfg, 1, shapes.context, body_weights)),
           (c.SIG_VERIFY, body, target_sample(cfg, shapes.draft_len + 1, shapes.context, body_weights))],
        c.MTP_DRAFTER: drafter_signatures(drafter, cfg, shapes.context, drafter_weights),
    }
    if not cfg.ple_dim:
        del jobs[c.PER_LAYER_EMBEDDER]
    return jobs


def convert_sections(jobs: dict[str, list], workdir: Path, on_section=None) -> dict[str, Path]:
    """Write one `.tflite` per section into `workdir`; returns {section: path}."""
    paths = {}
    with torch.no_grad():
        for section, signatures in jobs.items():
            paths[section] = _convert(signatures, workdir / f"{section}.graph.tflite")
            if on_section:
                on_section(section)
    return paths
