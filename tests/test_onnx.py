"""ONNX exports: every graph against the PyTorch model, the ONNX Runtime loop against the torch and LiteRT
backends, the in-place K/V binding, quantized exports, determinism and bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import BUNDLE_CONTEXT, BUNDLE_K, BUNDLE_PREFILL, LOGIT_TOL, WINDOWED_CONTEXT
from edge_mtp.export.graphs import kv_names
from edge_mtp.runtime import LoopConfig, generate
from edge_mtp.runtime.litert_backend import LiteRTBackend
from edge_mtp.runtime.onnx_backend import OnnxBackend
from edge_mtp.runtime.torch_backend import open_torch_backend
from edge_mtp.runtime.views import drafter_views

NEW = 40


def _torch(pairs, preset, context=BUNDLE_CONTEXT):
    return open_torch_backend(*pairs.dirs(preset), context=context)[0]


def _diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def _rounds(gen):
    return [(r.drafts, r.accepted, r.emitted) for r in gen.rounds]


def test_every_graph_matches_pytorch(pairs, onnx_exports, preset):
    """Embedders, prefill (41 tokens in one call), verify (K+1 at an offset), drafter step on stale slots."""
    ox, ref = OnnxBackend(onnx_exports.path(preset)), _torch(pairs, preset)
    ids = [5, 300, 4000]
    embedded = ox._embed(ids)
    assert _diff(embedded["embeddings"][0], ref.target.embed(torch.tensor([ids]))[0]) <= 1e-6
    prompt = list(range(300, 341))
    a, b = ox.prefill(prompt), ref.prefill(prompt)
    assert _diff(a.logits, b.logits) <= LOGIT_TOL and _diff(a.hidden, b.hidden) <= LOGIT_TOL * 10
    tokens = [7, 8, 9, 10, 11]
    a, b = ox.verify(tokens, len(prompt)), ref.verify(tokens, len(prompt))
    assert _diff(a.logits, b.logits) <= LOGIT_TOL and _diff(a.hidden, b.hidden) <= LOGIT_TOL * 10
    views = drafter_views(len(prompt), len(prompt) + 4, len(prompt) + 3, ox.sliding_window)
    carry = b.hidden[2]
    (la, ca), (lb, cb) = ox.draft(12, carry, len(prompt) + 2, views), ref.draft(12, carry, len(prompt) + 2, views)
    assert _diff(la, lb) <= LOGIT_TOL and _diff(ca, cb) <= LOGIT_TOL and int(np.argmax(la)) == int(np.argmax(lb))


def _window_slices(path) -> list[str]:
    """The target's Slices of a K/V buffer as just written (ScatterElements): the sliding producers' windows."""
    graph = onnx.load(path / "target.onnx", load_external_data=False).graph
    written = {o for n in graph.node if n.op_type == "ScatterElements" for o in n.output}
    return [n.name for n in graph.node if n.op_type == "Slice" and n.input[0] in written]


# As test_litert.py's windowed test: windows begin on both sides of slot 128 (141) and of 256 (268), and at 500
# the start is clamped to the end of the buffer; the prompt itself (one prefill call of `position` rows) reads
# a window sized for its T, up to the whole buffer.
@pytest.mark.parametrize("position", [141, 268, 500])
def test_windowed_sliding_reads(pairs, onnx_exports, preset, position):
    """With a context past the window, the one dynamic-T target graph's sliding layers read a window sized for
    each call's T (`SlidingReads(rows=None)`): prefill, decode and verify still match the PyTorch model,
    which attends over the whole buffer."""
    path = onnx_exports.path(preset, "fp32", WINDOWED_CONTEXT)
    ox, ref = OnnxBackend(path), _torch(pairs, preset, WINDOWED_CONTEXT)
    cfg = ref.target.cfg
    producers = [t for t in cfg.layer_types[:cfg.first_shared_layer] if t == "sliding_attention"]
    assert len(_window_slices(path)) == 2 * len(producers)  # K and V of every sliding producer
    prompt = [300 + (i * 37) % 3000 for i in range(position)]
    a, b = ox.prefill(prompt), ref.prefill(prompt)
    assert _diff(a.logits, b.logits) <= LOGIT_TOL
    for tokens in ([7], [7, 8, 9, 10, 11]):
        a, b = ox.verify(tokens, position), ref.verify(tokens, position)
        assert _diff(a.logits, b.logits) <= LOGIT_TOL and _diff(a.hidden, b.hidden) <= LOGIT_TOL * 10
        ox.rollback(position), ref.rollback(position)


def test_cache_is_updated_in_place(pairs, onnx_exports):
    """The bound OrtValues *are* the cache: after prefill + a rolled-back verify their rows equal PyTorch's."""
    ox, ref = OnnxBackend(onnx_exports.path("tiny-e2b")), _torch(pairs, "tiny-e2b")
    for backend in (ox, ref):
        backend.prefill(list(range(100, 120)))
        backend.verify([1, 2, 3, 4, 5], 20)
        backend.rollback(22)
        backend.verify([6, 7], 22)
    for i, name in enumerate(kv_names(ref.target.cfg)):  # the order of Gemma4Target.kv_shapes
        assert _diff(ox.kv[name].numpy(), ref.kv[i].numpy()) <= 1e-4, name


