"""The Android demo's JVM layer (android_demo/core, issue 5 part 2) on the desktop JVM: Kotlin -> JNI
(native/jni) -> C core -> LiteRT, the same entry points the app calls on a phone.

* the JUnit 5 suite of android_demo/core passes on the tiny bundle;
* its step traces equal the Python reference's (`edge-mtp trace diff` passes: same tokens, drafts,
  accepted counts; logits within 1e-4) for greedy K=0..4 and seeded sampling, fp32 and int8;
* its benchmark mode writes a bench.json the profiling parser accepts.

Built by android_demo/scripts/jvm_test.sh (kotlinc 2.4.20 from npm, JUnit 5 and a JDK from apt: see
scripts/install_tools.sh). Skipped, with the reason, only when that toolchain is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_mtp.cli import main
from edge_mtp.runtime import (
    LoopConfig,
    SamplingConfig,
    generate,
    trace_lines,
    write_trace,
)
from edge_mtp.runtime.litert_backend import LiteRTBackend
from edge_mtp.runtime.native import litert_library

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "android_demo" / "scripts" / "jvm_test.sh"
KOTLINC = Path(os.environ.get("KOTLINC", ROOT / ".tools/kotlin/node_modules/kotlin-compiler/bin/kotlinc"))
JUNIT = Path(os.environ.get("JUNIT_CONSOLE", "/usr/share/java/junit-platform-console-standalone.jar"))


def _missing() -> str | None:
    if not KOTLINC.is_file():
        return f"kotlinc not found at {KOTLINC} (scripts/install_tools.sh)"
    if not JUNIT.is_file():
        return f"JUnit 5 console launcher not found at {JUNIT} (apt-get install junit5)"
    for tool in ("java", "javac", "cc"):
        if shutil.which(tool) is None:
            return f"{tool} not found (scripts/install_tools.sh installs a JDK)"
    if litert_library() is None:
        return "ai-edge-litert (libLiteRt.so) is not installed"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))

NEW = 32
CASES = [(k, None) for k in range(5)] + [
    (4, SamplingConfig(0.8, 0, 1.0, 7)), (3, SamplingConfig(1.3, 50, 0.9, 123)),
]


def _env(**extra) -> dict:
    return {**os.environ, "PYTHON": sys.executable, "EDGE_MTP_LITERT_LIB": litert_library(), **extra}


@pytest.fixture(scope="module")
def jvm(tmp_path_factory):
    """Builds libedge_mtp_jni.so and the Kotlin module once; returns the java command prefix."""
    proc = subprocess.run(["bash", str(SCRIPT), "build"], env=_env(), capture_output=True, text=True, check=False,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cp = subprocess.run(["bash", str(SCRIPT), "classpath"], env=_env(), capture_output=True, text=True,
                        check=True).stdout.strip()
    lib = ROOT / "android_demo" / "build" / "jvm" / "lib" / "libedge_mtp_jni.so"
    if os.environ.get("JVM_BUILD"):
        lib = Path(os.environ["JVM_BUILD"]) / "lib" / "libedge_mtp_jni.so"
    return ["java", f"-Dedge_mtp.jni={lib}", "-cp", cp, "dev.edgemtp.core.CliKt"]


def test_junit_suite(jvm, bundles):
    proc = subprocess.run(["bash", str(SCRIPT), "test"], env=_env(EDGE_MTP_TEST_BUNDLE=str(bundles.path("tiny-e2b"))),
                          capture_output=True, text=True, check=False, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "[         0 tests failed          ]" in out and "[         0 tests skipped         ]" in out, out[-2000:]


@pytest.mark.parametrize("quant", ["fp32", pytest.param("int8", marks=pytest.mark.slow)])
def test_jvm_traces_equal_python(jvm, pairs, bundles, quant, tmp_path, capsys):
    bundle = bundles.path("tiny-e2b", quant)
    prompts = pairs.prompts("tiny-e2b")[:1] + [[2, 17, 300, 41]]
    jobs, pairs_to_diff = [], []
    for p, prompt in enumerate(prompts):
        for k, sampling in CASES:
            cfg = LoopConfig(draft_len=k, max_new_tokens=NEW, sampling=sampling)
            backend = LiteRTBackend(bundle)
            name = f"p{p}-k{k}-{'greedy' if sampling is None else f's{sampling.seed}'}"
            ref = tmp_path / f"{name}.py.jsonl"
            write_trace(ref, trace_lines(generate(backend, prompt, cfg), cfg, backend.name, backend.model_id))
            ours = tmp_path / f"{name}.jvm.jsonl"
            jobs.append({"trace": str(ours), "prompt_ids": prompt, "draft_len": k, "max_new_tokens": NEW,
                         "sampling": sampling.as_trace() if sampling else {"mode": "greedy"}})
            pairs_to_diff.append((name, ours, ref))
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(j) + "\n" for j in jobs))
    proc = subprocess.run([*jvm, "batch", str(bundle), str(tmp_path / "jobs.jsonl")], env=_env(), capture_output=True,
                          text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = []
    for name, ours, ref in pairs_to_diff:
        rc = main(["trace", "diff", str(ours), str(ref), "--logit-tol", "1e-4"])
        out = capsys.readouterr().out
        if rc != 0:
            failed.append(f"{name}: {out[-1500:]}")
        else:
            assert json.loads(ours.read_text().splitlines()[0])["implementation"] == "jvm"
    assert not failed, "\n".join(failed)


def test_jvm_benchmark_mode(jvm, bundles, tmp_path):
    from edge_mtp.profiling.bench import parse_bench

    out = tmp_path / "out" / "mtp_on"
    proc = subprocess.run([*jvm, "bench", "--bundle", str(bundles.path("tiny-e2b")), "--bench_out", str(out),
                           "--mtp", "true", "--draft_len", "3", "--max_new_tokens", "10", "--repetitions", "2",
                           "--warmup", "1"], env=_env(), capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bench = parse_bench(out / "bench.json")  # also checks that the traces hold tokens_generated tokens
    assert bench.mtp and bench.draft_len == 3 and bench.tokens == 20 and bench.wall_time_s > 0
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "trace_0.jsonl", "trace_1.jsonl"]


def test_jvm_cli_errors(jvm, tmp_path):
    proc = subprocess.run([*jvm, "run", str(tmp_path / "missing.litertlm"), "--prompt-ids", "1,2"], env=_env(),
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: "), proc.stderr
