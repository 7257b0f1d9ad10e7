"""A drafter's folder in the layout transformers' `save_pretrained` writes for `Gemma4AssistantForCausalLM`,
without transformers: config.json, generation_config.json, model.safetensors (metadata `format: pt`).

A drafter trained from an `--init` folder keeps that folder's config.json; a fresh one gets a config
derived from the target's (attention geometry, RoPE, window and vocabulary must be the target's because
the drafter reads the target's K/V and scores its vocabulary), with E2B's assistant shape: 4 Q-only layers,
three sliding and one full.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from edge_mtp.atomic import atomic_dir
from edge_mtp.model import FULL, SLIDING, DrafterConfig, Gemma4Drafter, TargetConfig
from edge_mtp.model.config import load_drafter_config, parse_text_config, read_json

DRAFTER_LAYER_TYPES = (SLIDING, SLIDING, SLIDING, FULL)  # E2B / E4B assistants
_PER_MODEL_KEYS = ("per_layer_config", "global_head_dim", "num_global_key_value_heads")


def fresh_drafter_config(target: TargetConfig, hidden: int, intermediate: int, heads: int, centroids: int,
                         top_k: int) -> dict:
    """config.json of a new assistant for `target`, as transformers serialises `Gemma4AssistantConfig`."""
    raw = read_json(target.path / "config.json")
    text = copy.deepcopy(raw["text_config"] if raw.get("model_type") == "gemma4" else raw)
    t = target.text
    full = [i for i, kind in enumerate(DRAFTER_LAYER_TYPES) if kind == FULL]
    for key in _PER_MODEL_KEYS:
        text.pop(key, None)
    text.update({
        "hidden_size": hidden, "intermediate_size": intermediate, "num_attention_heads": heads,
        "num_hidden_layers": len(DRAFTER_LAYER_TYPES), "layer_types": list(DRAFTER_LAYER_TYPES),
        "head_dim": t.head_dim_of(SLIDING), "num_key_value_heads": t.kv_heads_of(SLIDING),
        "hidden_size_per_layer_input": 0, "vocab_size_per_layer_input": 0,
        "num_kv_shared_layers": len(DRAFTER_LAYER_TYPES), "use_double_wide_mlp": False,
        "final_logit_softcapping": None, "model_type": "gemma4_text", "dtype": "float32",
    })
    overrides = {"head_dim": t.head_dim_of(FULL)}
    if t.kv_heads_of(FULL) != t.kv_heads_of(SLIDING):
        overrides["num_key_value_heads"] = t.kv_heads_of(FULL)
    text["per_layer_config"] = {str(i): dict(overrides) for i in full}
    parse_text_config(text, f"fresh drafter for {target.path}")  # fail here, not in the loader
    return {
        "architectures": ["Gemma4AssistantForCausalLM"], "backbone_hidden_size": t.hidden_size,
        "centroid_intermediate_top_k": top_k, "dtype": "float32", "model_type": "gemma4_assistant",
        "num_centroids": centroids, "text_config": dict(sorted(text.items())), "tie_word_embeddings": True,
        "use_ordered_embeddings": True,
    }


def generation_config(target: TargetConfig, draft_len: int, init: Path | None) -> dict:
    """The init drafter's generation_config.json (or a fresh one) with `num_assistant_tokens` = K."""
    path = init / "generation_config.json" if init is not None else None
    if path is not None and path.is_file():
        gen = read_json(path)
    else:
        gen = {"_from_model_config": True, "bos_token_id": target.bos_id, "eos_token_id": 1,
               "output_attentions": False, "output_hidden_states": False, "pad_token_id": 0, "use_cache": True}
    gen["num_assistant_tokens"] = draft_len
    return dict(sorted(gen.items()))


def config_from_dict(config: dict, where: Path) -> DrafterConfig:
    """Parse a config dict with the loader's own parser (it reads files, so go through a temp file)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        cfg = load_drafter_config(tmp)
    return DrafterConfig(**{**cfg.__dict__, "path": where})


@torch.no_grad()
def init_fresh(drafter: Gemma4Drafter, seed: int) -> None:
    """transformers' initialisation (normal(0, 0.02) matrices and tables, unit norms), except the q-norm
    gains: D^-0.5, the usual softmax(q.k / sqrt(D)) temperature, since Gemma 4 scores with scale 1."""
    g = torch.Generator().manual_seed(seed)
    for name, p in drafter.named_parameters():
        if p.dim() >= 2:
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        elif name.endswith("q_norm.weight"):
            p.fill_(p.numel() ** -0.5)
        else:
            p.fill_(1.0)


def state_for_save(drafter: Gemma4Drafter, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The drafter's state dict as save_pretrained stores it: float tensors in `dtype`, contiguous, on CPU."""
    out = {}
    for key, value in drafter.state_dict().items():
        value = value.detach().cpu()
        out[key] = (value.to(dtype) if value.is_floating_point() else value).contiguous()
    return out


def write_drafter(out_dir: Path, state: dict[str, torch.Tensor], config: dict, gen: dict,
                  extra: dict[str, bytes]) -> None:
    """Write the folder atomically: everything goes into a temp dir beside `out_dir`, renamed at the end."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out_dir) as tmp:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2, sort_keys=True) + "\n")
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        for name, data in extra.items():
            (tmp / name).write_bytes(data)
        for path in tmp.iterdir():
            path.chmod(0o644)  # safetensors writes 0600; the folder is ordinary output
        if out_dir.exists():
            out_dir.rmdir()  # an empty directory is the only thing replaced (checked before training)


def default_shape(target: TargetConfig) -> dict[str, int]:
    """A fresh drafter's size: E2B's assistant is 256 wide with a 2048-wide MLP and 4 heads next to a
    1536-wide target; smaller targets get a quarter of their width (at least 64)."""
    hidden = 256 if target.text.hidden_size >= 1024 else max(64, target.text.hidden_size // 4)
    vocab = target.text.vocab_size
    centroids = 2048 if vocab >= 2048 * 128 else max(1, 2 ** int(math.log2(max(1, vocab // 64))))
    while vocab % centroids:
        centroids //= 2
    return {"hidden": hidden, "intermediate": 8 * hidden, "heads": 4, "centroids": centroids,
            "top_k": max(1, min(32, centroids // 8))}
