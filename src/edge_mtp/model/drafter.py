"""Gemma 4 MTP drafter ("assistant"), one stateless draft step (docs/model.md#drafter-step).

    u      = concat(E_target[token] * sqrt(H_target), carry)     (built by the caller)
    x      = pre_projection(u)
    x      = 4 Q-only decoder layers attending to the *target's* store-layer K/V
    hn     = rms(x); carry' = post_projection(hn)
    logits = centroid head(hn)  (or the dense tied head)

The drafter has no cache of its own: every layer reads a window of the target's last sliding or last
full producer buffer, given as inclusive slot ranges [lo, hi], so the caller decides which slots a
step may see (the transformers-exact "stale" view or a clean one, see `edge_mtp.runtime.views`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from edge_mtp.model.config import FULL, SLIDING, DrafterConfig
from edge_mtp.model.layers import (AttentionForm, DecoderLayer, NormFn, RMSNorm, RotaryEmbedding, additive_mask,
                                   rms_norm)
from edge_mtp.model.target import Embedding


class _Backbone(nn.Module):
    """The `model.*` sub-tree of the checkpoint: tied embedding (used only as the output head), layers, norm."""

    def __init__(self, cfg: DrafterConfig):
        super().__init__()
        t = cfg.text
        self.embed_tokens = Embedding(t.vocab_size, t.hidden_size)
        self.layers = nn.ModuleList(
            DecoderLayer(t.hidden_size, t.num_heads, t.head_dims[i], t.kv_heads[i], t.intermediate_sizes[i],
                         t.rms_eps, produces_kv=False, ple_dim=0)
            for i in range(t.num_layers)
        )
        self.norm = RMSNorm(t.hidden_size, t.rms_eps)


def scatter_candidates(scores: torch.Tensor, ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """Full-vocab logits [B, 1, V]: candidate `scores` [B, 1, N] at token `ids`, min(scores) - 1 elsewhere."""
    fill = scores.amin(dim=-1, keepdim=True) - 1.0
    return fill.expand(ids.shape[0], 1, vocab).scatter(-1, ids, scores)


def keep_candidates(scores: torch.Tensor, ids: torch.Tensor, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """No placement: (scores, ids) as they are, for a runtime that places them itself: in a LiteRT graph
    the vocabulary-sized scatter costs ~3 ms of an E2B drafter step (docs/tooling.md#drafter-head)."""
    return scores, ids


def cluster_ordered(table: torch.Tensor, token_ordering: torch.Tensor) -> torch.Tensor:
    """The token table with its rows in cluster order: row j holds token `token_ordering[j]`, so the V/C
    tokens of each cluster are contiguous rows (what `HeadForm(clustered_table=True)` reads)."""
    return table[token_ordering]


@dataclass(frozen=True)
class HeadForm:
    """How `CentroidHead` reads and scores its candidates' rows, chosen per export format (like
    `layers.AttentionForm`); every form gives the same candidates, with the same logits up to the order
    of a sum. Measured on the E2B drafter step in LiteRT (docs/tooling.md#drafter-head):

    `clustered_table`: the table's rows are in cluster order (`cluster_ordered`), and the candidates'
    rows are read by position, top_k runs of V/C contiguous rows, instead of by token id from all over
    the table (a scattered lookup that waited on memory for ~1.3 ms of a 3 ms step).
    `multiply_sum`: each score as the rows times hn, summed over h, instead of a matmul against the one
    column hn (which XNNPACK ran with a 32-column kernel tile).
    """

    clustered_table: bool = False
    multiply_sum: bool = False


class CentroidHead(nn.Module):
    """Clustered LM head ("Efficient Embedder"): score 2048 centroids, keep the top-k clusters' tokens.

    Only the top_k * (V / C) candidate tokens get real logits; every other token gets min(candidates) - 1,
    so it can never be the argmax but keeps a finite probability (as transformers does). `place` puts the
    candidates into the full vocabulary (`scatter_candidates`), or `keep_candidates` leaves them to the runtime.
    `form` (`HeadForm`): how the candidates' rows are read and scored.
    """

    def __init__(self, cfg: DrafterConfig):
        super().__init__()
        self.top_k = cfg.centroid_top_k
        self.num_centroids = cfg.num_centroids
        self.centroids = nn.Linear(cfg.text.hidden_size, cfg.num_centroids, bias=False)
        self.register_buffer("token_ordering", torch.empty(cfg.text.vocab_size, dtype=torch.long))

    def forward(self, hn: torch.Tensor, table: torch.Tensor, place=scatter_candidates,
                form: HeadForm = HeadForm()) -> torch.Tensor:
        """hn: [B, 1, h]; table: the tied [V, h] embedding (in cluster order with `form.clustered_table`).
        Returns full-vocab logits [B, 1, V] (or what `place` makes of the candidates)."""
        b, vocab = hn.shape[0], table.shape[0]
        per_cluster = vocab // self.num_centroids
        top = torch.topk(self.centroids(hn), self.top_k, dim=-1).indices  # [B, 1, k]
        clusters = self.token_ordering.view(self.num_centroids, per_cluster)
        ids = clusters[top].reshape(b, 1, -1)  # [B, 1, k * V/C] canonical token ids
        rows = ids
        if form.clustered_table:  # cluster c's tokens are rows c * V/C ... (c + 1) * V/C - 1
            rows = (top.unsqueeze(-1) * per_cluster + torch.arange(per_cluster, dtype=top.dtype)).reshape(b, 1, -1)
        # F.embedding, not table[rows]: an EMBEDDING_LOOKUP, which reads a quantized table in LiteRT
        candidates = F.embedding(rows, table)  # [B, 1, N, h]
        if form.multiply_sum:
            scores = (candidates * hn.unsqueeze(-2)).sum(-1)
        else:
            scores = torch.matmul(candidates, hn.unsqueeze(-1)).squeeze(-1)  # [B, 1, N]
        return place(scores, ids, vocab)


class Gemma4Drafter(nn.Module):
    def __init__(self, cfg: DrafterConfig, dense_head: bool = False):
        super().__init__()
        self.cfg = cfg
        t = cfg.text
        self.model = _Backbone(cfg)
        self.pre_projection = nn.Linear(2 * cfg.backbone_hidden_size, t.hidden_size, bias=False)
        self.post_projection = nn.Linear(t.hidden_size, cfg.backbone_hidden_size, bias=False)
        if cfg.use_ordered_embeddings:
            self.masked_embedding = CentroidHead(cfg)
        self.dense_head = dense_head or not cfg.use_ordered_embeddings
        # sorted, not a set: module order must not follow string hashing (exports would differ across processes)
        self.rotary = nn.ModuleDict({k: RotaryEmbedding(t.rope[k], t.head_dim_of(k))
                                     for k in sorted(set(t.layer_types))})

    @staticmethod
    def window_mask(ranges: torch.Tensor, context: int, dtype: torch.dtype) -> torch.Tensor:
        """Additive [B, 1, S] mask that admits slots lo..hi (inclusive) of each row's range [B, 2]."""
        slots = torch.arange(context, dtype=ranges.dtype)[None, :]
        valid = (slots >= ranges[:, :1]) & (slots <= ranges[:, 1:])
        return additive_mask(valid, dtype)[:, None, :]

    def hidden(self, activations: torch.Tensor, position: torch.Tensor,
               k_sliding: torch.Tensor, v_sliding: torch.Tensor, k_full: torch.Tensor, v_full: torch.Tensor,
               sliding_range: torch.Tensor, full_range: torch.Tensor, attention: AttentionForm = AttentionForm(),
               norm: NormFn = rms_norm) -> torch.Tensor:
        """The normed last hidden state hn [B, 1, h] of one draft step (see `forward` for the inputs)."""
        x = self.pre_projection(activations)
        kv = {SLIDING: (k_sliding, v_sliding), FULL: (k_full, v_full)}
        masks = {
            SLIDING: self.window_mask(sliding_range, k_sliding.shape[2], x.dtype),
            FULL: self.window_mask(full_range, k_full.shape[2], x.dtype),
        }
        rope = {t: self.rotary[t](position[:, None], x.dtype) for t in self.rotary}
        for i, layer in enumerate(self.model.layers):
            t = self.cfg.text.layer_types[i]
            x, _, _ = layer(x, *rope[t], *kv[t], masks[t], norm=norm, form=attention)
        return self.model.norm(x, norm)

    def logits(self, hn: torch.Tensor, place=scatter_candidates, head: HeadForm = HeadForm()) -> torch.Tensor:
        """`place`, `head`: see `CentroidHead` (the dense head ignores them)."""
        table = self.model.embed_tokens.weight
        if self.dense_head:
            return torch.matmul(hn, table.t())
        return self.masked_embedding(hn, table, place, head)

    def forward(self, activations: torch.Tensor, position: torch.Tensor,
                k_sliding: torch.Tensor, v_sliding: torch.Tensor, k_full: torch.Tensor, v_full: torch.Tensor,
                sliding_range: torch.Tensor, full_range: torch.Tensor, place=scatter_candidates,
                attention: AttentionForm = AttentionForm(), head: HeadForm = HeadForm(), norm: NormFn = rms_norm
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """One draft step for B independent queries.

        activations [B, 1, 2H_target] (embedding first, carry second); position [B] (the query position,
        constant within a round); the target's store-layer buffers K [1 or B, Hkv, S, D], V [.., D, S];
        ranges [B, 2] inclusive visible slots; `place`, `head`: see `CentroidHead`; `attention`: the form of
        the attention products (`layers.AttentionForm`); `norm` computes every RMSNorm (the same math in the
        form a format fuses best, as for the target). Returns (logits [B, 1, V], carry [B, 1, H_target]).
        """
        hn = self.hidden(activations, position, k_sliding, v_sliding, k_full, v_full, sliding_range, full_range,
                         attention, norm)
        return self.logits(hn, place, head), self.post_projection(hn)
