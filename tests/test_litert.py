"""LiteRT bundles: every graph against the PyTorch model, the LiteRT loop against torch and transformers,
the official LiteRT-LM engine on our bundle, quantized bundles, determinism and bad input."""

from __future__ import annotations

import hashlib
import os
import re
import shutil

import numpy as np
import pytest

from conftest import BUNDLE_CONTEXT, BUNDLE_K, LOGIT_TOL, WINDOWED_CONTEXT
from edge_mtp.runtime import LoopConfig, generate
from edge_mtp.runtime.litert_backend import LiteRTBackend
from edge_mtp.runtime.torch_backend import open_torch_backend
from edge_mtp import contract as c
from edge_mtp.runtime.export_backend import place_candidates
from edge_mtp.runtime.views import drafter_views, mask_inputs
from hf_oracle import hf_generate

NEW = 40


def _torch(pairs, preset, context: int = BUNDLE_CONTEXT):
    backend, _, _ = open_torch_backend(*pairs.dirs(preset), context=context)
    return backend


def _diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def _verify_rows_equal_decodes(lite, tokens: list[int], position: int):
    """Verify `tokens` at `position`, then decode each of them alone at its position: every verify row must
    equal its decode bit for bit (logits and hidden state). Returns the verify step."""
    verified = lite.verify(tokens, position)
    lite.rollback(position)
    for i, token in enumerate(tokens):
        one = lite.verify([token], position + i)  # one row: the decode graph
        assert np.array_equal(verified.logits[i], one.logits[0]), (i, _diff(verified.logits[i], one.logits[0]))
        assert np.array_equal(verified.hidden[i], one.hidden[0]), (i, _diff(verified.hidden[i], one.hidden[0]))
    return verified


def test_every_graph_matches_pytorch(pairs, bundles, preset):
    """prefill_32 + prefill_8 + decode (prompt), verify (K+1 at an offset), drafter step, embedders."""
    lite, ref = LiteRTBackend(bundles.path(preset)), _torch(pairs, preset)
    prompt = list(range(300, 341))  # 40 prefilled in chunks of 32 and 8, the 41st through decode
    a, b = lite.prefill(prompt), ref.prefill(prompt)
    assert _diff(a.logits, b.logits) <= LOGIT_TOL and _diff(a.hidden, b.hidden) <= LOGIT_TOL * 10
    tokens = [7, 8, 9, 10, 11]
    a, b = lite.verify(tokens, len(prompt)), ref.verify(tokens, len(prompt))
    assert _diff(a.logits, b.logits) <= LOGIT_TOL and _diff(a.hidden, b.hidden) <= LOGIT_TOL * 10
    views = drafter_views(len(prompt), len(prompt) + 4, len(prompt) + 3, lite.sliding_window)  # stale slots
    carry = b.hidden[2]
    (la, ca), (lb, cb) = lite.draft(12, carry, len(prompt) + 2, views), ref.draft(12, carry, len(prompt) + 2, views)
    assert _diff(la, lb) <= LOGIT_TOL and _diff(ca, cb) <= LOGIT_TOL and int(np.argmax(la)) == int(np.argmax(lb))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_litert_trace_equals_torch_and_transformers(pairs, bundles, preset, k):
    lite = LiteRTBackend(bundles.path(preset))
    hf_target, hf_drafter = pairs.hf(preset)
    for prompt in pairs.prompts(preset)[:2] + [list(range(500, 540))]:
        ours = generate(lite, prompt, LoopConfig(draft_len=k, max_new_tokens=NEW))
        ref = generate(_torch(pairs, preset), prompt, LoopConfig(draft_len=k, max_new_tokens=NEW))
        assert [(r.drafts, r.accepted, r.emitted) for r in ours.rounds] == \
               [(r.drafts, r.accepted, r.emitted) for r in ref.rounds]
        tokens, rounds = hf_generate(hf_target, prompt, NEW, hf_drafter, k)
        assert ours.tokens == tokens
        assert [r.drafts for r in ours.rounds if r.drafts] == rounds.drafts


