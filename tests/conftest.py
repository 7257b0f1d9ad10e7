"""Session-wide test checkpoints: each tiny pair is built (and its drafter distilled) once per run.

Pairs are made with transformers' own classes + `save_pretrained`, i.e. in the real HF layout, by the
same `make_checkpoint` users run. The transformers models loaded from the same folders are the oracle.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
from filelock import FileLock

sys.path.insert(0, str(Path(__file__).parent))  # hf_oracle

PRESETS = ("tiny-e2b", "tiny-e4b")
# A partly trained drafter: right often enough to save target passes, wrong often enough that every
# acceptance count 0..K occurs on the loop tests' prompts (300 steps memorises them almost perfectly).
DISTILL_STEPS = 100


def shared_root(tmp_path_factory) -> Path:
    """Where this run's session-wide builds go. Under pytest-xdist (scripts/test.sh runs the slow tier on
    two workers) that is the run's folder, which every worker shares: each pair and export is built once, by
    whichever worker asks first (`built_once`). Alone, it is this session's own folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _shared_dir(tmp_path_factory, name: str) -> Path:
    path = shared_root(tmp_path_factory) / name
    path.mkdir(exist_ok=True)
    return path


def built_once(marker: Path, build: Callable[[], list[str]]) -> list[str]:
    """`build()` once per run across workers: the first to take the lock builds and records what it
    returned in `marker`; the others wait for the lock and read the record."""
    with FileLock(f"{marker}.lock"):
        if not marker.exists():
            marker.write_text(json.dumps(build()))
        return json.loads(marker.read_text())


@pytest.fixture(scope="session", autouse=True)
def _graph_cache(tmp_path_factory):
    """Exports of one pair in several --quant modes share their converted graphs, in a cache of this run's
    own (never the user's ~/.cache), shared by the workers."""
    os.environ.setdefault("EDGE_MTP_GRAPH_CACHE", str(_shared_dir(tmp_path_factory, "graph-cache")))


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # Tiny models: thread start-up costs more than the math, and results must not depend on threading.
    torch.set_num_threads(1)


class Pairs:
    """Lazily built (target_dir, drafter_dir) per preset, and the transformers models of each."""

    def __init__(self, root: Path):
        self.root = root
        self._dirs: dict[str, tuple[Path, Path]] = {}
        self._hf: dict[str, tuple] = {}

    def dirs(self, preset: str) -> tuple[Path, Path]:
        if preset == "demo":  # the committed, trained pair
            from edge_mtp.demo import package_pair

            return package_pair() / "target", package_pair() / "drafter"
        if preset not in self._dirs:
            from edge_mtp.checkpoints.make import make_checkpoint

            def build() -> list[str]:
                dirs = make_checkpoint(preset, self.root / preset, seed=0, distill_steps=DISTILL_STEPS)
                return [str(d) for d in dirs]

            target, drafter = built_once(self.root / f"{preset}.built", build)
            self._dirs[preset] = Path(target), Path(drafter)
        return self._dirs[preset]

    def hf(self, preset: str):
        if preset not in self._hf:
            from transformers import AutoModelForCausalLM, Gemma4AssistantForCausalLM

            target_dir, drafter_dir = self.dirs(preset)
            # Eager attention is transformers' reference math (our modules agree with it bit for bit);
            # its SDPA path adds ~1e-4 of kernel noise over 10 layers of these sharp random models.
            kw = dict(dtype=torch.float32, attn_implementation="eager")
            target = AutoModelForCausalLM.from_pretrained(target_dir, **kw).eval()
            drafter = Gemma4AssistantForCausalLM.from_pretrained(drafter_dir, **kw).eval()
            self._hf[preset] = (target, drafter)
        return self._hf[preset]

    def prompts(self, preset: str) -> list[list[int]]:
        import json

        return json.loads((self.dirs(preset)[1] / "distill_prompts.json").read_text())

    def demo_prompts(self) -> dict[str, list[list[int]]]:
        """The demo pair's held-out prompts per category, as token ids."""
        import json

        from edge_mtp.runtime.tokenizer import TextCodec
        from edge_mtp.demo import package_pair

        codec = TextCodec(package_pair() / "target")
        texts = json.loads((package_pair() / "prompts.json").read_text())
        return {c: [codec.encode(t) for t in ts] for c, ts in texts.items()}


