"""`edge-mtp trace diff A B` (the one trace comparison, `diff_traces`) on real traces of the tiny fp32
bundle (Python LiteRT loop, the ONNX export of the same pair, and the C CLI when it is built): identical
traces pass (exit 0), a changed draft / token / logit beyond the tolerance / drafter view fails (exit 1,
first divergence named), another model id fails unless --ignore-model (which says the ids differ), a
truncated or foreign file is a one-line error (exit 2)."""

from __future__ import annotations

import json

import pytest
from conftest import LOGIT_TOL

from edge_mtp.cli import main
from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime import (
    LoopConfig,
    SamplingConfig,
    generate,
    trace_lines,
    write_trace,
)
from edge_mtp.runtime.litert_backend import LiteRTBackend
from edge_mtp.runtime.native import find_binary, native_trace
from edge_mtp.runtime.onnx_backend import OnnxBackend
from edge_mtp.runtime.trace import read_trace
from edge_mtp.runtime.tracediff import diff_traces

PROMPT = [2, 17, 300, 41]


@pytest.fixture(scope="module")
def ref_lines(bundles):
    cfg = LoopConfig(draft_len=3, max_new_tokens=16)
    backend = LiteRTBackend(bundles.path("tiny-e2b"))
    return json.loads(json.dumps(trace_lines(generate(backend, PROMPT, cfg), cfg, backend.name, backend.model_id)))


def _write(tmp_path, name, lines):
    path = tmp_path / name
    write_trace(path, lines)
    return path


def _diff(capsys, a, b, *extra):
    rc = main(["trace", "diff", str(a), str(b), *extra])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_identical_traces_match(ref_lines, tmp_path, capsys):
    a = _write(tmp_path, "a.jsonl", ref_lines)
    other = json.loads(json.dumps(ref_lines))
    other[0]["implementation"] = "jvm"  # ignored
    for r in other[1:-1]:
        r["ms"] = {"verify": 999.0}  # ignored
    b = _write(tmp_path, "b.jsonl", other)
    rc, out = _diff(capsys, a, b)
    assert rc == 0, out
    assert "MATCH" in out and "MISMATCH" not in out


def test_changed_draft_is_the_first_divergence(ref_lines, tmp_path, capsys):
    other = json.loads(json.dumps(ref_lines))
    r = next(x for x in other[1:-1] if x["drafts"])
    r["drafts"][-1] = (r["drafts"][-1] + 1) % 100
    rc, out = _diff(capsys, _write(tmp_path, "a.jsonl", ref_lines), _write(tmp_path, "b.jsonl", other))
    assert rc == 1
    assert f"first divergence: round {r['index']} drafts" in out.replace("\n", " ")
    assert "DIFF" in out


def test_changed_token(ref_lines, tmp_path, capsys):
    other = json.loads(json.dumps(ref_lines))
    r = other[5]
    r["emitted"][0] += 1
    other[-1]["tokens"][r["position"] - len(PROMPT) + 1] += 1
    d = diff_traces(ref_lines, other, LOGIT_TOL)
    assert not d.ok and d.first.where == "round 4" and d.first.key == "emitted"
    assert any(x.where == "summary" and x.key == "tokens" for x in d.differences)
    rc, out = _diff(capsys, _write(tmp_path, "a.jsonl", ref_lines), _write(tmp_path, "b.jsonl", other))
    assert rc == 1 and "tokens first differ at index" in out.replace("\n", " ")


def test_logit_tolerance(ref_lines, tmp_path, capsys):
    other = json.loads(json.dumps(ref_lines))
    other[3]["top_logits"][1][1] += 5e-4
    a, b = _write(tmp_path, "a.jsonl", ref_lines), _write(tmp_path, "b.jsonl", other)
    assert _diff(capsys, a, b)[0] == 0  # default 1e-3
    rc, out = _diff(capsys, a, b, "--logit-tol", "1e-4")
    assert rc == 1 and "top_logits" in out
    rc, out = _diff(capsys, a, b, "--logit-tol", "1e-4", "--json")
    doc = json.loads(out)
    assert doc["match"] is False and doc["max_logit_delta"] == pytest.approx(5e-4, rel=1e-3)


def test_header_model_and_round_count(ref_lines):
    other = json.loads(json.dumps(ref_lines))
    other[0]["model"] = "sha256:0000000000000000"
    d = diff_traces(ref_lines, other, LOGIT_TOL)
    assert [(x.where, x.key) for x in d.differences] == [("header", "model")] and not d.notes
    d = diff_traces(ref_lines, other, LOGIT_TOL, ignore_model=True)
    assert d.ok and len(d.notes) == 1 and "sha256:0000000000000000" in d.notes[0]
    shorter = ref_lines[:-2] + ref_lines[-1:]
    d = diff_traces(ref_lines, shorter, LOGIT_TOL)
    assert any(x.where == "rounds" and x.key == "count" for x in d.differences)


