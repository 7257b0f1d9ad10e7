"""The ONNX Runtime backend: runs an `edge-export --format onnx` directory with onnxruntime's CPU provider.

The K/V cache is one set of OrtValues bound with IO binding as both `kv_cache_*` input and
`out_kv_cache_*` output of the target graph, so ScatterND writes the new rows in place and no call
copies the cache through Python; the drafter binds the same OrtValues as read-only inputs. The
target graph has a dynamic token axis: prefill is one call, verify one call of K+1 tokens.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime.backend import TargetStep
from edge_mtp.runtime.views import DrafterViews, mask_inputs

MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
REQUIRED = ("graphs", "kv_cache", "stop_ids", "sliding_window", "vocab_size", "draft_len", "context", "options")


def read_onnx_manifest(directory: Path) -> tuple[dict, str]:
    """The export's manifest and the sha256 of its bytes (the model id traces carry)."""
    path = Path(directory) / MANIFEST
    try:
        data = path.read_bytes()
        manifest = json.loads(data)
    except FileNotFoundError:
        raise EdgeMTPError(f"{directory}: no {MANIFEST}; not an edge-export --format onnx directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgeMTPError(f"{path}: not a readable JSON manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("container") != "onnx":
        raise EdgeMTPError(f"{path}: not an edge-mtp ONNX manifest (expected \"container\": \"onnx\")")
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise EdgeMTPError(f"{path}: field '{missing[0]}' is missing")
    return manifest, hashlib.sha256(data).hexdigest()


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 -- onnxruntime raises its own Fail/InvalidGraph/... types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgeMTPError(f"{path}: onnxruntime cannot load this graph ({first})") from None


def _check_io(session, path: Path, expected: dict[str, tuple]) -> None:
    """Every input the runtime feeds must exist with the expected static dims (None = dynamic)."""
    inputs = {i.name: i.shape for i in session.get_inputs()}
    for name, shape in expected.items():
        if name not in inputs:
            raise EdgeMTPError(f"{path}: graph has no input tensor '{name}'")
        got = inputs[name]
        if len(got) != len(shape) or any(s is not None and g != s for g, s in zip(got, shape)):
            raise EdgeMTPError(f"{path}: input tensor '{name}' has shape {got}, expected {list(shape)}")


class OnnxBackend:
    name = "python-onnx"

    def __init__(self, directory: Path | str, threads: int = 2):
        import onnxruntime as ort

        directory = self._unpacked(Path(directory))
        manifest, digest = read_onnx_manifest(directory)
        self.manifest = manifest
        self.model_id = "sha256:" + digest[:16]
        self.stop_ids = tuple(manifest["stop_ids"])
        self.sliding_window = int(manifest["sliding_window"])
        self.vocab_size = int(manifest["vocab_size"])
        self.draft_len = int(manifest["draft_len"])
        self.context = int(manifest["context"])
        self.verify_len = self.draft_len + 1
        tokenizer = directory / TOKENIZER
        self.tokenizer_json = tokenizer.read_text() if tokenizer.exists() else None
        graphs = {g: directory / m["file"] for g, m in manifest["graphs"].items()}
        for g, path in graphs.items():
            if not path.is_file():
                raise EdgeMTPError(f"{path}: the manifest lists graph '{g}' but the file is missing")
        self.sessions = {g: _session(p, threads) for g, p in graphs.items()}
        kv_shapes = {n: tuple(s) for n, s in manifest["kv_cache"].items()}
        _check_io(self.sessions["target"], graphs["target"], kv_shapes)
        self.kv = {n: ort.OrtValue.ortvalue_from_numpy(np.zeros(s, np.float32)) for n, s in kv_shapes.items()}
        self._target_binding = self.target_binding(self.sessions["target"])
        self.per_layer = "per_layer_embedder" in self.sessions
        self.drafter = self.sessions.get("drafter")
        if self.drafter is not None:
            drafter_kv = {i.name: kv_shapes[i.name] for i in self.drafter.get_inputs() if i.name in kv_shapes}
            _check_io(self.drafter, graphs["drafter"], drafter_kv)
            self._drafter_binding = self._bind_drafter_cache()
        self.length = 0

    def _unpacked(self, path: Path) -> Path:
        """A `.zip` export is extracted into a temporary directory that lives as long as the backend."""
        if not path.is_file():
            if not path.is_dir():
                raise EdgeMTPError(f"{path}: no such ONNX export directory or .zip")
            return path
        import tempfile
        import zipfile

        self._tmp = tempfile.TemporaryDirectory(prefix="edge-mtp-onnx-")
        try:
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    if name.startswith("/") or ".." in Path(name).parts:
                        raise EdgeMTPError(f"{path}: member {name!r} points outside the archive")
                archive.extractall(self._tmp.name)
        except (zipfile.BadZipFile, OSError) as e:
            raise EdgeMTPError(f"{path}: not a readable ONNX export .zip ({e})") from None
        return Path(self._tmp.name)

    def _bind_drafter_cache(self):
        binding = self.drafter.io_binding()
        for i in self.drafter.get_inputs():
            if i.name in self.kv:
                binding.bind_ortvalue_input(i.name, self.kv[i.name])
        for o in self.drafter.get_outputs():
            binding.bind_output(o.name)
        return binding

    def _embed(self, tokens: Sequence[int]) -> dict[str, np.ndarray]:
        ids = np.array([list(tokens)], np.int32)
        feeds = {"embeddings": self.sessions["embedder"].run(None, {"token_ids": ids})[0]}
        if self.per_layer:
            feeds["per_layer_embeddings"] = self.sessions["per_layer_embedder"].run(None, {"token_ids": ids})[0]
        return feeds

    def target_binding(self, session):
        """IO binding of a target graph with the K/V cache bound once, as input and output (in place)."""
        binding = session.io_binding()
        for name, value in self.kv.items():
            binding.bind_ortvalue_input(name, value)
            binding.bind_ortvalue_output(f"out_{name}", value)
        return binding

    def bind_tokens(self, binding, tokens: Sequence[int], start: int) -> None:
        """Bind the per-call inputs (embeddings, per-layer embeddings, positions of `tokens`) and fresh
        outputs: a bound output keeps its first shape, and T changes from call to call."""
        for name, value in self._embed(tokens).items():
            binding.bind_cpu_input(name, value)
        binding.bind_cpu_input("input_pos", np.arange(start, start + len(tokens), dtype=np.int32))
        binding.bind_output("logits")
        binding.bind_output("activations")

    def _target(self, tokens: Sequence[int], start: int) -> tuple[np.ndarray, np.ndarray]:
        if start != self.length:
            raise RuntimeError(f"target run at position {start}, but {self.length} positions are valid")
        if start + len(tokens) > self.context:
            raise EdgeMTPError(f"{start + len(tokens)} positions exceed the export's context of {self.context}")
        self.bind_tokens(self._target_binding, tokens, start)
        self.sessions["target"].run_with_iobinding(self._target_binding)
        logits, hidden = (v.numpy() for v in self._target_binding.get_outputs()[-2:])
        self.length = start + len(tokens)
        return logits[0], hidden[0]

    # ---- Backend interface -----------------------------------------------------------------------
    def prefill(self, tokens: Sequence[int]) -> TargetStep:
        self.length = 0
        logits, hidden = self._target(tokens, 0)
        return TargetStep(logits[-1:], hidden[-1:])

    def verify(self, tokens: Sequence[int], start: int) -> TargetStep:
        logits, hidden = self._target(tokens, start)
        return TargetStep(logits, hidden)

    def rollback(self, length: int) -> None:
        self.length = length

    def draft(self, token: int, carry: np.ndarray, position: int, views: DrafterViews):
        if self.drafter is None:
            raise EdgeMTPError("this export has no drafter graph; use --draft-len 0")
        input_pos, mask = mask_inputs(views, position, self.context, self.sliding_window)
        embedding = self._embed([token])["embeddings"]
        binding = self._drafter_binding
        binding.bind_cpu_input("activations", np.concatenate(
            [embedding, carry.reshape(1, 1, -1).astype(np.float32)], axis=-1))
        binding.bind_cpu_input("input_pos", input_pos)
        binding.bind_cpu_input("mask", mask)
        self.drafter.run_with_iobinding(binding)
        logits, carry = (v.numpy() for v in binding.get_outputs())
        return logits[0, 0], carry[0, 0]