@pytest.mark.parametrize("quant", ["fp32", "int4"])
def test_drafter_signatures_give_the_same_logits(bundles, preset, quant):
    """LiteRT-LM's `mtp_drafter` places the centroid head's candidates in the graph (a scatter); ours,
    `mtp_drafter_candidates`, leaves that to the runtime. Same step, so the same logits bit for bit."""
    lite = LiteRTBackend(bundles.path(preset, quant))
    prompt = list(range(300, 341))
    step = lite.prefill(prompt)
    views = drafter_views(0, len(prompt) - 1, len(prompt), lite.sliding_window)
    input_pos, mask = mask_inputs(views, len(prompt), lite.context, lite.sliding_window)
    embedding = lite._embed([12])[c.EMBEDDINGS]
    activations = np.concatenate([embedding, step.hidden[-1].reshape(1, 1, -1)], axis=-1).astype(np.float32)
    feeds = dict(activations=activations, input_pos=input_pos, mask=mask)
    full = lite.drafter.run(c.SIG_DRAFTER, **feeds)
    ours = lite.drafter.run(c.SIG_DRAFTER_CANDIDATES, **feeds)
    placed = place_candidates(ours[c.CANDIDATE_LOGITS], ours[c.CANDIDATE_IDS], lite.vocab_size)
    ids = ours[c.CANDIDATE_IDS]
    assert ids.dtype == np.int32 and len(np.unique(ids)) == ids.size
    assert np.array_equal(full[c.LOGITS][0, 0], placed)
    assert np.array_equal(full[c.PROJECTED_ACTIVATIONS], ours[c.PROJECTED_ACTIVATIONS])


@pytest.mark.parametrize("quant", ["fp32", "int4"])
def test_verify_rows_equal_decodes_bit_for_bit(bundles, preset, quant):
    """Each verify row equals a decode of the same token at the same position exactly, not within a
    tolerance: that is what makes greedy MTP on == off in any engine running these graphs (LiteRT-LM
    included), because near-tied logits (random full-size weights) flip on one ulp. Before the RMSNorm
    rows were flattened (docs/tooling.md#row-invariant-graphs) rows differed by up to 6e-6."""
    lite = LiteRTBackend(bundles.path(preset, quant))
    prompt = list(range(300, 341))
    lite.prefill(prompt)
    _verify_rows_equal_decodes(lite, [7, 8, 9, 10, 11], len(prompt))


def _tensor_shapes(bundle, section: str, signature: str) -> set[tuple[int, ...]]:
    """The shapes of every tensor in one signature's subgraph of a bundle section (read from the flatbuffer)."""
    from ai_edge_litert import schema_py_generated as schema

    from edge_mtp.litertlm import read_bundle

    model = schema.Model.GetRootAs(bytes(read_bundle(bundle).model(section)), 0)
    sig = next(model.SignatureDefs(i) for i in range(model.SignatureDefsLength())
               if model.SignatureDefs(i).SignatureKey().decode() == signature)
    graph = model.Subgraphs(sig.SubgraphIndex())
    return {tuple(graph.Tensors(i).ShapeAsNumpy().tolist()) for i in range(graph.TensorsLength())
            if graph.Tensors(i).ShapeLength()}


def _config(pairs, preset):
    from edge_mtp.model import load_target_config

    return load_target_config(pairs.dirs(preset)[0]).text


# Verify at these positions (tiny presets, W = 16, 128-aligned window starts, 256 slots of 512): the rows'
# windows begin on both sides of slot 128 (141: rows 0-1 read from slot 0, rows 2-4 alone from 128) and of
# slot 256 (268), so a decode reads from another aligned start than the verify holding its row; at 500 the
# start is clamped to the end of the buffer.
@pytest.mark.parametrize("position", [141, 268, 500])
@pytest.mark.parametrize("quant", ["fp32", "int4"])
def test_windowed_sliding_reads(pairs, bundles, preset, quant, position):
    """With a context past the window, decode and verify read only a 128-aligned window of the sliding
    layers' buffers. Rows still equal decodes bit for bit, and every row matches the PyTorch model, which
    attends over the whole buffer (fp32)."""
    from edge_mtp.model.target import SlidingReads

    path = bundles.path(preset, quant, WINDOWED_CONTEXT)
    lite, cfg = LiteRTBackend(path), _config(pairs, preset)
    reads = SlidingReads.for_rows(None, cfg.sliding_window, BUNDLE_K + 1, WINDOWED_CONTEXT)
    window_k = (1, cfg.kv_heads[0], reads.slots, cfg.head_dim_of("sliding_attention"))
    assert reads.slots < WINDOWED_CONTEXT and window_k in _tensor_shapes(path, c.PREFILL_DECODE, c.SIG_DECODE)
    prompt = [300 + (i * 37) % 3000 for i in range(position)]
    lite.prefill(prompt)
    tokens = [7, 8, 9, 10, 11]
    verified = _verify_rows_equal_decodes(lite, tokens, position)
    if quant == "fp32":
        ref = _torch(pairs, preset, WINDOWED_CONTEXT)
        ref.prefill(prompt)
        assert _diff(verified.logits, ref.verify(tokens, position).logits) <= LOGIT_TOL