def test_kv_view_missing_means_hf(ref_lines):
    """A trace without `kv_view` was made with the default view: equal to "hf", not to "clean"."""
    assert ref_lines[0]["kv_view"] == "hf"
    bare = json.loads(json.dumps(ref_lines))
    del bare[0]["kv_view"]
    assert diff_traces(bare, ref_lines, LOGIT_TOL).ok
    clean = json.loads(json.dumps(ref_lines))
    clean[0]["kv_view"] = "clean"
    for a, b in ((ref_lines, clean), (bare, clean)):
        d = diff_traces(a, b, LOGIT_TOL)
        assert [(x.where, x.key, x.a, x.b) for x in d.differences] == [("header", "kv_view", "hf", "clean")]


def test_missing_top_logits_are_not_compared(ref_lines):
    other = json.loads(json.dumps(ref_lines))
    del other[2]["top_logits"]
    d = diff_traces(ref_lines, other, LOGIT_TOL)
    assert d.ok and d.logits_compared == len(d.rounds("a")) - 1


def test_litert_and_onnx_of_the_same_pair_need_ignore_model(bundles, onnx_exports, tmp_path, capsys):
    """The two formats of one checkpoint pair: different model ids, the same loop. Without --ignore-model
    that is a mismatch; with it the traces match and the output names both ids."""
    cfg = LoopConfig(draft_len=3, max_new_tokens=16)
    lite, onnx = LiteRTBackend(bundles.path("tiny-e2b")), OnnxBackend(onnx_exports.path("tiny-e2b"))
    assert lite.model_id != onnx.model_id
    a = _write(tmp_path, "litert.jsonl", trace_lines(generate(lite, PROMPT, cfg), cfg, lite.name, lite.model_id))
    b = _write(tmp_path, "onnx.jsonl", trace_lines(generate(onnx, PROMPT, cfg), cfg, onnx.name, onnx.model_id))
    rc, out = _diff(capsys, a, b, "--logit-tol", "1e-4")
    assert rc == 1 and "first divergence: header model" in out.replace("\n", " ")
    rc, out = _diff(capsys, a, b, "--logit-tol", "1e-4", "--ignore-model")
    flat = out.replace("\n", " ")
    assert rc == 0 and "MATCH" in out, out
    assert "model ids differ" in flat and lite.model_id in flat and onnx.model_id in flat
    rc, out = _diff(capsys, a, b, "--logit-tol", "1e-4", "--ignore-model", "--json")
    doc = json.loads(out)
    assert doc["match"] is True and doc["differences"] == [] and "model ids differ" in doc["notes"][0]


def test_unreadable_inputs_exit_2(ref_lines, tmp_path, capsys):
    a = _write(tmp_path, "a.jsonl", ref_lines)
    text = a.read_text()
    cases = {
        "truncated.jsonl": text[: len(text) // 2],              # cut inside a line
        "no_summary.jsonl": "".join(text.splitlines(True)[:-1]),  # cut at a line end
        "foreign.jsonl": '{"hello": 1}\n',
        "empty.jsonl": "",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_text(content)
        rc, out = _diff(capsys, a, path)
        assert rc == 2, name
        assert out.strip().startswith("error: ") and len(out.strip().splitlines()) == 1, (name, out)
        with pytest.raises(EdgeMTPError):
            read_trace(path)
    rc, out = _diff(capsys, a, tmp_path / "missing.jsonl")
    assert rc == 2 and "cannot read" in out


@pytest.mark.skipif(find_binary() is None, reason="native/build/edge-mtp-native is not built (make -C native)")
@pytest.mark.parametrize("sampling", [None, SamplingConfig(0.8, 0, 1.0, 7)], ids=["greedy", "sampled"])
def test_native_cli_trace_matches_python(bundles, tmp_path, capsys, sampling):
    bundle = bundles.path("tiny-e2b")
    cfg = LoopConfig(draft_len=4, max_new_tokens=16, sampling=sampling)
    backend = LiteRTBackend(bundle)
    ref = _write(tmp_path, "py.jsonl", trace_lines(generate(backend, PROMPT, cfg), cfg, backend.name, backend.model_id))
    native_trace(bundle, PROMPT, 16, draft_len=4, sampling=sampling, path=tmp_path / "c.jsonl")
    rc, out = _diff(capsys, tmp_path / "c.jsonl", ref, "--logit-tol", "1e-4")
    assert rc == 0, out