@pytest.mark.parametrize("k", [pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow),
                               pytest.param(3, marks=pytest.mark.slow), 4])
def test_onnx_trace_equals_torch_and_litert(pairs, onnx_exports, bundles, preset, k):
    ox, lite = OnnxBackend(onnx_exports.path(preset)), LiteRTBackend(bundles.path(preset))
    accepted = 0
    for prompt in pairs.prompts(preset)[:2] + [list(range(500, 540))]:
        cfg = LoopConfig(draft_len=k, max_new_tokens=NEW)
        ours = generate(ox, prompt, cfg)
        assert _rounds(ours) == _rounds(generate(_torch(pairs, preset), prompt, cfg))
        assert _rounds(ours) == _rounds(generate(lite, prompt, cfg))
        accepted += sum(r.accepted for r in ours.rounds)
    assert accepted > 0  # the distilled prompts exercise acceptance, not just rejection


def test_seeded_sampling_trace_equals_torch(pairs, onnx_exports):
    from edge_mtp.runtime import SamplingConfig

    cfg = LoopConfig(draft_len=BUNDLE_K, max_new_tokens=24, sampling=SamplingConfig(0.8, 0, 1.0, 7))
    prompt = pairs.prompts("tiny-e2b")[0]
    ours = generate(OnnxBackend(onnx_exports.path("tiny-e2b")), prompt, cfg)
    assert _rounds(ours) == _rounds(generate(_torch(pairs, "tiny-e2b"), prompt, cfg))


def _weight_bytes(directory) -> int:
    return sum(onnx.numpy_helper.to_array(t).nbytes for p in directory.glob("*.onnx")
               for t in onnx.load(p).graph.initializer)


def _initializer_types(path) -> set[str]:
    model = onnx.load(path)
    return {n.op_type for n in model.graph.node}


@pytest.mark.parametrize("quant, ops, ratio", [
    pytest.param("fp16", {"Cast"}, 0.55, marks=pytest.mark.slow),
    ("int8", {"MatMulNBits", "GatherBlockQuantized"}, 0.4),
    pytest.param("int4", {"MatMulNBits", "GatherBlockQuantized"}, 0.3, marks=pytest.mark.slow),
])
def test_quantized_exports_are_smaller_and_run(pairs, onnx_exports, quant, ops, ratio):
    """Weight bytes shrink, the quantized ops are there (the LM head included), the loop runs. Weight bytes,
    not file sizes: the graphs' own bytes (node names, shapes) do not shrink and are a large share at this
    size, which left fp16's file ratio at 0.550 +- 0.001 depending on the checkout's path."""
    fp32, small = onnx_exports.path("tiny-e2b"), onnx_exports.path("tiny-e2b", quant)
    assert _weight_bytes(small) < _weight_bytes(fp32) * ratio
    found = set().union(*(_initializer_types(p) for p in small.glob("*.onnx")))
    assert ops <= found
    target = onnx.load(small / "target.onnx")
    vocab, hidden = OnnxBackend(small).vocab_size, target.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    float_heads = [t.name for t in target.graph.initializer if t.data_type == onnx.TensorProto.FLOAT
                   and sorted(t.dims) == sorted([vocab, hidden])]
    assert float_heads == []  # the tied LM head is quantized too
    gen = generate(OnnxBackend(small), pairs.prompts("tiny-e2b")[0], LoopConfig(draft_len=BUNDLE_K, max_new_tokens=NEW))
    assert len(gen.tokens) == NEW


