"""Small building blocks of the Gemma 4 decoder, written for export (static shapes, 4-D matmuls only).

Module and parameter names mirror transformers' `Gemma4Text*` classes so that a checkpoint's state dict
maps onto these modules key for key (docs/model.md#decoder-layer, docs/model.md#checkpoint-layout).
Nothing here knows about quantization,
backends or caches beyond "a K/V buffer tensor and the slots to write".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from edge_mtp.model.config import RopeSpec


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Gemma 4 RMSNorm: computed in fp32, multiplies by `weight` as-is (not `1 + weight` as in Gemma 1-3).

    The default `NormFn`; an exporter may pass another with the same math (e.g. this one wrapped as a
    LiteRT composite op, `edge_mtp.export.litert.composite_rms_norm`)."""
    # Rows flattened to [N, dim] first: the same values in torch, but in a one-token LiteRT graph the converter
    # otherwise folds the reduction into a rank-changing MUL/MEAN pair that XNNPACK sums in another order
    # than the T-row graph, so decode and verify row 0 differed by ~1 ulp, enough to flip near-tied greedy
    # tokens with MTP on (docs/tooling.md#row-invariant-graphs).
    xf = x.float().reshape(-1, x.shape[-1])
    # rsqrt, not pow(., -0.5): the same values in torch (its pow takes the rsqrt path for -0.5), but LiteRT's
    # converter keeps a POW for one-token graphs, which XNNPACK does not run (one delegate partition per norm)
    out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        out = out * weight.float()
    return out.reshape(x.shape).type_as(x)


NormFn = Callable[[torch.Tensor, torch.Tensor | None, float], torch.Tensor]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, with_scale: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if with_scale else None

    def forward(self, x: torch.Tensor, norm: NormFn = rms_norm) -> torch.Tensor:
        return norm(x, self.weight, self.eps)


def scale_constant(value: float, dtype: torch.dtype) -> torch.Tensor:
    """A multiplier rounded to the weight dtype first, as transformers does (bf16: sqrt(1536) -> 39.25)."""
    return torch.tensor(value, dtype=torch.float32).to(dtype)


