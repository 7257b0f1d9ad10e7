"""The native C core (`native/`) from Python: find the built `edge-mtp-native` binary, build its argument
list (`native_args`, the one place that maps loop settings onto the C CLI's flags), run it, and read its
step trace. Parity with the Python reference is checked with `edge_mtp.runtime.tracediff.diff_traces`."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime.draftlen import DraftCosts
from edge_mtp.runtime.sampling import SamplingConfig
from edge_mtp.runtime.trace import read_trace

BINARY = "edge-mtp-native"


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


def native_args(prompt_ids: Sequence[int], max_new_tokens: int, draft_len: int | str | None = None,
                sampling: SamplingConfig | None = None, kv_view: str = "hf", trace: Path | str | None = None,
                as_json: bool = False, draft_costs: DraftCosts | None = None, threads: int | None = None) -> list[str]:
    """The C CLI's flags for one run (native/src/cli.c): `draft_len=None` lets it use the bundle's K, "auto"
    chooses K per round (with `draft_costs`, else costs it times first), `sampling=None` is greedy (the C
    CLI samples only when --temperature > 0), `threads=None` its default (2, as the Python backends)."""
    args = ["--prompt-ids", ",".join(map(str, prompt_ids)), "--max-new-tokens", str(max_new_tokens),
            "--kv-view", kv_view]
    if draft_len is not None:
        args += ["--draft-len", str(draft_len)]
    if draft_costs is not None:
        args += ["--draft-costs", draft_costs.spec()]
    if sampling is not None:
        args += ["--temperature", repr(sampling.temperature), "--top-k", str(sampling.top_k),
                 "--top-p", repr(sampling.top_p), "--seed", str(sampling.seed)]
    if threads is not None:
        args += ["--threads", str(threads)]
    if trace is not None:
        args += ["--trace", str(trace)]
    if as_json:
        args.append("--json")
    return args


def native_command(bundle: Path | str, args: list[str]) -> list[str]:
    """The command line of `edge-mtp-native BUNDLE *args` with the wheel's libLiteRt.so."""
    binary = find_binary()
    if binary is None:
        raise EdgeMTPError("the native CLI is not built; run `make -C native` (or set EDGE_MTP_NATIVE)")
    cmd = [str(binary), str(bundle), *args]
    lib = litert_library()
    if lib and "--litert-lib" not in args:
        cmd += ["--litert-lib", lib]
    return cmd


def run_native(bundle: Path | str, args: list[str], capture: bool = False) -> subprocess.CompletedProcess:
    """Run `edge-mtp-native BUNDLE *args` with the wheel's libLiteRt.so."""
    return subprocess.run(native_command(bundle, args), capture_output=capture, text=True, check=False)


def native_trace(bundle: Path | str, prompt_ids: Sequence[int], max_new_tokens: int,
                 draft_len: int | str | None = None, sampling: SamplingConfig | None = None, kv_view: str = "hf",
                 path: Path | str | None = None, draft_costs: DraftCosts | None = None,
                 threads: int | None = None) -> list[dict]:
    """Generate with the C CLI and return its step trace, written to `path` (else a temporary file)."""
    with tempfile.TemporaryDirectory(prefix="edge-mtp-native-") as tmp:
        trace = Path(path) if path is not None else Path(tmp) / "trace.jsonl"
        flags = native_args(prompt_ids, max_new_tokens, draft_len, sampling, kv_view, trace, draft_costs=draft_costs,
                            threads=threads)
        proc = run_native(bundle, flags, capture=True)
        if proc.returncode:
            tail = proc.stderr.strip().splitlines()[-1:] or ["no message"]
            raise EdgeMTPError(f"{BINARY} failed (exit {proc.returncode}): {tail[0]}")
        return read_trace(trace)