def test_cache_first_products_keep_rows_invariant(pairs, tmp_path, monkeypatch):
    """The full layers' left-operand cache products (docs/tooling.md#cache-first-products) only start at head
    dim 512; here tiny-e2b's 64-wide full layers are exported with them: rows equal decodes bit for bit, and
    the logits match the PyTorch model."""
    from edge_mtp.export import litert
    from edge_mtp.export.exporter import ExportOptions, export_litertlm

    cfg = _config(pairs, "tiny-e2b")
    full_dim = cfg.head_dim_of("full_attention")
    monkeypatch.setattr(litert, "CACHE_FIRST_HEAD_DIM", full_dim)
    monkeypatch.setenv("EDGE_MTP_GRAPH_CACHE", "off")  # the cache's key does not see the constant
    out = tmp_path / "cache-first.litertlm"
    export_litertlm(*pairs.dirs("tiny-e2b"), out, ExportOptions("fp32", BUNDLE_K, (8, 32), WINDOWED_CONTEXT))
    # the product of a full layer's K halves with a decode's query rows, [1, 2, slots / 2, heads per KV head]
    cache_first_scores = (1, 2, WINDOWED_CONTEXT // 2, cfg.num_heads // cfg.kv_heads[0])
    assert cache_first_scores in _tensor_shapes(out, c.PREFILL_DECODE, c.SIG_DECODE)
    lite, ref = LiteRTBackend(out), _torch(pairs, "tiny-e2b", WINDOWED_CONTEXT)
    prompt = [300 + (i * 37) % 3000 for i in range(141)]
    lite.prefill(prompt)
    ref.prefill(prompt)
    tokens = [7, 8, 9, 10, 11]
    verified = _verify_rows_equal_decodes(lite, tokens, len(prompt))
    assert _diff(verified.logits, ref.verify(tokens, len(prompt)).logits) <= LOGIT_TOL


def test_litert_lm_engine_runs_our_bundle_with_speculation(pairs, bundles, tmp_path):
    """The official engine: reports MTP support; greedy text equal with MTP on, off, and to our runtime."""
    import litert_lm

    from edge_mtp.runtime.tokenizer import TextCodec

    path = shutil.copy(bundles.path("tiny-e2b"), tmp_path / "model.litertlm")  # it writes caches beside it
    os.environ["HOME"] = str(tmp_path)
    with litert_lm.ModelInfo(str(path)) as info:
        assert info.llm.has_speculative_decoding_support()
    texts = {}
    for speculative in (False, True):
        engine = litert_lm.Engine(str(path), backend=litert_lm.Backend.CPU(thread_count=2), max_num_tokens=64,
                                  enable_speculative_decoding=speculative, cache_dir=str(tmp_path),
                                  activation_data_type=litert_lm.ActivationDataType.FLOAT32)
        session = engine.create_session(apply_prompt_template=False)
        session.run_prefill(["Hello world"])
        texts[speculative] = session.run_decode().texts[0]
    codec = TextCodec(pairs.dirs("tiny-e2b")[0])
    prompt = codec.encode("Hello world")
    ours = generate(LiteRTBackend(path), prompt, LoopConfig(draft_len=BUNDLE_K, max_new_tokens=30))
    assert texts[True] == texts[False]
    assert len(texts[False]) > 20 and texts[False].startswith(codec.decode(ours.tokens))


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["int8", "int4"])
def test_quantized_bundles_are_smaller_and_run(pairs, bundles, quant):
    from edge_mtp.litertlm import read_bundle

    fp32, small = bundles.path("tiny-e2b"), bundles.path("tiny-e2b", quant)
    assert small.stat().st_size < fp32.stat().st_size * (0.4 if quant == "int8" else 0.3)
    manifest = read_bundle(small).manifest()
    assert all(manifest["recipes"][s] for s in manifest["sections"])
    # the drafter's token table is stored in cluster order (docs/bundle.md#drafter-token-table); the drafter
    # parity tests above check that its graphs read it so
    assert manifest["recipes"][c.MTP_DRAFTER][c.RECIPE_ROW_ORDER] == {c.DRAFTER_TABLE: c.TOKEN_ORDERING}
    assert c.RECIPE_ROW_ORDER not in manifest["recipes"][c.PREFILL_DECODE]
    prompt = pairs.prompts("tiny-e2b")[0]
    gen = generate(LiteRTBackend(small), prompt, LoopConfig(draft_len=BUNDLE_K, max_new_tokens=NEW))
    assert len(gen.tokens) == NEW


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_export_is_byte_identical(pairs, bundles, tmp_path):
    from edge_mtp.export.exporter import ExportOptions, export_litertlm
    from conftest import BUNDLE_PREFILL

    again = tmp_path / "again.litertlm"
    export_litertlm(*pairs.dirs("tiny-e2b"), again, ExportOptions("fp32", BUNDLE_K, BUNDLE_PREFILL, BUNDLE_CONTEXT))
    assert _sha(again) == _sha(bundles.path("tiny-e2b"))


