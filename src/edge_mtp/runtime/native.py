"""The native C core (`native/`) from Python: find the built `edge-mtp-native` binary, run it, and
compare its step trace with the Python reference's (trace-v1: tokens, drafts and accepted counts
exactly; logits within a tolerance)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from edge_mtp.errors import EdgeMTPError

BINARY = "edge-mtp-native"
LOGIT_TOL = 1e-4  # same library, same machine: observed equal; other kernels may differ slightly


def find_binary() -> Path | None:
    """$EDGE_MTP_NATIVE, else native/build/edge-mtp-native of this checkout."""
    env = os.environ.get("EDGE_MTP_NATIVE")
    if env:
        return Path(env) if Path(env).is_file() else None
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "native" / "build" / BINARY
        if candidate.is_file():
            return candidate
    return None


def litert_library() -> str | None:
    """libLiteRt.so of the installed ai-edge-litert wheel (the same library the Python backend runs)."""
    try:
        import ai_edge_litert
    except ImportError:
        return None
    lib = Path(ai_edge_litert.__file__).parent / "libLiteRt.so"
    return str(lib) if lib.is_file() else None


def run_native(bundle: Path | str, args: list[str], capture: bool = False) -> subprocess.CompletedProcess:
    """Run `edge-mtp-native BUNDLE *args` with the wheel's libLiteRt.so."""
    binary = find_binary()
    if binary is None:
        raise EdgeMTPError("the native CLI is not built; run `make -C native` (or set EDGE_MTP_NATIVE)")
    cmd = [str(binary), str(bundle), *args]
    lib = litert_library()
    if lib and "--litert-lib" not in args:
        cmd += ["--litert-lib", lib]
    return subprocess.run(cmd, capture_output=capture, text=True, check=False)


def compare_traces(ours: list[dict], ref: list[dict], tol: float = LOGIT_TOL) -> list[str]:
    """Differences between two trace-v1 traces (empty = parity): every round's positions, drafts, target
    choices, accepted counts and emitted tokens exactly, top logits' ids exactly and values within `tol`,
    the summary exactly; timings and `implementation` are ignored."""
    problems = []
    ha, hb = ours[0], ref[0]
    for key in ("format", "model", "prompt_ids", "draft_len", "max_new_tokens", "sampling", "kv_view", "draft_policy"):
        if ha.get(key) != hb.get(key):
            problems.append(f"header {key}: {ha.get(key)!r} != {hb.get(key)!r}")
    ra = [x for x in ours if x["type"] == "round"]
    rb = [x for x in ref if x["type"] == "round"]
    if len(ra) != len(rb):
        problems.append(f"{len(ra)} rounds != {len(rb)}")
    for a, b in zip(ra, rb):
        for key in ("index", "position", "drafts", "target", "accepted", "emitted", "rates", "probe"):
            if a.get(key) != b.get(key):
                problems.append(f"round {b['index']} {key}: {a.get(key)} != {b.get(key)}")
        ids_a, ids_b = [i for i, _ in a["top_logits"]], [i for i, _ in b["top_logits"]]
        if ids_a != ids_b:
            problems.append(f"round {b['index']} top_logits ids: {ids_a} != {ids_b}")
        worst = max((abs(x - y) for (_, x), (_, y) in zip(a["top_logits"], b["top_logits"])), default=0.0)
        if worst > tol:
            problems.append(f"round {b['index']} top_logits differ by {worst:.3g} > {tol}")
    sa, sb = ours[-1], ref[-1]
    for key in ("tokens", "rounds", "drafted", "accepted", "accepted_per_position", "mean_emitted_per_round", "stop",
                "probes", "probes_accepted"):
        if sa.get(key) != sb.get(key):
            problems.append(f"summary {key}: {sa.get(key)!r} != {sb.get(key)!r}")
    return problems
