"""Gemma 4 E2B/E4B text decoder (the speculative *target*), export-friendly.

Three pieces, so that an exporter can put each in its own graph (LiteRT-LM's split layout keeps the
huge per-layer-embedding table out of the decoder graph):

* `embed(tokens)`            token id -> E[id] * sqrt(H)
* `embed_per_layer(tokens)`  token id -> PLE rows E_ple[id] * sqrt(P), as [B, T, L, P]
* `forward(embeds, per_layer_tokens, positions, *kv)` -> logits (soft-capped), final normed hidden, kv

Positions of one call must be consecutive (positions[0] + 0..T-1); K/V rows are written there.
The K/V cache is explicit: one K buffer [1, Hkv, S, D] and one V buffer [1, Hkv, D, S] (LiteRT-LM's
"transposed" layout, which its engine requires) per KV-producing layer (KV-shared
layers attend to their type's "store" layer's buffer). Slot = absolute position, and slots are never
cleared: rolling back is just calling the next forward at a smaller position, because the causal mask
(`slot <= position`) hides everything written beyond it. Math: docs/model.md#decoder-layer,
docs/model.md#kv-cache-layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from edge_mtp.model.config import FULL, SLIDING, TextConfig
from edge_mtp.model.layers import (AttentionForm, DecoderLayer, KVReader, KVWriter, NormFn, RMSNorm,
                                   RotaryEmbedding, additive_mask, rms_norm, scale_constant, write_rows)

# (buffer, start slot [], length, dim) -> `length` slots of `buffer` from `start` along `dim`
WindowReader = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]

# Window starts are multiples of this. A decode at position q and the verify row at q then see every slot at
# the same index modulo 128, so reductions over the slots (softmax, p.V) add the same terms in the same order
# and verify rows stay equal to decodes bit for bit (docs/tooling.md#windowed-sliding-reads).
WINDOW_ALIGN = 128


def window_slots(window: int, rows):
    """Aligned slots that hold every position `rows` consecutive queries can see in a window of W:
    W + rows - 1 positions from a start rounded down to `WINDOW_ALIGN` (up to 127 more), rounded up to it.
    `rows` may be a symbolic size (ONNX's dynamic-T graph), so the ceiling is (n + 127) // 128 of a positive n:
    -(-n // 128) floors a negative number, which an exported integer Div truncates (128 slots short)."""
    return (window + 2 * WINDOW_ALIGN + rows - 3) // WINDOW_ALIGN * WINDOW_ALIGN


@dataclass(frozen=True)
class SlidingReads:
    """Sliding layers attend to a few consecutive cache slots instead of the whole buffer: from the window's
    first slot rounded down to `WINDOW_ALIGN`, enough for `rows` queries (`window_slots`).

    `reader` cuts the slots (LiteRT: a SLICE whose begin is a tensor; ONNX: a Slice with a computed start).
    `rows` fixes the length: decode and verify must be built with verify's, so that their reductions have the
    same length (LiteRT keeps verify rows equal to decodes bit for bit). `rows=None` sizes every call for its
    own T (`slots_for`), for one graph whose token axis is dynamic (ONNX), clamped to the buffer.
    """

    reader: WindowReader
    window: int
    rows: int | None

    @classmethod
    def for_rows(cls, reader: WindowReader, window: int, rows: int | None, context: int) -> "SlidingReads | None":
        """None where a window saves nothing (for one row, with `rows=None`) or its aligned starts would not
        stay aligned when clamped."""
        if window_slots(window, rows or 1) >= context or context % WINDOW_ALIGN:
            return None
        return cls(reader, window, rows)

    @property
    def slots(self) -> int:
        """The fixed length (`rows` given)."""
        if self.rows is None:
            raise ValueError("SlidingReads(rows=None) has a length per call: slots_for(t, context)")
        return window_slots(self.window, self.rows)

    def slots_for(self, t, context: int):
        """Slots read by a call of `t` rows (an int, or the graph's symbolic token count) from a buffer of
        `context` slots."""
        if self.rows is not None:
            return self.slots
        return torch.sym_min(window_slots(self.window, t), context)

    def start(self, first_position: torch.Tensor, slots, context: int) -> torch.Tensor:
        """The first slot read: the window of the call's first row, rounded down, kept inside the buffer."""
        first = torch.clamp(first_position - (self.window - 1), min=0)
        return torch.clamp(first // WINDOW_ALIGN * WINDOW_ALIGN, max=context - slots)

    def cut(self, start: torch.Tensor, slots) -> KVReader:
        """A `KVReader`: `slots` slots from `start` of a K [B, H, S, D] and a V [B, H, D, S] buffer."""
        return lambda k, v: (self.reader(k, start, slots, 2), self.reader(v, start, slots, 3))


class Embedding(nn.Module):
    """A bare embedding table (`.weight`), looked up and scaled by the owner."""

    def __init__(self, num: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num, dim))

    def rows(self, tokens: torch.Tensor) -> torch.Tensor:
        # F.embedding (not weight[tokens]) so that LiteRT gets an EMBEDDING_LOOKUP, which its quantizer handles
        return F.embedding(tokens, self.weight)


class Gemma4Target(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        h, p = cfg.hidden_size, cfg.ple_dim
        self.embed_tokens = Embedding(cfg.vocab_size, h)
        if p:
            self.embed_tokens_per_layer = Embedding(cfg.ple_vocab_size, cfg.num_layers * p)
            self.per_layer_model_projection = nn.Linear(h, cfg.num_layers * p, bias=False)
            self.per_layer_projection_norm = RMSNorm(p, cfg.rms_eps)
        self.layers = nn.ModuleList(
            DecoderLayer(h, cfg.num_heads, cfg.head_dims[i], cfg.kv_heads[i], cfg.intermediate_sizes[i],
                         cfg.rms_eps, produces_kv=i < cfg.first_shared_layer, ple_dim=p)
            for i in range(cfg.num_layers)
        )
        self.norm = RMSNorm(h, cfg.rms_eps)
        # sorted, not a set: module order must not follow string hashing (exports would differ across processes)
        self.rotary = nn.ModuleDict({t: RotaryEmbedding(cfg.rope[t], cfg.head_dim_of(t))
                                     for t in sorted(set(cfg.layer_types))})

    # ---- cache layout -------------------------------------------------------------------------
    @staticmethod
    def kv_shapes_of(cfg: TextConfig, context: int) -> list[tuple[int, ...]]:
        """Shapes of the flat cache list [k_0, v_0, k_1, v_1, ...] over the KV-producing layers."""
        shapes = []
        for i in cfg.producer_layers:
            heads, dim = cfg.kv_heads[i], cfg.head_dims[i]
            shapes += [(1, heads, context, dim), (1, heads, dim, context)]
        return shapes

    def kv_shapes(self, context: int) -> list[tuple[int, ...]]:
        return self.kv_shapes_of(self.cfg, context)

    def new_cache(self, context: int) -> list[torch.Tensor]:
        dtype = self.embed_tokens.weight.dtype
        return [torch.zeros(s, dtype=dtype) for s in self.kv_shapes(context)]

    # ---- embeddings ----------------------------------------------------------------------------
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        w = self.embed_tokens.weight
        return self.embed_tokens.rows(tokens) * scale_constant(math.sqrt(self.cfg.hidden_size), w.dtype)

    def embed_per_layer(self, tokens: torch.Tensor) -> torch.Tensor:
        w = self.embed_tokens_per_layer.weight
        rows = self.embed_tokens_per_layer.rows(tokens) * scale_constant(math.sqrt(self.cfg.ple_dim), w.dtype)
        return rows.reshape(*tokens.shape, self.cfg.num_layers, self.cfg.ple_dim)

    def _per_layer_inputs(self, x: torch.Tensor, per_layer_tokens: torch.Tensor, norm: NormFn) -> torch.Tensor:
        """PLE = (rms(W_plp x / sqrt(H)) + token rows) / sqrt(2), one P-vector per layer."""
        ctx = self.per_layer_model_projection(x) * self.cfg.hidden_size**-0.5
        ctx = self.per_layer_projection_norm(ctx.reshape(*x.shape[:-1], self.cfg.num_layers, self.cfg.ple_dim), norm)
        return (ctx + per_layer_tokens) * 2.0**-0.5

    # ---- decoder -------------------------------------------------------------------------------
    def masks(self, positions: torch.Tensor, context: int, dtype: torch.dtype,
              sliding_slots: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Additive [1, T, slots] masks: full = causal over the buffer; sliding = causal and within the last W
        positions, over `sliding_slots` (the slot numbers a windowed read sees) or the whole buffer."""
        slots = torch.arange(context, dtype=positions.dtype)[None, :]
        pos = positions[:, None]
        causal = slots <= pos
        if sliding_slots is not None:
            slots = sliding_slots[None, :]
        sliding = (slots <= pos) & (slots > pos - self.cfg.sliding_window)
        return {FULL: additive_mask(causal, dtype)[None], SLIDING: additive_mask(sliding, dtype)[None]}

    def decode(self, embeds: torch.Tensor, per_layer_tokens: torch.Tensor | None, positions: torch.Tensor,
               *kv: torch.Tensor, writer: KVWriter = write_rows, norm: NormFn = rms_norm,
               sliding_reads: SlidingReads | None = None,
               attention: AttentionForm = AttentionForm()) -> tuple[torch.Tensor, ...]:
        """The decoder stack over T tokens at absolute `positions` [T]: (final normed hidden [1,T,H], *kv).

        `writer` puts the new K/V rows into the cache buffers (eager runtimes write in place, exporters
        use their format's best op); `norm` computes every RMSNorm (exporters may pass the same math in
        a form their runtime fuses); `sliding_reads` lets sliding layers attend to a window of the buffer
        instead of all of it (the same result: the slots left out are masked anyway); `attention` is the form of
        the attention products (`layers.AttentionForm`).
        """
        cfg, x = self.cfg, embeds
        kv = list(kv)
        context = kv[0].shape[2]
        cut, seen = None, None
        if sliding_reads is not None:
            slots = sliding_reads.slots_for(positions.shape[0], context)
            start = sliding_reads.start(positions[0], slots, context)
            cut, seen = sliding_reads.cut(start, slots), start + torch.arange(slots, dtype=positions.dtype)
        masks = self.masks(positions, context, x.dtype, seen)
        rope = {t: self.rotary[t](positions[None], x.dtype) for t in self.rotary}
        ple = self._per_layer_inputs(x, per_layer_tokens, norm) if cfg.ple_dim else None
        views = {}  # the window of a store buffer, cut once for all the KV-shared layers that read it
        for i, layer in enumerate(self.layers):
            t, src = cfg.layer_types[i], cfg.kv_source(i)
            cos, sin = rope[t]
            read = cut if t == SLIDING else None
            ple_i = ple[:, :, i] if ple is not None else None
            if i < cfg.first_shared_layer:  # a producer: writes its rows, then reads its own buffer
                x, kv[2 * src], kv[2 * src + 1] = layer(x, cos, sin, kv[2 * src], kv[2 * src + 1], masks[t], ple_i,
                                                        positions[0], writer, norm, read, attention)
                continue
            if read is not None and src not in views:
                views[src] = read(kv[2 * src], kv[2 * src + 1])
            k, v = views[src] if read is not None else (kv[2 * src], kv[2 * src + 1])
            x, _, _ = layer(x, cos, sin, k, v, masks[t], ple_i, norm=norm, form=attention)
        return (self.norm(x, norm), *kv)

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Tied output projection with Gemma's final logit soft-cap."""
        logits = torch.matmul(hidden, self.embed_tokens.weight.t())
        if self.cfg.final_logit_softcap is not None:
            cap = self.cfg.final_logit_softcap
            logits = torch.tanh(logits / cap) * cap
        return logits

    def forward(self, embeds: torch.Tensor, per_layer_tokens: torch.Tensor | None, positions: torch.Tensor,
                *kv: torch.Tensor, writer: KVWriter = write_rows) -> tuple[torch.Tensor, ...]:
        """Run T tokens at absolute `positions` [T]; returns (logits [1,T,V], hidden [1,T,H], *kv)."""
        hidden, *kv = self.decode(embeds, per_layer_tokens, positions, *kv, writer=writer)
        return (self.lm_head(hidden), hidden, *kv)

    def run(self, tokens: torch.Tensor, positions: torch.Tensor, kv: list[torch.Tensor], last_only: bool = False,
            writer: KVWriter = write_rows):
        """Eager convenience: token ids [1, T] in, (logits, hidden, kv list) out.

        `last_only` projects only the last position (a prefill needs one row, not T x vocab floats).
        """
        ple = self.embed_per_layer(tokens) if self.cfg.ple_dim else None
        hidden, *kv = self.decode(self.embed(tokens), ple, positions, *kv, writer=writer)
        if last_only:
            hidden = hidden[:, -1:]
        return self.lm_head(hidden), hidden, kv
