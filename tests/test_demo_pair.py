"""The committed demo pair (src/edge_mtp/demo_pair/): the layout and shape it claims, its size, and its
held-out acceptance, re-measured with the loop and compared with what train-drafter recorded."""

from __future__ import annotations

import json

import pytest

from edge_mtp.checkpoints.presets import PRESETS
from edge_mtp.demo import package_pair
from edge_mtp.model import load_drafter, load_pair
from edge_mtp.model.config import read_json
from edge_mtp.train.evaluate import acceptance_report, torch_backends

PAIR = package_pair()
MAX_BYTES = 20 * 1024 * 1024


def test_files_layout_and_size():
    files = sorted(p.relative_to(PAIR).as_posix() for p in PAIR.rglob("*") if p.is_file())
    assert files == ["drafter/config.json", "drafter/generation_config.json", "drafter/model.safetensors",
                     "drafter/tokenizer.json", "drafter/train_drafter.json", "manifest.json", "prompts.json",
                     "target/config.json", "target/generation_config.json", "target/model.safetensors",
                     "target/tokenizer.json"]
    assert sum((PAIR / f).stat().st_size for f in files) <= MAX_BYTES


def test_shape_is_the_demo_preset():
    preset = PRESETS["demo"]
    target = read_json(PAIR / "target" / "config.json")
    assert target["architectures"] == ["Gemma4ForConditionalGeneration"]
    for key, value in preset.target.items():
        if key not in ("global_head_dim", "num_global_key_value_heads"):  # serialised as per_layer_config
            assert target["text_config"][key] == value, key
    drafter = read_json(PAIR / "drafter" / "config.json")
    assert drafter["architectures"] == ["Gemma4AssistantForCausalLM"]
    for key, value in preset.drafter.items():
        assert drafter[key] == value, key
    for key in ("hidden_size", "intermediate_size", "num_attention_heads", "layer_types"):
        assert drafter["text_config"][key] == preset.drafter_text[key], key


@pytest.fixture(scope="module")
def report():
    target, tcfg, drafter, _ = load_pair(PAIR / "target", PAIR / "drafter", "float32")
    recorded = json.loads((PAIR / "drafter" / "train_drafter.json").read_text())["acceptance"]
    prompts = json.loads((PAIR / "prompts.json").read_text())
    from edge_mtp.runtime.tokenizer import TextCodec

    codec = TextCodec(PAIR / "target")
    ids = {c: [codec.encode(t) for t in ts] for c, ts in prompts.items()}
    return acceptance_report(torch_backends(target, tcfg, drafter), ids, [3], recorded["new_tokens"]), recorded


def test_heldout_acceptance_at_k3(report):
    """Slot-1 acceptance >= 0.6 on held-out code prompts; speculation never changes the greedy output."""
    measured, _ = report
    rows = {r["category"]: r for r in measured["rows"]}
    assert set(rows) == {"code", "rewrite", "chat", "free-form", "c"}
    assert measured["identical_to_plain"]
    assert rows["code"]["acceptance_per_slot"][0] >= 0.6, rows["code"]


def test_recorded_report_is_reproduced(report):
    """What train-drafter wrote into the folder is what the loop measures now, number for number."""
    measured, recorded = report
    k3 = [r for r in recorded["rows"] if r["draft_len"] == 3]
    assert measured["rows"] == k3


def test_drafter_centroids_cover_the_vocabulary():
    _, cfg = load_drafter(PAIR / "drafter")
    assert cfg.use_ordered_embeddings and cfg.num_centroids * 64 == cfg.text.vocab_size
