"""The native C core (`native/`, issue 5 part 1) against the Python reference on real tiny bundles:
the C CLI's step trace equals the Python LiteRT loop's (same tokens, drafts, accepted counts; logits
within a tolerance) for greedy K=0..4 and seeded sampling, on fp32 and int8; the C test suite passes on
the bundle; corrupted bundles give exit code 2 and a message; `edge-mtp run --backend native` works.

Skipped (with the reason) only when the native binaries are not built: `make -C native`."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from conftest import assert_same_trace

from edge_mtp.cli import main
from edge_mtp.runtime import (
    LoopConfig,
    SamplingConfig,
    generate,
    read_trace,
    trace_lines,
)
from edge_mtp.runtime.litert_backend import LiteRTBackend
from edge_mtp.runtime.native import (
    find_binary,
    litert_library,
    native_args,
    native_command,
    native_trace,
    run_native,
)

BINARY = find_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason="native/build/edge-mtp-native is not built (make -C native)")

NEW = 32
CASES = [(k, None) for k in range(5)] + [
    (0, SamplingConfig(0.8, 0, 1.0, 7)), (4, SamplingConfig(0.8, 0, 1.0, 7)),
    (3, SamplingConfig(1.3, 50, 0.9, 123)), (4, SamplingConfig(0.2, 0, 1.0, 5)),
]


def _ids(case) -> str:
    k, s = case
    return f"K{k}-greedy" if s is None else f"K{k}-T{s.temperature}-k{s.top_k}-p{s.top_p}-seed{s.seed}"


@pytest.mark.parametrize("quant", ["fp32", pytest.param("int8", marks=pytest.mark.slow)])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_native_trace_equals_python(pairs, bundles, quant, case):
    k, sampling = case
    bundle = bundles.path("tiny-e2b", quant)
    for prompt in pairs.prompts("tiny-e2b")[:2] + [[2, 17, 300, 41]]:
        cfg = LoopConfig(draft_len=k, max_new_tokens=NEW, sampling=sampling)
        backend = LiteRTBackend(bundle)
        ref = json.loads(json.dumps(trace_lines(generate(backend, prompt, cfg), cfg, backend.name, backend.model_id)))
        ours = native_trace(bundle, prompt, NEW, draft_len=k, sampling=sampling)
        assert ours[0]["implementation"] == "native-c"
        assert_same_trace(ours, ref)
        assert all("graph" in line["ms"] for line in ours[1:-1])


@pytest.mark.parametrize("suite", ["test_core", "test_bundle"])
def test_c_suite(bundles, suite, tmp_path):
    exe = BINARY.parent / suite
    if not exe.is_file():
        pytest.skip(f"{exe} is not built (make -C native)")
    env = {**os.environ, "EDGE_MTP_TEST_BUNDLE": str(bundles.path("tiny-e2b")), "EDGE_MTP_TEST_TMP": str(tmp_path)}
    if litert_library():
        env["EDGE_MTP_LITERT_LIB"] = litert_library()
    proc = subprocess.run([str(exe)], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "0 failed" in proc.stdout and "SKIPPED" not in proc.stdout


def test_corrupted_bundles_fail_cleanly(bundles, tmp_path):
    data = bundles.path("tiny-e2b").read_bytes()
    header_end = int.from_bytes(data[24:32], "little")
    bad = {"magic": b"XX" + data[2:], "truncated": data[: len(data) // 2],
           "header": data[:24] + b"\xff" * 8 + data[32:],
           "flatbuffer": data[:32] + bytes(b ^ 0x5A for b in data[32:header_end]) + data[header_end:]}
    for name, blob in bad.items():
        path = tmp_path / f"{name}.litertlm"
        path.write_bytes(blob)
        proc = run_native(path, native_args([1, 2, 3], 2), capture=True)
        assert proc.returncode == 2, (name, proc.returncode, proc.stderr[-500:])
        assert proc.stderr.strip().splitlines()[-1].startswith("error: "), name


def test_cli_backend_native(bundles, tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    rc = main(["run", str(bundles.path("tiny-e2b")), "--prompt-ids", "5,6,7", "--draft-len", "2",
               "--max-new-tokens", "6", "--backend", "native", "--trace", str(trace)])
    assert rc == 0
    lines = read_trace(trace)
    assert lines[0]["implementation"] == "native-c" and len(lines[-1]["tokens"]) == 6
    assert main(["run", str(bundles.path("tiny-e2b")), "--prompt", "hi", "--backend", "native"]) == 2


def _most_tasks(bundle, prompt: list[int], threads: int) -> int:
    """The most threads the C CLI's process had while generating with --threads `threads` (from /proc)."""
    cmd = native_command(bundle, native_args(prompt, 64, draft_len=2, threads=threads))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    most = 0
    while proc.poll() is None:
        try:
            most = max(most, len(os.listdir(f"/proc/{proc.pid}/task")))
        except FileNotFoundError:  # exited between poll and listdir
            break
        time.sleep(0.002)
    assert proc.wait() == 0
    return most