@pytest.mark.slow
def test_demo_pair_int4_export_matches_pytorch_with_its_schemes(tmp_path):
    """The built-in demo pair in int4: its 120-wide per-layer table fits no ONNX block and stays float32 (the
    export used to stop there), its 256-row matmuls take block 256, and the prefill logits follow the PyTorch
    target with the manifest's weight schemes applied (the remaining difference is onnxruntime's int8
    activations, accuracy level 4)."""
    from edge_mtp.demo import demo_pair
    from edge_mtp.export.exporter import ExportOptions, export_onnx
    from edge_mtp.model.config import load_target_config
    from edge_mtp.quantize.fakequant import fake_quantize_
    from edge_mtp.verify import _target_schemes

    pair = demo_pair()
    out = tmp_path / "demo-int4"
    manifest = export_onnx(pair / "target", pair / "drafter", out, ExportOptions("int4", BUNDLE_K, BUNDLE_PREFILL, 256))
    weights = {**manifest["recipes"]["target"]["weights"], **manifest["recipes"]["per_layer_embedder"]["weights"]}
    assert [s for n, s in weights.items() if "embed_tokens_per_layer" in n] == ["f32"]
    assert "i4b256" in weights.values()
    ref = open_torch_backend(pair / "target", pair / "drafter", context=256)[0]
    fake_quantize_(ref.target, *_target_schemes(manifest, load_target_config(pair / "target").weight_prefix))
    prompt = [2] + [300 + (i * 37) % 3000 for i in range(40)]
    ours, theirs = OnnxBackend(out).prefill(prompt).logits[-1], ref.prefill(prompt).logits[-1]
    assert int(np.argmax(ours)) == int(np.argmax(theirs))
    assert np.corrcoef(ours, theirs)[0, 1] > 0.99


def test_export_holds_no_paths_of_this_checkout(onnx_exports):
    """The exporter's node metadata (Python stacks) would make the bytes depend on the install path."""
    here = str(Path(__file__).resolve().parents[1]).encode()
    for graph in onnx_exports.path("tiny-e2b").glob("*.onnx"):
        data = graph.read_bytes()
        assert here not in data and b"site-packages" not in data, graph.name


