"""Where a LiteRT call spends its time, kernel by kernel: Linux `perf` samples of one backend call kind.

ai-edge-litert 2.3.0 has no per-op profiler reachable from Python, but its shared library keeps its
symbols, so sampling the process with `perf record -g` names every kernel (XNNPACK micro-kernels such as
`xnn_f32_gemm_minmax_ukernel_7x32__avx512f_broadcast`, builtin ops such as
`tflite::ops::builtin::embedding_lookup::EvalHybrid`). This runs `--call` (decode: 1 row, verify: K+1
rows, draft: one drafter step) `--calls` times on a bundle after a 200-token prefill, under perf, keeps the
samples taken inside a signature run, and prints each kernel's and each op's share, and that share of the
call's median time:

    .venv/bin/python benchmarks/perf_profile.py CACHE/e2b-int4.litertlm --call draft --json draft-profile.json

Needs `perf` (Debian: `apt install linux-perf`) and permission to sample the process (root, or
kernel.perf_event_paranoid <= 2). The numbers behind docs/tooling.md#drafter-head.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

IN_SIGNATURE = "SignatureRunner::Invoke"
XNNPACK = "XNNPACK delegate"


def child(bundle: str, call: str, calls: int, threads: int) -> None:
    """Run `calls` calls of one kind (`ab_bundles.backend_calls`, verify of K+1 rows); print their median in ms."""
    from ab_bundles import backend_calls
    from edge_mtp.runtime.litert_backend import LiteRTBackend

    backend = LiteRTBackend(bundle, threads)
    timed = backend_calls(backend, verify_rows=int(backend.manifest["draft_len"]) + 1)[call]
    print(json.dumps({"median_ms": timed(calls)}))


def _frames(block: str) -> list[str]:
    """Function names of one `perf script` sample, leaf first (offsets and libraries dropped)."""
    names = []
    for line in block.strip().splitlines()[1:]:
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            names.append(re.sub(r"\+0x[0-9a-f]+ \(.*\)$|\s\(.*\)$", "", parts[1]))
    return names


def _op(frames: list[str]) -> str:
    """The TFLite op a sample belongs to: a builtin kernel's name, or the XNNPACK delegate."""
    for name in frames:
        if "xnnpack" in name.lower() and "SubgraphInvoke" in name:
            return XNNPACK
        match = re.search(r"tflite::ops::builtin::(\w+)::", name)
        if match:
            return match.group(1)
    return "(runtime)"


def shares(perf_script: str) -> tuple[int, dict[str, float], dict[str, float]]:
    """(samples inside a signature run, {kernel: share}, {op: share}) from `perf script` text."""
    kernels, ops, total = collections.Counter(), collections.Counter(), 0
    for block in perf_script.split("\n\n"):
        frames = _frames(block)
        if not frames or not any(IN_SIGNATURE in f for f in frames):
            continue
        total += 1
        kernels[frames[0]] += 1
        ops[_op(frames)] += 1
    norm = lambda c: {k: v / total for k, v in c.most_common()}  # noqa: E731
    return total, norm(kernels), norm(ops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--call", choices=("decode", "verify", "draft"), default="draft")
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frequency", type=int, default=2000, help="perf samples per second")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(str(a.bundle), a.call, a.calls, a.threads)
        return
    if not shutil.which("perf"):
        sys.exit("perf_profile: `perf` is not installed (Debian: apt install linux-perf)")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        cmd = ["perf", "record", "-q", "-F", str(a.frequency), "-g", "-o", str(data), "--", sys.executable,
               __file__, str(a.bundle), "--call", a.call, "--calls", str(a.calls), "--threads", str(a.threads),
               "--child"]
        run = subprocess.run(cmd, capture_output=True, text=True, check=True)
        median_ms = json.loads(run.stdout.strip().splitlines()[-1])["median_ms"]
        script = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, text=True, check=True)
    samples, kernels, ops = shares(script.stdout)
    print(f"{a.bundle.name} {a.call}: median {median_ms:.3f} ms per call, {samples} samples inside signature runs")
    for title, table in (("op", ops), ("kernel", kernels)):
        print(f"\n| {title} | share | ms per call |\n|---|---|---|")
        for name, share in list(table.items())[:a.top]:
            print(f"| {name[:90]} | {100 * share:.1f} % | {share * median_ms:.3f} |")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"bundle": a.bundle.name, "call": a.call, "calls": a.calls, "threads": a.threads,
                                      "median_ms": median_ms, "samples": samples, "ops": ops, "kernels": kernels,
                                      "load_average": os.getloadavg()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
