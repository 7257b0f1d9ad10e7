"""The self-distillation objective of the MTP drafter: K chained draft steps against the target's own
next-token distributions, fed exactly what the speculative loop feeds them.

A round of the loop (`edge_mtp.runtime.loop`) starts at the position q of the last known token x_q: the
target has processed x_0..x_{q-1}, so its K/V cache holds those slots, and its final normed hidden state
h_{q-1} is the drafter's first carry. Draft step j (0-based) then reads concat(E[token_j] * sqrt(H), carry_j)
at the constant query position q, attends to the target's store-layer K/V of slots < q (the `clean` view
of `edge_mtp.runtime.views`: the last W+1 slots on sliding layers, all of them on full layers), and
predicts the token at q+j+1; its own `post_projection` output is carry_{j+1}.

One teacher-forced target pass over a window x_0..x_{T-1} provides everything for every round start q at
once: the hidden states, the K/V, and the target's distribution p(. | x_<=q+j) for each draft step. The
drafter is trained to match those distributions, not the text's next tokens (DistillSpec, Zhou et al.
2024: acceptance is decided by agreement with the target, Leviathan et al. 2023), over K chained steps with
gradients through the carry (the multi-token objective of Gloeckle et al. 2024, "Better & Faster Large
Language Models via Multi-token Prediction", in the feature-feeding form of EAGLE, Li et al. 2024). The
tokens fed to steps j >= 1 are the window's own (teacher forcing): under greedy verification, step j only
counts when the drafts before it were accepted, i.e. when the context was the target's own choice.

The centroid head ("ordered embeddings") is trained on the same distributions summed per cluster, so that
its top-k clusters hold the target's likely tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from edge_mtp.model import FULL, SLIDING, Gemma4Drafter, Gemma4Target


@dataclass
class Teacher:
    """One teacher-forced target pass over windows [B, T]."""

    hidden: torch.Tensor  # [B, T, H] final normed hidden state (the drafter's carry)
    logits: torch.Tensor  # [B, T, V] soft-capped logits: row t is p(. | x_<=t)
    kv: dict[str, tuple[torch.Tensor, torch.Tensor]]  # store layer per type: K [B,Hkv,T,D], V [B,Hkv,D,T]


@torch.no_grad()
def teacher_pass(target: Gemma4Target, tokens: torch.Tensor) -> Teacher:
    """Run the target over `tokens` [B, T] at positions 0..T-1 with a fresh cache of exactly T slots."""
    b, t = tokens.shape
    dtype = target.embed_tokens.weight.dtype
    cache = [torch.zeros((b, *shape[1:]), dtype=dtype) for shape in target.kv_shapes(t)]
    ple = target.embed_per_layer(tokens) if target.cfg.ple_dim else None
    hidden, *kv = target.decode(target.embed(tokens), ple, torch.arange(t), *cache)
    stores = {kind: target.cfg.store_layer(kind) for kind in (SLIDING, FULL)}
    return Teacher(hidden, target.lm_head(hidden), {kind: (kv[2 * i], kv[2 * i + 1]) for kind, i in stores.items()})


def round_starts(length: int, k: int, first: int = 1) -> torch.Tensor:
    """Positions q of the last known token that leave room for K draft steps inside a window."""
    return torch.arange(max(1, first), length - k + 1)


def view_masks(starts: torch.Tensor, context: int, window: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Additive [1, N, S] masks of the clean drafter view for round starts q: slots q-1-W..q-1 (sliding),
    0..q-1 (full), as `edge_mtp.runtime.views.drafter_views(..., mode="clean")` gives the loop."""
    last = starts - 1
    ranges = {SLIDING: torch.stack([(last - window).clamp(min=0), last], 1),
              FULL: torch.stack([torch.zeros_like(last), last], 1)}
    return {kind: Gemma4Drafter.window_mask(r, context, dtype).transpose(0, 1) for kind, r in ranges.items()}