def _tree_sha(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.slow
def test_export_is_byte_identical_and_zip_runs(pairs, onnx_exports, tmp_path):
    from edge_mtp.export.exporter import ExportOptions, export_onnx

    opts = ExportOptions("fp32", BUNDLE_K, BUNDLE_PREFILL, BUNDLE_CONTEXT)
    export_onnx(*pairs.dirs("tiny-e2b"), tmp_path / "again", opts)
    assert _tree_sha(tmp_path / "again") == _tree_sha(onnx_exports.path("tiny-e2b"))
    from edge_mtp.export.publish import write_zip

    write_zip(tmp_path / "again", tmp_path / "a.zip")
    write_zip(onnx_exports.path("tiny-e2b"), tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    prompt = pairs.prompts("tiny-e2b")[0]
    cfg = LoopConfig(draft_len=BUNDLE_K, max_new_tokens=8)
    assert generate(OnnxBackend(tmp_path / "a.zip"), prompt, cfg).tokens == \
        generate(OnnxBackend(tmp_path / "again"), prompt, cfg).tokens


def _broken_copy(onnx_exports, tmp_path, case):
    src = onnx_exports.path("tiny-e2b")
    broken = tmp_path / "broken"
    shutil.copytree(src, broken)
    if case == "truncated":
        data = (src / "target.onnx").read_bytes()
        (broken / "target.onnx").write_bytes(data[: len(data) // 3])
    elif case == "foreign-drafter":  # a drafter graph exported for another target (other cache shapes)
        shutil.copy(onnx_exports.path("tiny-e4b") / "drafter.onnx", broken / "drafter.onnx")
    elif case == "foreign-drafter-rehashed":  # ... with the manifest edited to match: the shapes still tell
        shutil.copy(onnx_exports.path("tiny-e4b") / "drafter.onnx", broken / "drafter.onnx")
        manifest = json.loads((broken / "manifest.json").read_text())
        manifest["graphs"]["drafter"]["sha256"] = hashlib.sha256((broken / "drafter.onnx").read_bytes()).hexdigest()
        (broken / "manifest.json").write_text(json.dumps(manifest))
    elif case == "missing-graph":
        (broken / "drafter.onnx").unlink()
    elif case == "manifest":
        (broken / "manifest.json").write_text('{"container": "onnx"}')
    return broken


@pytest.mark.parametrize("case, message", [
    ("truncated", "target.onnx: sha256 "),
    ("foreign-drafter", "drafter.onnx: sha256 "),
    ("foreign-drafter-rehashed", "drafter.onnx: input tensor 'kv_cache_k_"),
    ("missing-graph", "drafter.onnx: the manifest lists graph 'drafter' but the file is missing"),
    ("manifest", "manifest.json: field 'graphs' is missing"),
])
def test_bad_onnx_export_is_a_one_line_error(onnx_exports, tmp_path, capsys, case, message):
    from edge_mtp.cli import main

    broken = _broken_copy(onnx_exports, tmp_path, case)
    assert main(["run", str(broken), "--prompt-ids", "2,3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("case, message", [
    ("quant", "--quant 'mixed' is not supported for ONNX"),
    ("occupied", "exists and is not an earlier export"),
])
def test_bad_onnx_export_command_writes_nothing(pairs, tmp_path, capsys, case, message):
    from edge_mtp.cli import export_main

    target, drafter = pairs.dirs("tiny-e2b")
    out = tmp_path / "out"
    if case == "occupied":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    args = ["--format", "onnx", "--target", str(target), "--drafter", str(drafter), "-o", str(out)]
    assert export_main(args + (["--quant", "mixed"] if case == "quant" else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out"] if case == "occupied" else [])
    if case == "occupied":
        assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_verify_and_inspect_commands_on_onnx(pairs, onnx_exports, capsys, monkeypatch):
    from edge_mtp.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    target, drafter = pairs.dirs("tiny-e2b")
    assert main(["verify", str(onnx_exports.path("tiny-e2b")), "--target", str(target), "--drafter", str(drafter)]) == 0
    out = capsys.readouterr().out
    assert "identical" in out and "FAIL" not in out and "size (fp32)" in out
    assert main(["inspect", str(onnx_exports.path("tiny-e2b"))]) == 0
    out = capsys.readouterr().out
    for name in ("embedder.onnx", "per_layer_embedder.onnx", "target.onnx", "drafter.onnx", "bytes read per target"):
        assert name in out


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["fp32", "int4"])
def test_external_weights_for_graphs_over_the_protobuf_limit(pairs, onnx_exports, tmp_path, monkeypatch, quant):
    """A full-size target exceeds protobuf's 2 GB, so big graphs keep their weights in `<graph>.onnx.data`.
    Forced here on the tiny pair: the files are listed and hashed in the manifest, and run the same."""
    import json

    import edge_mtp.quantize.onnx as onnx_weights
    from edge_mtp.export.exporter import ExportOptions, export_onnx

    monkeypatch.setattr(onnx_weights, "EXTERNAL_DATA_MIN_BYTES", 0)
    out = tmp_path / "external"
    export_onnx(*pairs.dirs("tiny-e2b"), out, ExportOptions(quant, BUNDLE_K, BUNDLE_PREFILL, BUNDLE_CONTEXT))
    manifest = json.loads((out / "manifest.json").read_text())
    owners = {e["data"]["file"] for e in manifest["graphs"].values() if "data" in e}
    for graph, entry in manifest["graphs"].items():
        if "reads" in entry:  # the quantized embedder reads the tied table from the target's data file
            assert quant == "int4" and graph == "embedder" and entry["reads"] == ["target.onnx.data"]
            assert "target.onnx.data" in owners
            continue
        data = out / entry["data"]["file"]
        assert data.name == f"{graph}.onnx.data"
        assert hashlib.sha256(data.read_bytes()).hexdigest() == entry["data"]["sha256"]
        assert entry["bytes"] == (out / entry["file"]).stat().st_size + data.stat().st_size
    cfg = LoopConfig(draft_len=BUNDLE_K, max_new_tokens=NEW)
    prompt = pairs.prompts("tiny-e2b")[0]
    inline = OnnxBackend(onnx_exports.path("tiny-e2b", quant))
    assert _rounds(generate(OnnxBackend(out), prompt, cfg)) == _rounds(generate(inline, prompt, cfg))
