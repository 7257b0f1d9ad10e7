"""`edge-mtp bench`: self-consistency of its numbers on a tiny bundle, its outputs, and the prediction
formula against a hand calculation. No assertion is about absolute time (the machine is shared)."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from edge_mtp.bench import predict
from edge_mtp.bench.runner import BenchConfig, run_bench
from edge_mtp.cli import main
from edge_mtp.profiling.bench import parse_bench
from edge_mtp.runtime.native import find_binary

SMALL = {"max_new_tokens": 16, "warmup": 1, "bandwidth_mib": 16}


@pytest.fixture(scope="module")
def distill_file(pairs, tmp_path_factory):
    """The prompts the tiny drafter was distilled on (where its drafts get accepted), as a bench file."""
    path = tmp_path_factory.mktemp("prompts") / "distill.json"
    path.write_text(json.dumps({"distill": pairs.prompts("tiny-e2b")[:3]}))
    return path


@pytest.fixture(scope="module")
def litert_result(bundles, distill_file):
    return run_bench(BenchConfig(bundles.path("tiny-e2b"), prompts=str(distill_file), draft_lens=(1, 2, 4), **SMALL))


def check_consistent(result: dict) -> None:
    rows = result["results"]
    asked = result["settings"]["draft_lens"]
    fixed = sorted({0, *(k for k in asked if k != "auto")})
    assert [r["draft_len"] for r in rows] == fixed + ["auto"] * ("auto" in asked)
    base = rows[0]
    for r in rows:
        k = result["export_draft_len"] if r["draft_len"] == "auto" else r["draft_len"]
        assert math.isclose(r["decode_tok_s"] * r["decode_s"], r["decode_tokens"], rel_tol=1e-9)
        assert math.isclose(r["prefill_tok_s"] * r["ttft_s_total"], r["prompt_tokens"], rel_tol=1e-9)
        assert r["tokens_generated"] == r["decode_tokens"] + r["generations"]
        assert math.isclose(r["mean_tokens_per_round"] * r["decode_rounds"], r["decode_tokens"], rel_tol=1e-9)
        assert math.isclose(r["wall_time_s"], r["ttft_s_total"] + r["decode_s"], rel_tol=1e-9)
        slots = r["acceptance_per_slot"]
        assert len(slots) == k and all(0 <= a <= 1 for a in slots)
        assert all(a >= b for a, b in itertools.pairwise(slots)), slots  # greedy: non-increasing
        assert math.isclose(r["speedup"], r["decode_tok_s"] / base["decode_tok_s"], rel_tol=1e-12)
        assert math.isclose(r["expected_tokens_per_full_round"], 1 + sum(slots), rel_tol=1e-9)
        parts = r["round_draft_s"] + r["round_verify_s"] + r["round_other_s"]
        assert math.isclose(parts, r["round_s"], rel_tol=1e-9)
        if r["draft_len"] == "auto":
            assert sum(r["rounds_per_k"].values()) == r["decode_rounds"] and "predicted_speedup" not in r
            assert math.isclose(result["auto"]["vs_k0"], r["speedup"], rel_tol=1e-12)
        elif r["draft_len"]:
            expected = predict.predicted_speedup(r["conditional_acceptance"], r["t_draft_s"], r["t_verify_s"],
                                                 base["t_verify_s"])
            assert math.isclose(r["predicted_speedup"], expected, rel_tol=1e-12)
    best = max((r for r in rows if r["draft_len"] != "auto"), key=lambda r: r["decode_tok_s"])
    assert result["best_k"] == best["draft_len"]
    for c in result["categories"]:
        zero = next(x for x in result["categories"] if x["category"] == c["category"] and x["draft_len"] == 0)
        assert math.isclose(c["speedup"], c["decode_tok_s"] / zero["decode_tok_s"], rel_tol=1e-12)


def test_litert_numbers_are_self_consistent(litert_result):
    check_consistent(litert_result)
    assert litert_result["backend"] == "litert"
    assert litert_result["results"][-1]["acceptance_per_slot"][0] > 0  # the distilled drafter gets drafts accepted
    m = litert_result["machine"]
    assert m["memory_bandwidth_gb_s"] > 0 and len(m["load_avg_start"]) == 3 and len(m["load_avg_end"]) == 3
    b = litert_result["bytes_per_target_step"]
    assert b["total"] == b["weights"] + b["kv_cache"] > 0


def test_each_k_is_an_edge_mtp_bench_v1_run(litert_result, tmp_path):
    for r in litert_result["results"]:
        path = tmp_path / f"k{r['draft_len']}.json"
        path.write_text(json.dumps(r["run"]))
        run = parse_bench(path)
        assert (run.mtp, run.draft_len, run.tokens) == (r["draft_len"] > 0, r["draft_len"], r["tokens_generated"])


def test_cli_writes_table_json_and_report(bundles, distill_file, tmp_path, capsys):
    out, report = tmp_path / "bench.json", tmp_path / "report"
    assert main(["bench", str(bundles.path("tiny-e2b")), "--prompts", str(distill_file), "--draft-len", "0,2",
                 "--max-new-tokens", "12", "--bandwidth-mib", "16", "--json", str(out), "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "per draft length K" in printed and "load average" in printed and "distill" in printed
    # issue 11 item 4: a K below the bundle's runs its K=4 verify signature; the table says so
    assert "K=2: below the bundle's K=4, so each round runs the K=4 verify signature with padding rows" in printed
    result = json.loads(out.read_text())
    assert result["format"] == "edge-mtp-bench-sweep/1"
    check_consistent(result)
    for name in ("acceptance", "tok_s", "latency", "predicted"):
        assert (report / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    page = (report / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "<table>" in page


def test_builtin_prompts_use_the_bundle_tokenizer(bundles):
    result = run_bench(BenchConfig(bundles.path("tiny-e2b"), draft_lens=(2,), **SMALL))
    assert list(result["prompts"]) == ["code", "chat", "free-form"]  # the held-out prompts that fit 128 slots
    check_consistent(result)


def test_onnx_backend(onnx_exports, distill_file):
    check_consistent(run_bench(BenchConfig(onnx_exports.path("tiny-e2b"), prompts=str(distill_file),
                                           draft_lens=(4,), **SMALL)))


@pytest.mark.skipif(find_binary() is None, reason="native/build/edge-mtp-native is not built (make -C native)")
def test_native_backend(bundles, distill_file):
    result = run_bench(BenchConfig(bundles.path("tiny-e2b"), backend="native", prompts=str(distill_file),
                                   draft_lens=(4,), **SMALL))
    check_consistent(result)


@pytest.mark.parametrize("backend", ["litert", pytest.param("native", marks=pytest.mark.skipif(
    find_binary() is None, reason="native/build/edge-mtp-native is not built (make -C native)"))])
def test_auto_draft_len(bundles, distill_file, backend, tmp_path):
    """`--draft-len 0,4,auto`: each auto generation times its costs first; its row (median costs), its ratios
    to K=0 and the best fixed K, and its edge-mtp-bench/1 record add up."""
    result = run_bench(BenchConfig(bundles.path("tiny-e2b"), backend=backend, prompts=str(distill_file),
                                   draft_lens=(4, "auto"), **SMALL))
    check_consistent(result)
    auto = result["results"][-1]
    policy = auto["draft_policy"]
    assert policy["max_draft_len"] == 4 and len(policy["verify_ms"]) == 5 and policy["first_draft_ms"] > 0
    best = next(r for r in result["results"] if r["draft_len"] == result["auto"]["best_fixed_k"])
    assert math.isclose(result["auto"]["vs_best_fixed"], auto["decode_tok_s"] / best["decode_tok_s"], rel_tol=1e-12)
    assert set(result["auto"]["categories"]) == {"distill"}
    one = result["auto"]["categories"]["distill"]  # the only category: its paired medians are the whole run's
    assert one["vs_k0_paired"] == result["auto"]["vs_k0_paired"] > 0
    assert one["vs_best_fixed_paired"] == result["auto"]["vs_best_fixed_paired"] > 0
    path = tmp_path / "auto.json"
    path.write_text(json.dumps(auto["run"]))
    run = parse_bench(path)
    assert (run.mtp, run.draft_len, run.tokens) == (True, 4, auto["tokens_generated"])
    from edge_mtp.console import draft_lens
    from edge_mtp.errors import EdgeMTPError

    assert draft_lens("0,1, auto") == (0, 1, "auto")
    for bad in ("0,x", "-1", "", "automatic"):
        with pytest.raises(EdgeMTPError):
            draft_lens(bad)


def test_predicted_speedup_by_hand():
    # slots accepted 80% and 40% unconditionally -> conditional rates 0.8, 0.5
    assert predict.conditional([0.8, 0.4]) == pytest.approx([0.8, 0.5])
    assert predict.expected_tokens([0.8, 0.5]) == pytest.approx(1 + 0.8 + 0.8 * 0.5)
    # E = 2.2, K = 2, draft 1 ms, verify 3 ms, decode 2 ms: 2.2 * 2 / (2 * 1 + 3) = 0.88
    assert predict.predicted_speedup([0.8, 0.5], 1.0, 3.0, 2.0) == pytest.approx(0.88)
    # one rate a for every slot: E = (1 - a^(K+1)) / (1 - a)
    assert predict.expected_tokens([0.6] * 3) == pytest.approx((1 - 0.6**4) / 0.4)
    assert predict.predicted_speedup([], 0.0, 2.0, 2.0) == 1.0
    # break-even: K=1, draft 1, verify 2, decode 2 -> (1 + a) * 2 / 3 >= 1 at a = 0.5
    assert predict.break_even(1, 1.0, 2.0, 2.0) == pytest.approx(0.5)
    assert predict.break_even(1, 10.0, 2.0, 2.0) is None


def test_bad_arguments_are_one_line_errors(bundles, tmp_path, capsys):
    bundle = str(bundles.path("tiny-e2b"))
    assert main(["bench", bundle, "--backend", "onnx", "--bandwidth-mib", "16"]) == 2
    bad = tmp_path / "p.json"
    bad.write_text("{\"x\": [[999999]]}")
    assert main(["bench", bundle, "--prompts", str(bad), "--bandwidth-mib", "16"]) == 2
    assert "outside the vocabulary" in capsys.readouterr().err


def test_profile_summarize_subcommand(tmp_path, capsys):
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures" / "profiling" / "android"
    assert main(["profile", "summarize", str(fixtures), "--json", str(tmp_path / "s.json")]) == 0
    assert (tmp_path / "s.json").exists()
    assert main(["profile", "summarize", str(tmp_path / "missing")]) == 2