def draft_hidden(drafter: Gemma4Drafter, activations: torch.Tensor, starts: torch.Tensor,
                 kv: dict[str, tuple[torch.Tensor, torch.Tensor]], masks: dict[str, torch.Tensor]) -> torch.Tensor:
    """`Gemma4Drafter.hidden` for N round starts at once: activations [B, N, 2H], query positions `starts`
    [N], the target's K/V [B, ...]; the queries sit on the token axis (each with its own mask row), so the
    target's buffers are shared instead of copied per query. Returns hn [B, N, h]."""
    x = drafter.pre_projection(activations)
    rope = {kind: drafter.rotary[kind](starts[None], x.dtype) for kind in drafter.rotary}
    for i, layer in enumerate(drafter.model.layers):
        kind = drafter.cfg.text.layer_types[i]
        x, _, _ = layer(x, *rope[kind], *kv[kind], masks[kind])
    return drafter.model.norm(x)


def cluster_ids(drafter: Gemma4Drafter) -> torch.Tensor | None:
    """Cluster of every token id under the centroid head's `token_ordering` (None without one)."""
    if not drafter.cfg.use_ordered_embeddings:
        return None
    ordering = drafter.masked_embedding.token_ordering
    vocab, clusters = ordering.numel(), drafter.cfg.num_centroids
    out = torch.empty(vocab, dtype=torch.long)
    out[ordering] = torch.arange(vocab) // (vocab // clusters)
    return out


def chain_loss(target: Gemma4Target, drafter: Gemma4Drafter, tokens: torch.Tensor, k: int, first: int = 1,
               centroid_weight: float = 1.0, temperature: float = 1.0) -> tuple[torch.Tensor, dict[str, list[float]]]:
    """Mean over K chained draft steps of KL(p_target || q_drafter) (+ the centroid head's cluster loss).

    `temperature` < 1 sharpens the target's distributions towards its argmax, which is what greedy
    verification accepts (at 0+ the loss becomes cross-entropy on the target's greedy tokens; DistillSpec
    studies this choice); near-uniform targets (random stand-ins) need it.

    Also returns, per step: `kl`, `agree` (the drafter's argmax equals the target's and, with a centroid
    head, lies in one of its top-k clusters: the greedy acceptance of that step when the earlier ones were
    accepted) and `cover` (the target's argmax lies in the top-k clusters)."""
    teacher = teacher_pass(target, tokens)
    length = tokens.shape[1]
    starts = round_starts(length, k, first)
    masks = view_masks(starts, length, target.cfg.sliding_window, teacher.hidden.dtype)
    clusters = cluster_ids(drafter)
    table = drafter.model.embed_tokens.weight
    carry = teacher.hidden[:, starts - 1]
    total = torch.zeros(())
    stats: dict[str, list[float]] = {"kl": [], "agree": [], "cover": []}
    for j in range(k):
        with torch.no_grad():
            embeds = target.embed(tokens[:, starts + j])
            log_p = F.log_softmax(teacher.logits[:, starts + j].float() / temperature, dim=-1)
            best = log_p.argmax(-1)
        hn = draft_hidden(drafter, torch.cat([embeds, carry.to(embeds.dtype)], dim=-1), starts, teacher.kv, masks)
        log_q = F.log_softmax(torch.matmul(hn, table.t()).float(), dim=-1)
        p = log_p.exp()
        kl = (p * (log_p - log_q)).sum(-1).mean()
        total = total + kl
        hit = log_q.argmax(-1) == best
        covered = torch.ones_like(hit)
        if clusters is not None:
            scores = drafter.masked_embedding.centroids(hn).float()
            mass = torch.zeros(*p.shape[:-1], drafter.cfg.num_centroids).scatter_add_(
                -1, clusters.expand_as(p), p)
            total = total + centroid_weight * -(mass * F.log_softmax(scores, dim=-1)).sum(-1).mean()
            top = scores.topk(drafter.cfg.centroid_top_k, dim=-1).indices
            covered = (top == clusters[best][..., None]).any(-1)
        stats["kl"].append(float(kl.detach()))
        stats["agree"].append(float((hit & covered).float().mean()))
        stats["cover"].append(float(covered.float().mean()))
        carry = drafter.post_projection(hn)
    return total / k, stats