@pytest.fixture(scope="session")
def pairs(tmp_path_factory) -> Pairs:
    return Pairs(_shared_dir(tmp_path_factory, "pairs"))


BUNDLE_CONTEXT, BUNDLE_PREFILL, BUNDLE_K = 128, (8, 32), 4
# A context long enough that decode and verify read their sliding layers' windows (tiny presets: W = 16, so
# 256 aligned slots; `edge_mtp.model.target.SlidingReads`) rather than the whole buffer.
WINDOWED_CONTEXT = 512
# Max |logit difference| allowed between an exported fp32 graph (LiteRT/XNNPACK, onnxruntime) and the
# PyTorch model: the 1e-4. (Measured ~1e-5; see `_make_llm_like` in checkpoints/make.py for why
# the stand-in checkpoints' attention temperature matters here.)
LOGIT_TOL = 1e-4


def assert_same_trace(ours: list[dict], ref: list[dict], tol: float = LOGIT_TOL, what: str = "") -> None:
    """Trace parity through the one diff (`edge-mtp trace diff`): same header, rounds and summary, every
    round's top logits compared and within `tol` (same library on the same machine)."""
    from edge_mtp.runtime.tracediff import diff_traces

    d = diff_traces(ours, ref, tol)
    assert d.ok, f"{what}\n{d.report()}"
    assert d.logits_compared == len(d.rounds("b")) > 0, f"{what}: rounds without top_logits"


class Exports:
    """Lazily exported models per (preset, quant) in one format; each conversion runs once per test run."""

    def __init__(self, pairs: Pairs, root: Path, onnx: bool = False):
        self.pairs, self.root, self.onnx, self._paths = pairs, root, onnx, {}

    def path(self, preset: str, quant: str = "fp32", context: int = BUNDLE_CONTEXT) -> Path:
        if (preset, quant, context) not in self._paths:
            from edge_mtp.export.exporter import ExportOptions, export_litertlm, export_onnx

            name = f"{preset}-{quant}" + (f"-c{context}" if context != BUNDLE_CONTEXT else "")
            out = self.root / (f"{name}-onnx" if self.onnx else f"{name}.litertlm")
            export = export_onnx if self.onnx else export_litertlm

            def build() -> list[str]:
                export(*self.pairs.dirs(preset), out, ExportOptions(quant, BUNDLE_K, BUNDLE_PREFILL, context))
                return [str(out)]

            self._paths[(preset, quant, context)] = Path(built_once(out.with_name(out.name + ".built"), build)[0])
        return self._paths[(preset, quant, context)]


@pytest.fixture(scope="session")
def bundles(pairs, tmp_path_factory) -> Exports:
    """.litertlm bundles."""
    return Exports(pairs, _shared_dir(tmp_path_factory, "bundles"))


@pytest.fixture(scope="session", params=PRESETS)
def preset(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def onnx_exports(pairs, tmp_path_factory) -> Exports:
    """ONNX export directories."""
    return Exports(pairs, _shared_dir(tmp_path_factory, "onnx"), onnx=True)


def shard_checkpoint(directory: Path) -> None:
    """Rewrite `directory/model.safetensors` as two shards and an index, the way big checkpoints are saved."""
    import json

    from safetensors.torch import load_file, save_file

    tensors = load_file(directory / "model.safetensors")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, directory / file, metadata={"format": "pt"})
    (directory / "model.safetensors").unlink()
    weight_map = {k: f for f, keys in shards.items() for k in keys}
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