def rope_inv_freq(spec: RopeSpec, head_dim: int) -> torch.Tensor:
    """Inverse frequencies; `proportional` (p-RoPE) rotates only the first share of pairs, the rest get 0.

    The exponent is divided by the full head dim in both cases (transformers `modeling_rope_utils`).
    """
    pairs = head_dim // 2
    rotated = int(spec.partial_rotary_factor * head_dim // 2) if spec.rope_type == "proportional" else pairs
    exponents = torch.arange(0, 2 * rotated, 2, dtype=torch.int64, device="cpu").float() / head_dim
    inv = 1.0 / (spec.theta**exponents)
    inv = torch.cat([inv, torch.zeros(pairs - rotated, device="cpu")])
    return inv / spec.factor


class RotaryEmbedding(nn.Module):
    """cos/sin tables for absolute positions (NeoX `rotate_half` convention)."""

    def __init__(self, spec: RopeSpec, head_dim: int):
        super().__init__()
        self.register_buffer("inv_freq", rope_inv_freq(spec, head_dim), persistent=False)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions.float()[..., None] * self.inv_freq
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, T, heads, D]; cos/sin: [B, T, D] (broadcast over heads)."""
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class MLP(nn.Module):
    """GeGLU with the tanh GELU."""

    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


@dataclass(frozen=True)
class AttentionForm:
    """How `attend` writes its two cache products, chosen per export format; every form computes the same
    sums, one dot product per output element (docs/tooling.md#attention-products-without-a-cache-transpose,
    docs/tooling.md#cache-first-products).

    `einsum`: each product is one contraction of both last axes, which litert-torch turns into a BATCH_MATMUL
    that reads the cache as it lies; False: a matmul against a transposed view, which ONNX Runtime fuses
    into one FusedMatMul (its Einsum kernel ran the same products 3x slower).
    `cache_first_head_dim`: layers whose head dim reaches it put the cache on the left of both products
    (`_cache_times`); None: never.
    `halves`: a cache-first product with one KV head is split into a batch of two halves, as
    `_times_transposed` does; False: one batch (faster for the drafter's one token, export/litert.py).
    """

    einsum: bool = True
    cache_first_head_dim: int | None = None
    halves: bool = True

    def cache_first(self, head_dim: int) -> bool:
        return self.cache_first_head_dim is not None and head_dim >= self.cache_first_head_dim


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
           form: AttentionForm = AttentionForm()) -> torch.Tensor:
    """Grouped-query attention with scale 1.0 (Gemma 4 normalises q and k instead of scaling).

    q: [B, T, Hq, D]; k: [B, Hkv, S, D]; v: [B, Hkv, D, S] (LiteRT-LM's "transposed" cache layout);
    mask: additive [B, T, S]. The query heads that share a KV head are folded into the row axis so every
    product is a plain 4-D one (`_times_transposed`): the 5-D grouped form hits a slow LiteRT path
    (docs/tooling.md#attention-as-plain-4-d-matmuls).
    Rows are ordered (token, head), the order q already has, so with one KV head (Gemma 4 E2B) folding
    and unfolding are plain reshapes, with no transpose of q or of the output. `form` picks how the
    products are written (`AttentionForm`). Returns [B, T, Hq*D].
    """
    b, t, hq, d = q.shape
    hkv = k.shape[1]
    group = hq // hkv
    q = q.reshape(b, t, hkv, group, d).transpose(1, 2).reshape(b, hkv, t * group, d)
    if form.cache_first(d):
        product = functools.partial(_cache_times, halves=form.halves)
    else:
        product = _times_transposed
    scores = product(q, k, form.einsum)
    scores = _add_mask(scores, mask, t, group)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = product(probs, v, form.einsum)
    return out.reshape(b, hkv, t, group, d).transpose(1, 2).reshape(b, t, hq * d)


def _add_mask(scores: torch.Tensor, mask: torch.Tensor, t: int, group: int) -> torch.Tensor:
    """scores [B, Hkv, T*g, S] + mask [B, T, S], broadcast over the g heads of each token. With batch 1 as a
    4-D broadcast ADD: an expanded 5-D mask became a BROADCAST_TO that XNNPACK does not run, splitting
    every verify layer's partition (docs/tooling.md#attention-products-without-a-cache-transpose)."""
    b, hkv, _, s = scores.shape
    if b == 1:
        return (scores.reshape(hkv, t, group, s) + mask.reshape(t, 1, s)).reshape(b, hkv, t * group, s)
    return (scores.reshape(b, hkv, t, group, s) + mask[:, None, :, None, :]).reshape(b, hkv, t * group, s)


def _contract(a: torch.Tensor, b: torch.Tensor, einsum: bool) -> torch.Tensor:
    """a [B, N, R, C] . b [B, N, M, C]^T -> [B, N, R, M], as an einsum or as a matmul against b transposed."""
    return torch.einsum("bnrc,bnmc->bnrm", a, b) if einsum else torch.matmul(a, b.transpose(2, 3))


# With one KV head (E2B) a cache product has batch 1, and LiteRT's converter lowers it to a FULLY_CONNECTED with
# the cache as its "weights", which XNNPACK does not delegate: a slow builtin kernel whose cost grows with the
# rows, so verify cost far more than decode. Split into a batch of two halves (of the slots for q.K, of the head
# dim for p.V; both free views of the cache), it stays a BATCH_MATMUL in XNNPACK. Every sum is the same.
# docs/tooling.md#one-kv-head-products-as-a-batch-of-two.

def _times_transposed(x: torch.Tensor, y: torch.Tensor, einsum: bool = True) -> torch.Tensor:
    """x [B, N, R, C] . y [B, N, M, C]^T -> [B, N, R, M]: q.K (M = slots) and p.V (M = head dim, V being
    stored [D, S]). With one head and M even, y's M axis is split into a batch of two halves.

    As an einsum (`einsum`), not `x @ y.transpose`, litert-torch emits one BATCH_MATMUL that reads the cache
    as it lies, where the explicit transpose copied the whole K or V buffer on every call
    (docs/tooling.md#attention-products-without-a-cache-transpose)."""
    b, n, r, c = x.shape
    m = y.shape[2]
    if n > 1 or m % 2:
        return _contract(x, y, einsum)
    halves = _contract(torch.cat([x, x], dim=1), y.reshape(b, 2, m // 2, c), einsum)
    return halves.permute(0, 2, 1, 3).reshape(b, 1, r, m)


def _cache_times(x: torch.Tensor, cache: torch.Tensor, einsum: bool = True, halves: bool = True) -> torch.Tensor:
    """`_times_transposed(x, cache)` computed as (cache . x^T)^T, the cache being the left operand: XNNPACK then
    reads the K or V buffer as it lies instead of packing it on every call, and packs the few query rows
    (docs/tooling.md#cache-first-products). With one head and an even M the cache's M axis is split into a
    batch of two halves, as in `_times_transposed`, so that the product stays a BATCH_MATMUL. Every sum is
    the same."""
    b, n, m, c = cache.shape
    if n > 1 or m % 2 or not halves:
        return _contract(cache, x, einsum).transpose(2, 3)
    halves = _contract(cache.reshape(b, 2, m // 2, c), torch.cat([x, x], dim=1), einsum)
    return halves.reshape(b, 1, m, x.shape[2]).transpose(2, 3)


def additive_mask(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where attention is allowed, the dtype's minimum elsewhere (finite, so no NaN on export)."""
    zero = torch.zeros((), dtype=dtype)
    return torch.where(valid, zero, torch.full((), torch.finfo(dtype).min, dtype=dtype))


KVWriter = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]
# (K buffer, V buffer) -> the (K, V) an attention reads, after its own rows were written
KVReader = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def write_rows(buffer: torch.Tensor, new: torch.Tensor, start: torch.Tensor, dim: int, *,
               in_place: bool = False) -> torch.Tensor:
    """Write `new` into `buffer` at consecutive slots start, start+1, ... along `dim` (2 for K, 3 for V).

    The default K/V writer (a `KVWriter`): `index_copy` lowers to a scatter in TFLite and ONNX; eager
    runtimes pass `in_place=True` and keep one cache instead of copying it every step. Writes are always
    contiguous from the first position, never per row, because LiteRT-LM pads prefill chunks with
    position 0 (a per-row scatter would overwrite slot 0 with padding). Exporters may pass another
    writer with the same signature (e.g. LiteRT's dynamic-update-slice).
    """
    slots = start.long() + torch.arange(new.shape[dim])  # int64: ONNX's scatters take no int32 indices
    return buffer.index_copy_(dim, slots, new) if in_place else buffer.index_copy(dim, slots, new)


class Attention(nn.Module):
    """Gemma 4 attention. A KV-producing layer writes its new K/V into its buffer at `positions`;
    a KV-shared layer (and every drafter layer) only has a query projection and reads a buffer."""

    def __init__(self, hidden: int, num_heads: int, head_dim: int, num_kv_heads: int, eps: float, produces_kv: bool):
        super().__init__()
        self.head_dim = head_dim
        self.eps = eps
        self.q_proj = nn.Linear(hidden, num_heads * head_dim, bias=False)
        self.q_norm = RMSNorm(head_dim, eps)
        self.o_proj = nn.Linear(num_heads * head_dim, hidden, bias=False)
        self.produces_kv = produces_kv
        if produces_kv:
            self.k_proj = nn.Linear(hidden, num_kv_heads * head_dim, bias=False)
            self.v_proj = nn.Linear(hidden, num_kv_heads * head_dim, bias=False)
            self.k_norm = RMSNorm(head_dim, eps)

    def new_kv(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
               norm: NormFn = rms_norm) -> tuple[torch.Tensor, torch.Tensor]:
        """K (normed, rotated) and V (normed without weight) of the new tokens, both [B, Hkv, T, D]."""
        b, t, _ = h.shape
        k = self.k_norm(self.k_proj(h).view(b, t, -1, self.head_dim), norm)
        k = apply_rope(k, cos, sin).transpose(1, 2)
        v = norm(self.v_proj(h).view(b, t, -1, self.head_dim), None, self.eps).transpose(1, 2)
        return k, v

    def forward(self, h, cos, sin, k, v, mask, start=None, writer: KVWriter = write_rows, norm: NormFn = rms_norm,
                read: KVReader | None = None, form: AttentionForm = AttentionForm()):
        """Attend to buffers `k` [B, Hkv, S, D] and `v` [B, Hkv, D, S]; a producer first writes its new
        K/V at slots start.. with `writer`. `norm` computes every RMSNorm (`rms_norm` or the same math in
        an exporter's form). `read`, if given, cuts the slots attended to out of the written buffers (a
        sliding layer's window; `mask` then covers those slots). `form`: see `AttentionForm`.

        Returns (output, k, v) with the (possibly updated) whole buffers.
        """
        b, t, _ = h.shape
        if self.produces_kv:
            k_new, v_new = self.new_kv(h, cos, sin, norm)
            k = writer(k, k_new, start, 2)
            v = writer(v, v_new.transpose(2, 3), start, 3)
        q = self.q_norm(self.q_proj(h).view(b, t, -1, self.head_dim), norm)
        q = apply_rope(q, cos, sin)
        k_read, v_read = read(k, v) if read is not None else (k, v)
        return self.o_proj(attend(q, k_read, v_read, mask, form)), k, v


class DecoderLayer(nn.Module):
    """Pre/post-normed attention and MLP blocks, the optional per-layer-embedding (PLE) gate, `layer_scalar`."""

    def __init__(self, hidden: int, num_heads: int, head_dim: int, num_kv_heads: int, intermediate: int,
                 eps: float, produces_kv: bool, ple_dim: int):
        super().__init__()
        self.self_attn = Attention(hidden, num_heads, head_dim, num_kv_heads, eps, produces_kv)
        self.mlp = MLP(hidden, intermediate)
        self.input_layernorm = RMSNorm(hidden, eps)
        self.post_attention_layernorm = RMSNorm(hidden, eps)
        self.pre_feedforward_layernorm = RMSNorm(hidden, eps)
        self.post_feedforward_layernorm = RMSNorm(hidden, eps)
        self.register_buffer("layer_scalar", torch.ones(1))
        self.ple_dim = ple_dim
        if ple_dim:
            self.per_layer_input_gate = nn.Linear(hidden, ple_dim, bias=False)
            self.per_layer_projection = nn.Linear(ple_dim, hidden, bias=False)
            self.post_per_layer_input_norm = RMSNorm(hidden, eps)

    def forward(self, x, cos, sin, k, v, mask, per_layer_input=None, start=None, writer: KVWriter = write_rows,
                norm: NormFn = rms_norm, read: KVReader | None = None, form: AttentionForm = AttentionForm()):
        """Returns (x, k, v); see `Attention.forward` for the buffers, `norm`, `read` and `form`."""
        a, k, v = self.self_attn(self.input_layernorm(x, norm), cos, sin, k, v, mask, start, writer, norm, read,
                                 form)
        x = x + self.post_attention_layernorm(a, norm)
        m = self.mlp(self.pre_feedforward_layernorm(x, norm))
        x = x + self.post_feedforward_layernorm(m, norm)
        if self.ple_dim:
            g = F.gelu(self.per_layer_input_gate(x), approximate="tanh") * per_layer_input
            x = x + self.post_per_layer_input_norm(self.per_layer_projection(g), norm)
        return x * self.layer_scalar, k, v
