"""Gemma 4 text-decoder and MTP-drafter configs, parsed from the real `config.json` files.

No transformers import: the exporter and runtime must work from the files alone. Defaults mirror
`Gemma4TextConfig` in transformers 5.24 (docs/model.md#configuration), so a config that transformers accepts is read the
same way here. Both serialisations of the full-attention head dim are understood: Google's
`global_head_dim` / `num_global_key_value_heads` and transformers' own `per_layer_config` overrides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_mtp.errors import EdgeMTPError

SLIDING = "sliding_attention"
FULL = "full_attention"
END_OF_TURN_ID = 106  # `<end_of_turn>` in every Gemma tokenizer; a chat model stops on it

_DEFAULT_ROPE = {
    SLIDING: {"rope_type": "default", "rope_theta": 10_000.0},
    FULL: {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1_000_000.0},
}


@dataclass(frozen=True)
class RopeSpec:
    """Rotary embedding of one layer type: `default` rotates all pairs, `proportional` the first share."""

    rope_type: str
    theta: float
    partial_rotary_factor: float = 1.0
    factor: float = 1.0


@dataclass(frozen=True)
class TextConfig:
    """One Gemma 4 text decoder stack (the target's, or the drafter's 4 Q-only layers)."""

    vocab_size: int
    hidden_size: int
    num_heads: int
    layer_types: tuple[str, ...]
    head_dims: tuple[int, ...]
    kv_heads: tuple[int, ...]
    intermediate_sizes: tuple[int, ...]
    sliding_window: int
    rope: dict[str, RopeSpec]
    ple_dim: int
    ple_vocab_size: int
    num_kv_shared_layers: int
    final_logit_softcap: float | None
    rms_eps: float

    @property
    def num_layers(self) -> int:
        return len(self.layer_types)

    @property
    def first_shared_layer(self) -> int:
        return self.num_layers - self.num_kv_shared_layers

    @property
    def producer_layers(self) -> tuple[int, ...]:
        """Layers that compute K/V and own a cache buffer (everything before the KV-shared tail)."""
        return tuple(range(self.first_shared_layer))

    def store_layer(self, layer_type: str) -> int:
        """The last producer of `layer_type`: later layers of that type (and the drafter) read its K/V."""
        for i in reversed(self.producer_layers):
            if self.layer_types[i] == layer_type:
                return i
        raise EdgeMTPError(f"config.json: no KV-producing layer of type {layer_type} for the KV-shared layers to read")

    def kv_source(self, layer: int) -> int:
        """Index of the layer whose K/V buffer `layer` attends to."""
        if layer < self.first_shared_layer:
            return layer
        return self.store_layer(self.layer_types[layer])

    def head_dim_of(self, layer_type: str) -> int:
        return self.head_dims[self.layer_types.index(layer_type)]

    def kv_heads_of(self, layer_type: str) -> int:
        return self.kv_heads[self.layer_types.index(layer_type)]


@dataclass(frozen=True)
class TargetConfig:
    text: TextConfig
    weight_prefix: str  # "model.language_model." (multimodal wrapper) or "model." (text-only)
    eos_ids: tuple[int, ...]
    bos_id: int
    dtype: str
    path: Path


@dataclass(frozen=True)
class DrafterConfig:
    text: TextConfig
    backbone_hidden_size: int
    use_ordered_embeddings: bool
    num_centroids: int
    centroid_top_k: int
    num_assistant_tokens: int | None
    dtype: str
    path: Path


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, turning every failure into one line that names the file."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EdgeMTPError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgeMTPError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise EdgeMTPError(f"{path}: expected a JSON object")
    return data


def _field(d: dict, key: str, where: str, kind: type | tuple, default: Any = ...) -> Any:
    if key not in d or d[key] is None and default is not ...:
        if default is ...:
            raise EdgeMTPError(f"{where}: missing field '{key}'")
        return default
    value = d[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise EdgeMTPError(f"{where}: field '{key}' = {value!r}, expected {getattr(kind, '__name__', kind)}")
    return value


def _layer_types(d: dict, num_layers: int, where: str) -> list[str]:
    types = d.get("layer_types")
    if types is None:  # transformers' default 5:1 pattern
        types = [SLIDING if (i + 1) % 6 else FULL for i in range(num_layers)]
    types = list(types)
    if len(types) != num_layers or any(t not in (SLIDING, FULL) for t in types):
        raise EdgeMTPError(f"{where}: 'layer_types' must list {num_layers} of {SLIDING}/{FULL}")
    types[-1] = FULL  # transformers forces the last layer to full attention
    return types


def _per_layer_overrides(d: dict, types: list[str], where: str) -> list[dict[str, int]]:
    """Resolve `global_head_dim` or `per_layer_config` into one override dict per layer."""
    overrides: list[dict[str, int]] = [{} for _ in types]
    plc = d.get("per_layer_config")
    if plc is None:
        full = {"head_dim": _field(d, "global_head_dim", where, int, 512)}
        if d.get("attention_k_eq_v") and d.get("num_global_key_value_heads") is not None:
            full["num_key_value_heads"] = d["num_global_key_value_heads"]
        for i, t in enumerate(types):
            if t == FULL:
                overrides[i] = dict(full)
        return overrides
    if not isinstance(plc, dict):
        raise EdgeMTPError(f"{where}: 'per_layer_config' must be an object")
    for key, values in plc.items():
        if key in (SLIDING, FULL):
            layers = [i for i, t in enumerate(types) if t == key]
        elif str(key).isdigit() and int(key) < len(types):
            layers = [int(key)]
        else:
            raise EdgeMTPError(f"{where}: per_layer_config key '{key}' is not a layer index or layer type")
        for name, value in dict(values).items():
            if name not in ("head_dim", "num_key_value_heads", "intermediate_size"):
                raise EdgeMTPError(f"{where}: per_layer_config.{key}.{name} is not supported")
            for i in layers:
                overrides[i][name] = int(value)
    return overrides


def _rope(d: dict, where: str) -> dict[str, RopeSpec]:
    params = d.get("rope_parameters") or _DEFAULT_ROPE
    specs = {}
    for layer_type in (SLIDING, FULL):
        p = params.get(layer_type)
        if not isinstance(p, dict):
            raise EdgeMTPError(f"{where}: rope_parameters.{layer_type} missing")
        rope_type = p.get("rope_type", "default")
        if rope_type not in ("default", "proportional"):
            raise EdgeMTPError(f"{where}: rope_parameters.{layer_type}.rope_type '{rope_type}' is not supported")
        specs[layer_type] = RopeSpec(
            rope_type=rope_type,
            theta=float(p.get("rope_theta", 10_000.0)),
            partial_rotary_factor=float(p.get("partial_rotary_factor", 1.0)),
            factor=float(p.get("factor", 1.0)),
        )
    return specs


def _reject_unsupported(d: dict, where: str) -> None:
    """Features of the larger Gemma 4 models that E2B/E4B (and this code) do not have."""
    if d.get("enable_moe_block"):
        raise EdgeMTPError(f"{where}: enable_moe_block=true (MoE Gemma 4) is not supported; expected E2B/E4B")
    if d.get("attention_k_eq_v"):
        raise EdgeMTPError(f"{where}: attention_k_eq_v=true is not supported; expected E2B/E4B")
    if d.get("use_bidirectional_attention") == "all":
        raise EdgeMTPError(f"{where}: use_bidirectional_attention='all' is not a causal decoder")
    act = d.get("hidden_activation", "gelu_pytorch_tanh")
    if act != "gelu_pytorch_tanh":
        raise EdgeMTPError(f"{where}: hidden_activation '{act}' is not supported; expected gelu_pytorch_tanh")


def parse_text_config(d: dict, where: str) -> TextConfig:
    """Parse a `gemma4_text` config dict (a target's `text_config` or a drafter's)."""
    _reject_unsupported(d, where)
    num_layers = _field(d, "num_hidden_layers", where, int)
    types = _layer_types(d, num_layers, where)
    overrides = _per_layer_overrides(d, types, where)
    head_dim = _field(d, "head_dim", where, int, 256)
    kv_heads = _field(d, "num_key_value_heads", where, int, 4)
    inter = _field(d, "intermediate_size", where, int, 9216)
    shared = _field(d, "num_kv_shared_layers", where, int, 0)
    if not 0 <= shared <= num_layers:
        raise EdgeMTPError(f"{where}: num_kv_shared_layers={shared} outside 0..{num_layers}")
    double_wide = bool(d.get("use_double_wide_mlp", False))
    first_shared = num_layers - shared
    inters = tuple(
        o.get("intermediate_size", inter) * (2 if double_wide and i >= first_shared else 1)
        for i, o in enumerate(overrides)
    )
    cfg = TextConfig(
        vocab_size=_field(d, "vocab_size", where, int, 262_144),
        hidden_size=_field(d, "hidden_size", where, int),
        num_heads=_field(d, "num_attention_heads", where, int, 8),
        layer_types=tuple(types),
        head_dims=tuple(o.get("head_dim", head_dim) for o in overrides),
        kv_heads=tuple(o.get("num_key_value_heads", kv_heads) for o in overrides),
        intermediate_sizes=inters,
        sliding_window=_field(d, "sliding_window", where, int, 512),
        rope=_rope(d, where),
        ple_dim=_field(d, "hidden_size_per_layer_input", where, int, 256),
        ple_vocab_size=_field(d, "vocab_size_per_layer_input", where, int, 262_144),
        num_kv_shared_layers=shared,
        final_logit_softcap=_field(d, "final_logit_softcapping", where, float, None),
        rms_eps=_field(d, "rms_norm_eps", where, float, 1e-6),
    )
    for kv in cfg.kv_heads:
        if kv <= 0 or cfg.num_heads % kv:
            raise EdgeMTPError(f"{where}: num_attention_heads={cfg.num_heads} is not a multiple of {kv} KV heads")
    if shared < num_layers:
        for t in set(types[first_shared:]):
            cfg.store_layer(t)
    return cfg


def _generation_config(directory: Path) -> dict:
    path = directory / "generation_config.json"
    return read_json(path) if path.exists() else {}


def _as_id_tuple(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (int(value),)


def load_target_config(directory: Path | str) -> TargetConfig:
    """Read `config.json` (+ `generation_config.json`) of a Gemma 4 E2B/E4B target checkpoint."""
    directory = Path(directory)
    path = directory / "config.json"
    d = read_json(path)
    model_type = d.get("model_type")
    if model_type == "gemma4":
        text = d.get("text_config")
        if not isinstance(text, dict):
            raise EdgeMTPError(f"{path}: model_type gemma4 without a 'text_config' object")
        prefix, where = "model.language_model.", f"{path} text_config"
    elif model_type == "gemma4_text":
        text, prefix, where = d, "model.", str(path)
    else:
        raise EdgeMTPError(
            f"{path}: model_type {model_type!r} is not a Gemma 4 target; expected 'gemma4' or 'gemma4_text'"
        )
    cfg = parse_text_config(text, where)
    gen = _generation_config(directory)
    eos = _as_id_tuple(gen.get("eos_token_id", text.get("eos_token_id", d.get("eos_token_id", 1))))
    return TargetConfig(
        text=cfg,
        weight_prefix=prefix,
        eos_ids=tuple(dict.fromkeys((*eos, END_OF_TURN_ID))),  # a chat turn ends there even if unlisted
        bos_id=int(gen.get("bos_token_id", text.get("bos_token_id", 2)) or 2),
        dtype=str(d.get("dtype") or d.get("torch_dtype") or text.get("dtype") or "float32"),
        path=directory,
    )


def load_drafter_config(directory: Path | str) -> DrafterConfig:
    """Read `config.json` of a `Gemma4AssistantForCausalLM` (MTP drafter) checkpoint."""
    directory = Path(directory)
    path = directory / "config.json"
    d = read_json(path)
    if d.get("model_type") != "gemma4_assistant":
        raise EdgeMTPError(
            f"{path}: model_type {d.get('model_type')!r} is not a Gemma 4 drafter; expected 'gemma4_assistant'"
        )
    text = d.get("text_config")
    if not isinstance(text, dict):
        raise EdgeMTPError(f"{path}: missing 'text_config' object")
    text = dict(text)
    if not text.get("num_kv_shared_layers"):  # transformers: every drafter layer reads the target's K/V
        text["num_kv_shared_layers"] = text.get("num_hidden_layers")
    where = f"{path} text_config"
    cfg = parse_text_config({**text, "hidden_size_per_layer_input": 0}, where)
    if text.get("hidden_size_per_layer_input", 0) or text.get("use_double_wide_mlp"):
        raise EdgeMTPError(f"{where}: a drafter has no per-layer embeddings and no double-wide MLP")
    if cfg.num_kv_shared_layers != cfg.num_layers:
        raise EdgeMTPError(f"{where}: num_kv_shared_layers must equal num_hidden_layers={cfg.num_layers}")
    ordered = bool(d.get("use_ordered_embeddings", False))
    num_centroids = _field(d, "num_centroids", str(path), int, 2048)
    top_k = _field(d, "centroid_intermediate_top_k", str(path), int, 32)
    if ordered and (cfg.vocab_size % num_centroids or not 0 < top_k <= num_centroids):
        raise EdgeMTPError(
            f"{path}: vocab_size {cfg.vocab_size} must split into num_centroids={num_centroids} clusters "
            f"and 0 < centroid_intermediate_top_k={top_k} <= num_centroids"
        )
    k = _generation_config(directory).get("num_assistant_tokens")
    return DrafterConfig(
        text=cfg,
        backbone_hidden_size=_field(d, "backbone_hidden_size", str(path), int, 1536),
        use_ordered_embeddings=ordered,
        num_centroids=num_centroids,
        centroid_top_k=top_k,
        num_assistant_tokens=int(k) if k is not None else None,
        dtype=str(d.get("dtype") or d.get("torch_dtype") or "float32"),
        path=directory,
    )


def check_pair(target: TargetConfig, drafter: DrafterConfig) -> None:
    """Fail with the first field in which `drafter` does not fit `target` (nothing in transformers checks this)."""
    t, s = target.text, drafter.text
    where = f"drafter {drafter.path / 'config.json'} does not fit target {target.path / 'config.json'}"
    checks = [
        ("backbone_hidden_size", drafter.backbone_hidden_size, "hidden_size", t.hidden_size),
        ("text_config.vocab_size", s.vocab_size, "vocab_size", t.vocab_size),
        ("text_config.sliding_window", s.sliding_window, "sliding_window", t.sliding_window),
    ]
    for layer_type in (SLIDING, FULL):
        if layer_type not in s.layer_types:
            continue
        short = "sliding" if layer_type == SLIDING else "full"
        checks += [
            (f"{short} head_dim", s.head_dim_of(layer_type), f"{short} head_dim", t.head_dim_of(layer_type)),
            (f"{short} num_key_value_heads", s.kv_heads_of(layer_type), f"{short} num_key_value_heads",
             t.kv_heads_of(layer_type)),
            (f"rope_parameters.{layer_type}", s.rope[layer_type], f"rope_parameters.{layer_type}",
             t.rope[layer_type]),
        ]
    for d_name, d_value, t_name, t_value in checks:
        if d_value != t_value:
            raise EdgeMTPError(f"{where}: drafter {d_name}={d_value} but target {t_name}={t_value}")
