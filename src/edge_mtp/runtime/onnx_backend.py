"""The ONNX Runtime backend: runs an `edge-export --format onnx` directory with onnxruntime's CPU provider.

The K/V cache is one set of OrtValues bound with IO binding as both `kv_cache_*` input and
`out_kv_cache_*` output of the target graph, so its ScatterElements write the new rows in place and no call
copies the cache through Python; the drafter binds the same OrtValues as read-only inputs. The
target graph has a dynamic token axis: prefill is one call, verify one call of K+1 tokens (or fewer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_mtp import contract as c
from edge_mtp.errors import EdgeMTPError
from edge_mtp.runtime.export_backend import ExportBackend, check_manifest, check_sha256


def read_onnx_manifest(directory: Path) -> tuple[dict, bytes]:
    """The export's manifest and its bytes (whose hash is the model id traces carry)."""
    path = Path(directory) / c.MANIFEST_FILE
    try:
        data = path.read_bytes()
        manifest = json.loads(data)
    except FileNotFoundError:
        raise EdgeMTPError(f"{directory}: no {c.MANIFEST_FILE}; not an edge-export --format onnx directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgeMTPError(f"{path}: not a readable JSON manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("container") != "onnx":
        raise EdgeMTPError(f"{path}: not an edge-mtp ONNX manifest (expected \"container\": \"onnx\")")
    if "graphs" not in manifest:
        raise EdgeMTPError(f"{path}: field 'graphs' is missing")
    return check_manifest(manifest, str(path)), data


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


def _check_files(directory: Path, graph: str, meta: dict) -> Path:
    """The graph file (and its external data) exist and hash to what the manifest recorded."""
    path = directory / meta["file"]
    if not path.is_file():
        raise EdgeMTPError(f"{path}: the manifest lists graph '{graph}' but the file is missing")
    check_sha256(path, meta.get("sha256"), str(path))
    if "data" in meta:
        data = directory / meta["data"]["file"]
        if not data.is_file():
            raise EdgeMTPError(f"{data}: the manifest lists it as {graph}'s weights but the file is missing")
        check_sha256(data, meta["data"].get("sha256"), str(data))
    for name in meta.get("reads", []):  # another graph's data file, hashed with that graph
        if not (directory / name).is_file():
            raise EdgeMTPError(f"{directory / name}: {graph} reads its weights from it but the file is missing")
    return path


def unpack_zip(path: Path, into: Path) -> Path:
    """Extract a `.zip` export (refusing members that point outside it)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise EdgeMTPError(f"{path}: member {name!r} points outside the archive")
            archive.extractall(into)
    except (zipfile.BadZipFile, OSError) as e:
        raise EdgeMTPError(f"{path}: not a readable ONNX export .zip ({e})") from None
    return into


class OnnxBackend(ExportBackend):
    name = "python-onnx"

    def __init__(self, directory: Path | str, threads: int = 2):
        import onnxruntime as ort

        directory = self._unpacked(Path(directory))
        manifest, manifest_bytes = read_onnx_manifest(directory)
        tokenizer = directory / c.TOKENIZER_FILE
        super().__init__(manifest, manifest_bytes, tokenizer.read_bytes() if tokenizer.exists() else None)
        self.verify_len = self.draft_len + 1
        graphs = {g: _check_files(directory, g, m) for g, m in manifest["graphs"].items()}
        self.sessions = {g: _session(p, threads) for g, p in graphs.items()}
        kv_shapes = {n: tuple(s) for n, s in manifest["kv_cache"].items()}
        _check_io(self.sessions[c.ONNX_TARGET], graphs[c.ONNX_TARGET], kv_shapes)
        self.kv = {n: ort.OrtValue.ortvalue_from_numpy(np.zeros(s, np.float32)) for n, s in kv_shapes.items()}
        self._target_binding = self.target_binding(self.sessions[c.ONNX_TARGET])
        self.per_layer = c.ONNX_PER_LAYER_EMBEDDER in self.sessions
        self.drafter = self.sessions.get(c.ONNX_DRAFTER)
        if self.drafter is not None:
            drafter_kv = {i.name: kv_shapes[i.name] for i in self.drafter.get_inputs() if i.name in kv_shapes}
            _check_io(self.drafter, graphs[c.ONNX_DRAFTER], drafter_kv)
            self._drafter_binding = self._bind_drafter_cache()

    def _unpacked(self, path: Path) -> Path:
        """A `.zip` export is extracted into a temporary directory that lives as long as the backend."""
        if not path.is_file():
            if not path.is_dir():
                raise EdgeMTPError(f"{path}: no such ONNX export directory or .zip")
            return path
        import tempfile

        self._tmp = tempfile.TemporaryDirectory(prefix="edge-mtp-onnx-")
        return unpack_zip(path, Path(self._tmp.name))

    def _bind_drafter_cache(self):
        binding = self.drafter.io_binding()
        for i in self.drafter.get_inputs():
            if i.name in self.kv:
                binding.bind_ortvalue_input(i.name, self.kv[i.name])
        for o in self.drafter.get_outputs():
            binding.bind_output(o.name)
        return binding

    def target_binding(self, session):
        """IO binding of a target graph with the K/V cache bound once, as input and output (in place)."""
        binding = session.io_binding()
        for name, value in self.kv.items():
            binding.bind_ortvalue_input(name, value)
            binding.bind_ortvalue_output(c.onnx_output(name), value)
        return binding

    def bind_tokens(self, binding, tokens: Sequence[int], start: int) -> None:
        """Bind the per-call inputs (embeddings, per-layer embeddings, positions of `tokens`) and fresh
        outputs: a bound output keeps its first shape, and T changes from call to call."""
        for name, value in self._embed(tokens).items():
            binding.bind_cpu_input(name, value)
        binding.bind_cpu_input(c.INPUT_POS, np.arange(start, start + len(tokens), dtype=np.int32))
        binding.bind_output(c.LOGITS)
        binding.bind_output(c.ACTIVATIONS)

    # ---- graph calls ---------------------------------------------------------------------------------
    def _embed(self, tokens: Sequence[int], per_layer: bool = True) -> dict[str, np.ndarray]:
        ids = np.array([list(tokens)], np.int32)
        feeds = {c.EMBEDDINGS: self.sessions[c.ONNX_EMBEDDER].run(None, {c.TOKEN_IDS: ids})[0]}
        if self.per_layer and per_layer:
            feeds[c.PER_LAYER_EMBEDDINGS] = self.sessions[c.ONNX_PER_LAYER_EMBEDDER].run(None, {c.TOKEN_IDS: ids})[0]
        return feeds

    def _target(self, tokens: Sequence[int], start: int) -> tuple[np.ndarray, np.ndarray]:
        self.bind_tokens(self._target_binding, tokens, start)
        self.sessions[c.ONNX_TARGET].run_with_iobinding(self._target_binding)
        logits, hidden = (v.numpy() for v in self._target_binding.get_outputs()[-2:])
        return logits[0], hidden[0]

    def _prefill(self, tokens: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        logits, hidden = self._target(tokens, 0)
        return logits[-1:], hidden[-1:]

    def _drafter(self, activations: np.ndarray, input_pos: np.ndarray, mask: np.ndarray):
        binding = self._drafter_binding
        binding.bind_cpu_input(c.ACTIVATIONS, activations)
        binding.bind_cpu_input(c.INPUT_POS, input_pos)
        binding.bind_cpu_input(c.MASK, mask)
        self.drafter.run_with_iobinding(binding)
        logits, carry = (v.numpy() for v in binding.get_outputs())
        return logits[0, 0], carry[0, 0]