def test_native_threads_reach_litert_keep_the_trace_and_bad_counts_are_usage_errors(pairs, bundles):
    """--threads reaches LiteRT's XNNPACK: one thread makes a single-threaded process, three make worker
    threads (an option LiteRT ignored, say a misspelt name, would give both the same count); it changes no
    token or top logit against the Python loop; a count that is not 0..1024 is a one-line usage error."""
    bundle = bundles.path("tiny-e2b")
    prompt = pairs.prompts("tiny-e2b")[0]
    if os.path.isdir("/proc/self/task"):
        one, three = _most_tasks(bundle, prompt, 1), _most_tasks(bundle, prompt, 3)
        assert one == 1 and three > one, (one, three)
    cfg = LoopConfig(draft_len=2, max_new_tokens=8)
    backend = LiteRTBackend(bundle)
    ref = json.loads(json.dumps(trace_lines(generate(backend, prompt, cfg), cfg, backend.name, backend.model_id)))
    for threads in (1, 3, 0):
        assert_same_trace(native_trace(bundle, prompt, 8, draft_len=2, threads=threads), ref)
    for bad in ("-1", "two", "5000"):
        proc = run_native(bundle, native_args(prompt, 2) + ["--threads", bad], capture=True)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: --threads"), bad


@pytest.mark.slow
def test_c_core_clean_under_valgrind(bundles, tmp_path):
    """No leaks and no invalid reads in the C core on the tiny bundle (libLiteRt's one-time self-memcpy
    is suppressed in native/tests/litert.supp)."""
    import shutil

    exe = BINARY.parent / "test_bundle"
    if shutil.which("valgrind") is None or not exe.is_file():
        pytest.skip("valgrind or native/build/test_bundle missing (bash native/scripts/deps.sh)")
    env = {**os.environ, "EDGE_MTP_TEST_BUNDLE": str(bundles.path("tiny-e2b")), "EDGE_MTP_TEST_TMP": str(tmp_path)}
    if litert_library():
        env["EDGE_MTP_LITERT_LIB"] = litert_library()
    supp = BINARY.parent.parent / "tests" / "litert.supp"
    proc = subprocess.run(["valgrind", "--error-exitcode=9", "--leak-check=full",
                           "--errors-for-leak-kinds=definite,indirect", f"--suppressions={supp}", str(exe)],
                          env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "ERROR SUMMARY: 0 errors" in proc.stderr and "definitely lost: 0 bytes" in proc.stderr


AUTO_COSTS = "0.2,0.1,1.0,1.1,1.2,1.3,1.4"  # cheap drafts: the policy drafts, backs off and probes on these prompts
# Sampling on the tiny pair accepts almost no draft, so at AUTO_COSTS the policy never drafts after its first
# probe; with nearly free drafts and every verify the price of a decode it drafts while its estimates fall.
FREE_COSTS = "0.02,0.02,1.0,1.0,1.0,1.0,1.0"
AUTO_CASES = [(None, "hf", AUTO_COSTS), (None, "clean", AUTO_COSTS), (SamplingConfig(0.8, 0, 1.0, 7), "hf", FREE_COSTS),
              (SamplingConfig(1.3, 50, 0.9, 123), "hf", FREE_COSTS)]


@pytest.mark.parametrize("case", AUTO_CASES, ids=lambda c: f"{c[1]}-{'greedy' if c[0] is None else 'sample'}")
def test_native_auto_trace_equals_python(pairs, bundles, case):
    """`--draft-len auto` with the same given costs: the C core picks the same K, probes and estimates (bit for
    bit) as the Python loop, round by round; greedy tokens are K=0's."""
    from edge_mtp.runtime.draftlen import AutoDraft, parse_costs

    sampling, view, costs = case
    bundle = bundles.path("tiny-e2b")
    chosen, probes = set(), 0
    for prompt in pairs.prompts("tiny-e2b")[:2] + [[2, 17, 300, 41]]:
        cfg = LoopConfig(draft_len=4, max_new_tokens=NEW, sampling=sampling, kv_view=view,
                         auto=AutoDraft(parse_costs(costs)))
        backend = LiteRTBackend(bundle)
        gen = generate(backend, prompt, cfg)
        ref = json.loads(json.dumps(trace_lines(gen, cfg, backend.name, backend.model_id)))
        ours = native_trace(bundle, prompt, NEW, "auto", sampling, view, draft_costs=parse_costs(costs))
        assert ours[0]["draft_len"] == "auto" and ours[0]["draft_costs_from"] == "given"
        assert_same_trace(ours, ref)
        assert [r.get("rates") for r in ours[2:-1]] == [r["rates"] for r in ref[2:-1]]  # exact floats
        if sampling is None:
            plain = generate(backend, prompt, LoopConfig(draft_len=0, max_new_tokens=NEW, kv_view=view))
            assert ours[-1]["tokens"] == plain.tokens
        chosen |= {len(r["drafts"]) for r in ours[2:-1]}
        probes += ours[-1]["probes"]
    assert len(chosen) >= 2 and probes > 0, (chosen, probes)


def test_native_auto_calibrates_without_costs(bundles):
    head = native_trace(bundles.path("tiny-e2b"), [5, 6, 7], 8, draft_len="auto")[0]
    policy = head["draft_policy"]
    assert head["draft_costs_from"] == "calibration" and policy["max_draft_len"] == 4
    assert len(policy["verify_ms"]) == 5 and min(policy["verify_ms"]) > 0
    assert policy["first_draft_ms"] > 0 and policy["draft_ms"] > 0
    for bad in (["--draft-costs", "1,1,2,x"], ["--draft-costs", "1,1,0"],
                ["--draft-len", "4", "--draft-costs", "1,1,2"]):
        proc = run_native(bundles.path("tiny-e2b"), ["--prompt-ids", "5", "--draft-len", "auto", *bad], capture=True)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: --draft-"), bad
