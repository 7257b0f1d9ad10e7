"""The bundle's graphs as thin wrappers over the one model definition, with LiteRT-LM's tensor names.

LiteRT-LM's Gemma 4 split layout (what its engine requires for MTP speculative decoding):

    tf_lite_embedder            token_ids [1,1] int32            -> embeddings [1,1,H]
    tf_lite_per_layer_embedder  token_ids [1,1] int32            -> per_layer_embeddings [1,1,L,P]
    tf_lite_prefill_decode      prefill_<N> / decode / verify:
                                embeddings [1,T,H], per_layer_embeddings [1,T,L,P], input_pos [T] int32,
                                kv_cache_k_<i> [1,N,S,D], kv_cache_v_<i> [1,N,D,S]  (i = KV-producing layers)
                             -> kv_cache_* (same names), and for decode/verify also
                                logits [1,T,V] and activations [1,T,H] (the final normed hidden state)
    tf_lite_mtp_drafter         activations [1,1,2H] (embedding first, carry second), input_pos [1] int32,
                                mask [1,1,1,S] bool, the two store layers' kv_cache_* (read-only)
                             -> logits [1,1,V], projected_activations [1,1,H]

The engine never reads prefill logits, so prefill signatures return the cache only.

Drafter conventions (LiteRT-LM's CPU executor): `input_pos` is the position *before* the query
token (the query itself sits at input_pos + 1, where transformers applies RoPE), and `mask` marks the
target K/V slots the round may read. From its last visible slot e the graph derives both views:
full layers read slots 0..min(e, input_pos + 1), sliding layers e-W..e. LiteRT-LM passes slots
0..input_pos, which is the "clean" view; our runtime passes the transformers-exact view by moving e
(see `edge_mtp.runtime.views`).
"""

from __future__ import annotations

import torch
from torch import nn

from edge_mtp.model import FULL, SLIDING, Gemma4Drafter, Gemma4Target, TextConfig


def kv_names(cfg: TextConfig) -> list[str]:
    """Cache tensor names in the order of `Gemma4Target.kv_shapes`: k_i, v_i per producer layer i."""
    return [f"kv_cache_{kind}_{i}" for i in cfg.producer_layers for kind in ("k", "v")]


def drafter_kv_names(cfg: TextConfig) -> list[str]:
    """The target cache tensors the drafter reads: K, V of the last sliding and the last full producer."""
    s, f = cfg.store_layer(SLIDING), cfg.store_layer(FULL)
    return [f"kv_cache_k_{s}", f"kv_cache_v_{s}", f"kv_cache_k_{f}", f"kv_cache_v_{f}"]


def _short(name: str) -> str:
    """Converters flatten a `kv_cache` dict argument into `kv_cache_<key>`; this is the key."""
    return name.removeprefix("kv_cache_")


class LookupGraph(nn.Module):
    """An embedder section: token_ids [1,1] int32 -> `embeddings` or `per_layer_embeddings`."""

    def __init__(self, target: Gemma4Target, output: str):
        super().__init__()
        self.target = target
        self.output = output
        self.lookup = target.embed if output == "embeddings" else target.embed_per_layer

    def forward(self, token_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.output: self.lookup(token_ids)}


class TargetGraph(nn.Module):
    """One target signature; `with_outputs=False` for prefill (cache only)."""

    def __init__(self, target: Gemma4Target, with_outputs: bool = True):
        super().__init__()
        self.target = target
        self.with_outputs = with_outputs
        self.names = kv_names(target.cfg)

    def forward(self, embeddings, input_pos, kv_cache: dict[str, torch.Tensor], per_layer_embeddings=None):
        kv = [kv_cache[_short(n)] for n in self.names]
        hidden, *kv = self.target.decode(embeddings, per_layer_embeddings, input_pos, *kv)
        out = dict(zip(self.names, kv, strict=True))
        if self.with_outputs:
            out["logits"] = self.target.lm_head(hidden)
            out["activations"] = hidden
        return out


class DrafterGraph(nn.Module):
    def __init__(self, drafter: Gemma4Drafter, target_cfg: TextConfig):
        super().__init__()
        self.drafter = drafter
        self.window = target_cfg.sliding_window
        self.names = drafter_kv_names(target_cfg)

    def views(self, input_pos: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(query position [1], sliding range [1,2], full range [1,2]) from LiteRT-LM's inputs."""
        slots = torch.arange(mask.shape[-1], dtype=input_pos.dtype)
        last = torch.max(torch.where(mask.reshape(-1), slots, torch.full_like(slots, -1)))
        query = input_pos + 1
        zero = torch.zeros_like(last)
        sliding = torch.stack([torch.clamp(last - self.window, min=0), last]).reshape(1, 2)
        full = torch.stack([zero, torch.minimum(last, query[0])]).reshape(1, 2)
        return query, sliding, full

    def forward(self, activations, input_pos, mask, kv_cache: dict[str, torch.Tensor]):
        query, sliding, full = self.views(input_pos, mask)
        k_s, v_s, k_f, v_f = (kv_cache[_short(n)] for n in self.names)
        logits, carry = self.drafter(activations, query, k_s, v_s, k_f, v_f, sliding, full)
        return {"logits": logits, "projected_activations": carry}


def sample_cache(target: Gemma4Target, context: int, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Zero cache tensors keyed for a `kv_cache` argument; one tensor object per input (toolchain.md §8.21:
    a shared sample tensor gets merged into a single graph input)."""
    all_names = kv_names(target.cfg)
    shapes = dict(zip(all_names, target.kv_shapes(context), strict=True))
    dtype = target.embed_tokens.weight.dtype
    return {_short(n): torch.zeros(shapes[n], dtype=dtype) for n in (names or all_names)}


def target_sample(target: Gemma4Target, tokens: int, context: int) -> dict:
    cfg = target.cfg
    dtype = target.embed_tokens.weight.dtype
    sample = {
        "embeddings": torch.zeros(1, tokens, cfg.hidden_size, dtype=dtype),
        "input_pos": torch.arange(tokens, dtype=torch.int32),
        "kv_cache": sample_cache(target, context),
    }
    if cfg.ple_dim:
        sample["per_layer_embeddings"] = torch.zeros(1, tokens, cfg.num_layers, cfg.ple_dim, dtype=dtype)
    return sample


def drafter_sample(target: Gemma4Target, drafter: Gemma4Drafter, context: int) -> dict:
    dtype = target.embed_tokens.weight.dtype
    return {
        "activations": torch.zeros(1, 1, 2 * drafter.cfg.backbone_hidden_size, dtype=dtype),
        "input_pos": torch.zeros(1, dtype=torch.int32),
        "mask": torch.ones(1, 1, 1, context, dtype=torch.bool),
        "kv_cache": sample_cache(target, context, drafter_kv_names(target.cfg)),
    }
