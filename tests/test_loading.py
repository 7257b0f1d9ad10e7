"""Config parsing and the safetensors loader: both config layouts, shards, tolerated extras, and
one-line errors for every kind of broken input."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import shard_checkpoint
from edge_mtp.checkpoints.make import build_drafter, build_target
from edge_mtp.checkpoints.presets import PRESETS
from edge_mtp.errors import EdgeMTPError
from edge_mtp.model import Gemma4Drafter, Gemma4Target, load_pair, load_target, load_target_config
from edge_mtp.model.config import check_pair, load_drafter_config, parse_text_config


@pytest.fixture
def target_copy(pairs, tmp_path):
    target_dir, _ = pairs.dirs("tiny-e2b")
    return shutil.copytree(target_dir, tmp_path / "target")


def _rewrite(path, edit):
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_google_global_head_dim_layout_reads_like_per_layer_config(target_copy):
    """Google ships `global_head_dim`; save_pretrained writes `per_layer_config`. Same model either way."""
    config_path = target_copy / "config.json"
    config = json.loads(config_path.read_text())
    text = config["text_config"]
    assert "per_layer_config" in text
    before = load_target_config(target_copy).text
    full_dim = {v["head_dim"] for v in text.pop("per_layer_config").values()}.pop()
    text.update(global_head_dim=full_dim, num_global_key_value_heads=None)
    config_path.write_text(json.dumps(config))
    assert load_target_config(target_copy).text == before


def test_sharded_checkpoint_loads_the_same_weights(pairs, target_copy):
    whole, _ = load_target(pairs.dirs("tiny-e2b")[0])
    shard_checkpoint(target_copy)
    sharded, _ = load_target(target_copy)
    a, b = _state(whole), _state(sharded)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_unused_shared_layer_kv_and_vision_tensors_are_tolerated(target_copy):
    cfg = load_target_config(target_copy).text
    first_shared = cfg.first_shared_layer

    def add_extras(t):
        p = f"model.language_model.layers.{first_shared}.self_attn."
        t[p + "k_proj.weight"] = torch.zeros(cfg.kv_heads[first_shared] * cfg.head_dims[first_shared], cfg.hidden_size)
        t[p + "v_proj.weight"] = torch.zeros_like(t[p + "k_proj.weight"])
        t[p + "k_norm.weight"] = torch.ones(cfg.head_dims[first_shared])
        t["model.vision_tower.patch_embedder.weight"] = torch.zeros(4, 4)

    _rewrite(target_copy / "model.safetensors", add_extras)
    load_target(target_copy)


@pytest.mark.parametrize("case, message", [
    ("missing", "missing tensor model.language_model.layers.3.mlp.up_proj.weight (expected shape [256, 128])"),
    ("shape", "tensor model.language_model.norm.weight has shape [64], expected [128]"),
    ("unexpected", "unexpected tensor model.language_model.layers.0.mlp.extra.weight"),
    ("truncated", "truncated safetensors file"),
    ("garbage", "not a safetensors file"),
])
def test_broken_weights_fail_with_one_line(target_copy, case, message):
    path = target_copy / "model.safetensors"
    if case == "missing":
        _rewrite(path, lambda t: t.pop("model.language_model.layers.3.mlp.up_proj.weight"))
    elif case == "shape":
        _rewrite(path, lambda t: t.update({"model.language_model.norm.weight": torch.ones(64)}))
    elif case == "unexpected":
        _rewrite(path, lambda t: t.update({"model.language_model.layers.0.mlp.extra.weight": torch.ones(2)}))
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:-1000])
    else:
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + bytes(64))
    with pytest.raises(EdgeMTPError) as err:
        load_target(target_copy)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_not_a_gemma4_config(target_copy):
    (target_copy / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    with pytest.raises(EdgeMTPError, match="model_type 'llama' is not a Gemma 4 target"):
        load_target_config(target_copy)


def test_drafter_of_another_target_is_refused(pairs):
    e2b_target, _ = pairs.dirs("tiny-e2b")
    _, e4b_drafter = pairs.dirs("tiny-e4b")
    with pytest.raises(EdgeMTPError, match="drafter backbone_hidden_size=160 but target hidden_size=128"):
        load_pair(e2b_target, e4b_drafter)


@pytest.mark.parametrize("field, value, message", [
    ("sliding_window", 32, "drafter text_config.sliding_window=32 but target sliding_window=16"),
    ("num_key_value_heads", 2, "drafter sliding num_key_value_heads=2 but target sliding num_key_value_heads=1"),
])
def test_pair_check_names_the_differing_field(pairs, tmp_path, field, value, message):
    target_dir, drafter_dir = pairs.dirs("tiny-e2b")
    drafter = shutil.copytree(drafter_dir, tmp_path / "drafter")
    config = json.loads((drafter / "config.json").read_text())
    config["text_config"][field] = value
    (drafter / "config.json").write_text(json.dumps(config))
    with pytest.raises(EdgeMTPError, match=message):
        check_pair(load_target_config(target_dir), load_drafter_config(drafter))


def test_token_ordering_must_be_a_permutation(pairs, tmp_path):
    target_dir, drafter_dir = pairs.dirs("tiny-e2b")
    drafter = shutil.copytree(drafter_dir, tmp_path / "drafter")
    _rewrite(drafter / "model.safetensors",
             lambda t: t.update({"masked_embedding.token_ordering":
                                 torch.zeros_like(t["masked_embedding.token_ordering"])}))
    with pytest.raises(EdgeMTPError, match="token_ordering is not a permutation"):
        load_pair(target_dir, drafter)


def test_bfloat16_load_matches_transformers_bfloat16(pairs):
    """The checkpoint dtype path: weights cast on load, embedding scales rounded as transformers rounds them."""
    from transformers import AutoModelForCausalLM

    target_dir, _ = pairs.dirs("tiny-e2b")
    ours, _ = load_target(target_dir, "bfloat16")
    hf = AutoModelForCausalLM.from_pretrained(target_dir, dtype=torch.bfloat16, attn_implementation="eager").eval()
    ids = torch.randint(107, 4096, (1, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, _, _ = ours.run(ids, torch.arange(20), ours.new_cache(32))
        ref = hf(ids).logits
    assert logits.dtype == torch.bfloat16
    assert (logits.float() - ref.float()).abs().max().item() <= 1e-2


@pytest.mark.parametrize("name", ["e2b", "e4b"])
def test_full_size_shapes_match_transformers(name):
    """The real E2B/E4B geometry (meta device, no memory): our parsed config builds the same tensors."""
    preset = PRESETS[name]
    hf_target, hf_drafter = build_target(preset, device="meta"), build_drafter(preset, device="meta")
    prefix = "model.language_model."
    text = parse_text_config(hf_target.config.text_config.to_dict(), "config.json text_config")
    with torch.device("meta"):
        ours = Gemma4Target(text)
    hf_shapes = {k[len(prefix):]: v.shape for k, v in hf_target.state_dict().items() if k.startswith(prefix)}
    assert {k: v.shape for k, v in ours.state_dict().items()} == hf_shapes

    drafter_json = hf_drafter.config.to_dict()
    drafter_dir_cfg = _drafter_config_from_json(drafter_json)
    with torch.device("meta"):
        drafter = Gemma4Drafter(drafter_dir_cfg)
    hf_drafter_shapes = {k: v.shape for k, v in hf_drafter.state_dict().items() if k != "lm_head.weight"}
    assert {k: v.shape for k, v in drafter.state_dict().items()} == hf_drafter_shapes


def _drafter_config_from_json(config: dict):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config.json").write_text(json.dumps(config))
        return load_drafter_config(d)
