"""Shapes of the stand-in checkpoints that `make_checkpoint` writes.

`e2b` / `e4b` are the published Gemma 4 E2B / E4B text decoders and their MTP assistants
(docs/model.md#configuration); `tiny-e2b` / `tiny-e4b` keep every architectural feature (PLE, KV sharing,
double-wide MLP, sliding + full layers with different head dims, p-RoPE, ordered-embedding head) at a
size that builds and runs in seconds on a CPU. Every config field is spelled out: transformers' `Gemma4TextConfig`
defaults are not E2B (hidden 2304, no final soft-cap, no KV sharing, ...).

The kwargs are plain data (no transformers import); `make.py` deep-copies them into the configs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from edge_mtp.checkpoints.tokenizer import MAX_VOCAB

S, F = "sliding_attention", "full_attention"
ROPE_PARAMETERS = {
    S: {"rope_type": "default", "rope_theta": 10000.0},
    F: {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1000000.0},
}
_DRAFTER_LAYER_TYPES = [S, S, S, F]


@dataclass(frozen=True)
class Preset:
    """Everything needed to build one target + drafter pair.

    `wrapper` picks the target class: "conditional" = `Gemma4ForConditionalGeneration` (text-only, keys
    `model.language_model.*`, the real checkpoints' layout), "causal" = `Gemma4ForCausalLM` (keys `model.*`).
    `target` and `drafter_text` are `Gemma4TextConfig` kwargs, `drafter` the `Gemma4AssistantConfig`
    kwargs other than `text_config`.
    """

    name: str
    wrapper: Literal["conditional", "causal"]
    dtype: Literal["float32", "bfloat16"]
    tokenizer_vocab_size: int
    target: Mapping[str, Any]
    drafter_text: Mapping[str, Any]
    drafter: Mapping[str, Any]


def _text_kwargs(
    *,
    vocab: int,
    hidden: int,
    intermediate: int,
    layer_types: list[str],
    heads: int,
    kv_heads: int,
    head_dim: int,
    global_head_dim: int,
    window: int,
    max_positions: int,
    ple_dim: int,
    ple_vocab: int,
    kv_shared: int,
    double_wide: bool,
    softcap: float | None,
) -> dict[str, Any]:
    """Every `Gemma4TextConfig` field, with the values all Gemma 4 edge models share filled in."""
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": len(layer_types),
        "layer_types": list(layer_types),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "global_head_dim": global_head_dim,
        "num_global_key_value_heads": None,
        "attention_k_eq_v": False,
        "sliding_window": window,
        "max_position_embeddings": max_positions,
        "rope_parameters": ROPE_PARAMETERS,
        "hidden_size_per_layer_input": ple_dim,
        "vocab_size_per_layer_input": ple_vocab,
        "num_kv_shared_layers": kv_shared,
        "use_double_wide_mlp": double_wide,
        "final_logit_softcapping": softcap,
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-6,
        "initializer_range": 0.02,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "use_bidirectional_attention": None,
        "use_cache": True,
        "tie_word_embeddings": True,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
        "enable_moe_block": False,
        "num_experts": None,
        "top_k_experts": None,
        "moe_intermediate_size": None,
    }


def _drafter_text_kwargs(target: Mapping[str, Any], *, hidden: int, intermediate: int) -> dict[str, Any]:
    """The assistant's 4 Q-only layers. Attention geometry, RoPE, window and vocab are copied from the
    target because the drafter attends to the target's K/V and scores the target's vocab (nothing in
    transformers checks a mismatch: docs/model.md#config-pitfalls)."""
    return _text_kwargs(
        vocab=target["vocab_size"],
        hidden=hidden,
        intermediate=intermediate,
        layer_types=_DRAFTER_LAYER_TYPES,
        heads=4,
        kv_heads=target["num_key_value_heads"],
        head_dim=target["head_dim"],
        global_head_dim=target["global_head_dim"],
        window=target["sliding_window"],
        max_positions=target["max_position_embeddings"],
        ple_dim=0,
        ple_vocab=0,
        kv_shared=len(_DRAFTER_LAYER_TYPES),
        double_wide=False,
        softcap=None,
    )


def _preset(
    name: str,
    *,
    wrapper: Literal["conditional", "causal"],
    dtype: Literal["float32", "bfloat16"],
    target: dict[str, Any],
    drafter_hidden: int,
    drafter_intermediate: int,
    num_centroids: int,
    top_k: int,
) -> Preset:
    """Tie a target to its drafter: the drafter's backbone width is the target's hidden size."""
    return Preset(
        name=name,
        wrapper=wrapper,
        dtype=dtype,
        tokenizer_vocab_size=min(target["vocab_size"], MAX_VOCAB),
        target=target,
        drafter_text=_drafter_text_kwargs(target, hidden=drafter_hidden, intermediate=drafter_intermediate),
        drafter={
            "backbone_hidden_size": target["hidden_size"],
            "use_ordered_embeddings": True,
            "num_centroids": num_centroids,
            "centroid_intermediate_top_k": top_k,
            "tie_word_embeddings": True,
        },
    )


PRESETS: dict[str, Preset] = {
    "tiny-e2b": _preset(
        "tiny-e2b",
        wrapper="conditional",
        dtype="float32",
        target=_text_kwargs(
            vocab=4096, hidden=128, intermediate=256, layer_types=([S] * 4 + [F]) * 2, heads=4, kv_heads=1,
            head_dim=32, global_head_dim=64, window=16, max_positions=4096, ple_dim=16, ple_vocab=4096,
            kv_shared=5, double_wide=True, softcap=30.0,
        ),
        drafter_hidden=64, drafter_intermediate=256, num_centroids=64, top_k=8,
    ),
    "tiny-e4b": _preset(
        "tiny-e4b",
        wrapper="causal",
        dtype="float32",
        target=_text_kwargs(
            vocab=4096, hidden=160, intermediate=320, layer_types=([S] * 5 + [F]) * 2, heads=4, kv_heads=2,
            head_dim=32, global_head_dim=64, window=16, max_positions=4096, ple_dim=16, ple_vocab=4096,
            kv_shared=6, double_wide=False, softcap=30.0,
        ),
        drafter_hidden=64, drafter_intermediate=256, num_centroids=64, top_k=8,
    ),
    # The built-in demo pair's shape (`edge_mtp.train.demo` trains it on the Python standard library;
    # the trained pair is committed under src/edge_mtp/demo_pair/): E2B's layer pattern at 15 layers,
    # GQA 2:1, full-layer head dim = 2 x sliding, KV sharing on the last 6 layers with the double-wide MLP,
    # a window of 128 so that prompts of a few hundred tokens exercise it, and E2B's assistant layout.
    "demo": _preset(
        "demo",
        wrapper="conditional",
        dtype="float32",
        target=_text_kwargs(
            vocab=4096, hidden=128, intermediate=256, layer_types=([S] * 4 + [F]) * 3, heads=2, kv_heads=1,
            head_dim=64, global_head_dim=128, window=128, max_positions=2048, ple_dim=8, ple_vocab=4096,
            kv_shared=6, double_wide=True, softcap=30.0,
        ),
        drafter_hidden=128, drafter_intermediate=512, num_centroids=64, top_k=8,
    ),
    # ~103 M-parameter target (embeddings included; 48 M of it embeddings + PLE tables) for benchmarks:
    # E2B's layer pattern, GQA 8:1, global head dim = 2 x sliding, window 512, KV sharing on the last
    # 40% of layers and E2B's drafter geometry (256 wide, 128 vocab rows per centroid, top-32 centroids).
    "small-e2b": _preset(
        "small-e2b",
        wrapper="conditional",
        dtype="float32",
        target=_text_kwargs(
            vocab=32768, hidden=512, intermediate=1024, layer_types=([S] * 4 + [F]) * 3, heads=8, kv_heads=1,
            head_dim=128, global_head_dim=256, window=512, max_positions=32768, ple_dim=64, ple_vocab=32768,
            kv_shared=6, double_wide=True, softcap=30.0,
        ),
        drafter_hidden=256, drafter_intermediate=2048, num_centroids=256, top_k=32,
    ),
    "e2b": _preset(
        "e2b",
        wrapper="conditional",
        dtype="bfloat16",
        target=_text_kwargs(
            vocab=262144, hidden=1536, intermediate=6144, layer_types=([S] * 4 + [F]) * 7, heads=8, kv_heads=1,
            head_dim=256, global_head_dim=512, window=512, max_positions=131072, ple_dim=256, ple_vocab=262144,
            kv_shared=20, double_wide=True, softcap=30.0,
        ),
        drafter_hidden=256, drafter_intermediate=2048, num_centroids=2048, top_k=32,
    ),
    "e4b": _preset(
        "e4b",
        wrapper="conditional",
        dtype="bfloat16",
        target=_text_kwargs(
            vocab=262144, hidden=2560, intermediate=10240, layer_types=([S] * 5 + [F]) * 7, heads=8, kv_heads=2,
            head_dim=256, global_head_dim=512, window=512, max_positions=131072, ple_dim=256, ple_vocab=262144,
            kv_shared=18, double_wide=False, softcap=30.0,
        ),
        drafter_hidden=256, drafter_intermediate=2048, num_centroids=2048, top_k=32,
    ),
}