@pytest.mark.parametrize("damage, message", [
    ("truncate", "truncated bundle"),
    ("garbage", "not a .litertlm bundle"),
])
def test_broken_bundle_is_a_one_line_error(bundles, tmp_path, capsys, damage, message):
    from edge_mtp.cli import main

    path = tmp_path / "broken.litertlm"
    data = bundles.path("tiny-e2b").read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(4096))
    assert main(["run", str(path), "--prompt-ids", "2,3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


@pytest.mark.parametrize("case, message", [
    ("quant", "--quant 'int3' is not supported"),
    ("drafter", "drafter backbone_hidden_size=160 but target hidden_size=128"),
    ("output", "does not exist"),
])
def test_bad_export_is_a_one_line_error_and_writes_nothing(pairs, tmp_path, capsys, case, message):
    from edge_mtp.cli import export_main

    target, drafter = pairs.dirs("tiny-e2b")
    if case == "drafter":
        drafter = pairs.dirs("tiny-e4b")[1]
    out = tmp_path / ("missing/dir" if case == "output" else "") / "out.litertlm"
    args = ["--target", str(target), "--drafter", str(drafter), "-o", str(out)]
    assert export_main(args + (["--quant", "int3"] if case == "quant" else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not out.exists() and list(tmp_path.iterdir()) in ([], [tmp_path / "missing"])


def test_verify_command_passes_fp32_and_reports_quantized(pairs, bundles, capsys):
    from edge_mtp.cli import main

    target, drafter = pairs.dirs("tiny-e2b")
    assert main(["verify", str(bundles.path("tiny-e2b")), "--target", str(target), "--drafter", str(drafter)]) == 0
    out = capsys.readouterr().out
    assert "identical" in out and "FAIL" not in out


@pytest.mark.slow
def test_verify_reports_int4_without_failing(pairs, bundles, capsys):
    from edge_mtp.cli import main

    target, drafter = pairs.dirs("tiny-e2b")
    rc = main(["verify", str(bundles.path("tiny-e2b", "int4")), "--target", str(target), "--drafter", str(drafter)])
    assert rc == 0 and "info" in capsys.readouterr().out


@pytest.mark.parametrize("quant", ["int4", "mixed"])
def test_verify_tells_export_error_from_quantization_loss(pairs, bundles, quant):
    """On random weights int4 loses most top-1 agreement with the float model; the PyTorch model with the
    bundle's recorded weight schemes must sit far closer to the bundle (only activation quantization and
    kernel rounding remain), or the export stores something other than what it records."""
    from edge_mtp.verify import verify_bundle

    target, drafter = pairs.dirs("tiny-e2b")
    checks = {c.name: c.value for c in verify_bundle(bundles.path("tiny-e2b", quant), target, drafter)}
    for graph in ("prefill", "verify"):
        value = checks[f"{graph} logits vs PyTorch with the export's weight schemes"]
        diff = float(re.search(r"max \|diff\| (\S+),", value).group(1))
        corr, export_vs_float, schemes_vs_float = (float(x) for x in re.findall(r"(?:corr|float) (-?[0-9.]+)", value))
        float_diff = float(re.search(r"max \|diff\| (\S+),", checks[f"{graph} logits" + (
            " (last position)" if graph == "prefill" else "")]).group(1))
        print(quant, graph, diff, float_diff, corr, export_vs_float, schemes_vs_float)
        assert corr >= 0.99 and diff < float_diff / 4, value
        assert export_vs_float < 0.99 and abs(export_vs_float - schemes_vs_float) < 0.05, value


def test_inspect_lists_sections_and_signatures(bundles, capsys, monkeypatch):
    from edge_mtp.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    assert main(["inspect", str(bundles.path("tiny-e2b"))]) == 0
    out = capsys.readouterr().out
    for name in ("tf_lite_embedder", "tf_lite_per_layer_embedder", "tf_lite_prefill_decode", "tf_lite_mtp_drafter",
                 "prefill_8", "prefill_32", "decode", "verify", "mtp_drafter", "bytes read per target decode step"):
        assert name in out
