"""Load Hugging Face-layout safetensors checkpoints into the export modules. Never unpickles.

Tensors are read one at a time straight into the parameters of a module built on the meta device, so
a full-size E2B/E4B load holds one copy of the weights. Every problem is a one-line `EdgeMTPError`
naming the file or tensor, the expected and the found value.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edge_mtp.errors import EdgeMTPError
from edge_mtp.model.config import (DrafterConfig, TargetConfig, check_pair, load_drafter_config,
                                   load_target_config, read_json)
from edge_mtp.model.drafter import Gemma4Drafter
from edge_mtp.model.target import Gemma4Target

_DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_FLOAT_DTYPES = {"BF16", "F16", "F32"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Parts of a real multimodal Gemma 4 checkpoint that a text decoder does not use.
_IGNORED = re.compile(r"^model\.(vision_tower|audio_tower|embed_vision|embed_audio)\.|^lm_head\.weight$")


def read_safetensors_header(path: Path) -> dict[str, dict]:
    """Parse and validate a safetensors header: sizes, offsets inside the file, known dtypes."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise EdgeMTPError(f"{path}: truncated safetensors file ({size} bytes, no header)")
            (n,) = struct.unpack("<Q", head)
            if 8 + n > size:
                raise EdgeMTPError(f"{path}: truncated safetensors file (header says {n} bytes, file has {size})")
            header = json.loads(f.read(n))
    except OSError as e:
        raise EdgeMTPError(f"{path}: cannot read ({e.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EdgeMTPError(f"{path}: not a safetensors file (header is not JSON)") from None
    header.pop("__metadata__", None)
    data_size = size - 8 - n
    for name, info in header.items():
        dtype, shape, (start, end) = info.get("dtype"), info.get("shape", []), info.get("data_offsets", (0, 0))
        if dtype not in _DTYPE_BYTES:
            raise EdgeMTPError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        expected = _DTYPE_BYTES[dtype] * int(torch.Size(shape).numel())
        if end - start != expected:
            raise EdgeMTPError(f"{path}: tensor {name} has {end - start} bytes, shape {shape} needs {expected}")
        if end > data_size:
            raise EdgeMTPError(f"{path}: truncated safetensors file (tensor {name} ends at byte {end} "
                               f"of a {data_size}-byte data section)")
    return header


def tensor_index(directory: Path) -> dict[str, tuple[Path, dict]]:
    """Map every tensor name to (file, header entry), over one file or a sharded index."""
    index_path = directory / "model.safetensors.index.json"
    if index_path.exists():
        weight_map = read_json(index_path).get("weight_map")
        if not isinstance(weight_map, dict):
            raise EdgeMTPError(f"{index_path}: missing 'weight_map' object")
        files = sorted(set(weight_map.values()))
    elif (directory / "model.safetensors").exists():
        files = ["model.safetensors"]
    else:
        raise EdgeMTPError(f"{directory}: no model.safetensors or model.safetensors.index.json")
    index = {}
    for name in files:
        path = directory / name
        if not path.exists():
            raise EdgeMTPError(f"{index_path}: lists shard {name}, which does not exist")
        for tensor, info in read_safetensors_header(path).items():
            index[tensor] = (path, info)
    return index


_TORCH_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
                 "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                 "BOOL": torch.bool}


def _mapped(mapping: np.memmap, path: Path, info: dict) -> torch.Tensor:
    """A tensor viewing its bytes in the mapped file: pages are read when touched, so a full-size model in
    its stored dtype costs only the memory it uses (the 262144-row per-layer-embedding table is gathered
    a few rows per token). `.to(dtype)` of another dtype copies, as it must."""
    header = 8 + int.from_bytes(mapping[:8].tobytes(), "little")
    start, end = info["data_offsets"]
    raw = torch.from_numpy(mapping[header + start:header + end])
    return raw.view(_TORCH_DTYPES[info["dtype"]]).reshape(info["shape"])


def _tolerated(name: str, prefix: str, module: torch.nn.Module) -> bool:
    """Unused tensors some releases carry: vision/audio towers, an untied copy of the LM head, and the
    k/v projections of KV-shared layers (the original Google E2B/E4B releases ship them)."""
    if _IGNORED.search(name):
        return True
    m = re.fullmatch(re.escape(prefix) + r"layers\.(\d+)\.self_attn\.(k_proj|v_proj|k_norm|v_norm)\.weight", name)
    if m and hasattr(module, "layers") and int(m.group(1)) < len(module.layers):
        return not module.layers[int(m.group(1))].self_attn.produces_kv
    return False


def load_weights(module: torch.nn.Module, directory: Path, prefix: str, dtype: torch.dtype,
                 external: Callable[[str, torch.Tensor], bool] | None = None) -> dict[str, tuple[str, tuple]]:
    """Fill a meta-device `module` from the checkpoint in `directory` (keys = prefix + module key).

    Parameters for which `external(key, param)` is true are checked against the checkpoint but not
    loaded: they are removed from the module (set to None) and returned as {key: (tensor name, shape)},
    for an exporter that streams them straight from the files into its output.
    """
    index = tensor_index(directory)
    expected = {k: v for k, v in module.state_dict(keep_vars=True).items()}
    loaded, skipped = {}, {}
    maps: dict[Path, np.memmap] = {}
    for key, ref in expected.items():
        name = prefix + key
        if name not in index:
            raise EdgeMTPError(f"{directory}: missing tensor {name} (expected shape {list(ref.shape)})")
        path, info = index[name]
        if list(info["shape"]) != list(ref.shape):
            raise EdgeMTPError(f"{path}: tensor {name} has shape {info['shape']}, expected {list(ref.shape)}")
        if (info["dtype"] in _FLOAT_DTYPES) != ref.dtype.is_floating_point:
            raise EdgeMTPError(f"{path}: tensor {name} has dtype {info['dtype']}, expected {ref.dtype}")
        if external is not None and isinstance(ref, torch.nn.Parameter) and external(key, ref):
            skipped[key] = (name, tuple(ref.shape))
            continue
        if path not in maps:
            maps[path] = np.memmap(path, np.uint8, mode="c")  # copy-on-write: nothing is written back
        tensor = _mapped(maps[path], path, info)
        loaded[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    for name in index:
        if name.startswith(prefix) and name[len(prefix):] not in expected and not _tolerated(name, prefix, module):
            raise EdgeMTPError(f"{index[name][0]}: unexpected tensor {name} (not part of this config's model)")
    for key in skipped:
        owner, _, leaf = key.rpartition(".")
        module.get_submodule(owner)._parameters[leaf] = None
    module.load_state_dict(loaded, assign=True, strict=not skipped)
    module.eval().requires_grad_(False)
    return skipped


def resolve_dtype(name: str, stored: str) -> torch.dtype:
    """`auto` keeps the checkpoint's float dtype; anything else must be float32/bfloat16/float16."""
    key = stored if name == "auto" else name
    if key not in DTYPES:
        raise EdgeMTPError(f"dtype '{key}' is not supported; expected one of {', '.join(DTYPES)}")
    return DTYPES[key]


def _is_matrix(key: str, param: torch.Tensor) -> bool:
    """The weights an exporter streams from disk: every float matrix (projections, embedding tables)."""
    return param.dim() >= 2 and param.is_floating_point()


def load_target(directory: Path | str, dtype: str = "auto") -> tuple[Gemma4Target, TargetConfig]:
    cfg = load_target_config(directory)
    with torch.device("meta"):
        model = Gemma4Target(cfg.text)
    load_weights(model, cfg.path, cfg.weight_prefix, resolve_dtype(dtype, cfg.dtype))
    return model, cfg


def load_target_skeleton(directory: Path | str) -> tuple[Gemma4Target, TargetConfig, dict[str, tuple[str, tuple]]]:
    """The target with only its small tensors (norms, scalars) in float32; every matrix stays on disk and is
    listed as {module key: (tensor name, shape)} (see `load_weights`)."""
    cfg = load_target_config(directory)
    with torch.device("meta"):
        model = Gemma4Target(cfg.text)
    external = load_weights(model, cfg.path, cfg.weight_prefix, torch.float32, _is_matrix)
    return model, cfg, external


def _check_ordering(model: Gemma4Drafter, cfg: DrafterConfig) -> None:
    if cfg.use_ordered_embeddings:
        ordering = model.masked_embedding.token_ordering
        if not torch.equal(torch.sort(ordering).values, torch.arange(cfg.text.vocab_size)):
            raise EdgeMTPError(f"{cfg.path}: masked_embedding.token_ordering is not a permutation of "
                               f"0..{cfg.text.vocab_size - 1}")


def load_drafter(directory: Path | str, dtype: str = "auto", dense_head: bool = False
                 ) -> tuple[Gemma4Drafter, DrafterConfig]:
    cfg = load_drafter_config(directory)
    with torch.device("meta"):
        model = Gemma4Drafter(cfg, dense_head=dense_head)
    load_weights(model, cfg.path, "", resolve_dtype(dtype, cfg.dtype))
    _check_ordering(model, cfg)
    return model, cfg


def load_drafter_skeleton(directory: Path | str, dense_head: bool = False
                          ) -> tuple[Gemma4Drafter, DrafterConfig, dict[str, tuple[str, tuple]]]:
    """`load_target_skeleton` for the drafter."""
    cfg = load_drafter_config(directory)
    with torch.device("meta"):
        model = Gemma4Drafter(cfg, dense_head=dense_head)
    external = load_weights(model, cfg.path, "", torch.float32, _is_matrix)
    _check_ordering(model, cfg)
    return model, cfg, external


def load_pair(target_dir: Path | str, drafter_dir: Path | str, dtype: str = "auto", dense_head: bool = False):
    """Load a target and its drafter after checking that the drafter was made for this target."""
    check_pair(load_target_config(target_dir), load_drafter_config(drafter_dir))
    target, tcfg = load_target(target_dir, dtype)
    # the drafter computes on the target's K/V and hidden state, so it runs in the target's dtype even when
    # its weights are stored in another (the demo drafter is stored bf16 beside a float32 target)
    drafter, dcfg = load_drafter(drafter_dir, tcfg.dtype if dtype == "auto" else dtype, dense_head)
    return target, tcfg, drafter, dcfg


def checkpoint_id(*directories: Path | str) -> str:
    """A short content id for traces: sha256 over each config.json and safetensors header.

    Headers carry every tensor's name, shape and byte range but not the data, so this is instant even
    for full-size checkpoints; it changes whenever the files are rewritten with other shapes or layout.
    """
    digest = hashlib.sha256()
    for directory in map(Path, directories):
        digest.update((directory / "config.json").read_bytes())
        for path in sorted({p for p, _ in tensor_index(directory).values()}):
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                digest.update(f.read(n))
    return "sha256:" + digest.hexdigest()[:16]


_NUMPY_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


class TensorReader:
    """Row ranges of a checkpoint's tensors as float32 numpy arrays, read with `pread` (no mmap, so a
    streaming exporter's resident memory stays one chunk, whatever the tensor's size)."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self.index = tensor_index(self.directory)
        self._data_start = {path: 8 + struct.unpack("<Q", _head(path))[0] for path, _ in self.index.values()}

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.index[name][1]["shape"])

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 of a 2-D float tensor, as float32 [stop - start, cols]."""
        path, info = self.index[name]
        rows, cols = info["shape"]
        stored = _NUMPY_DTYPES.get(info["dtype"])
        if stored is None:
            raise EdgeMTPError(f"{path}: tensor {name} has dtype {info['dtype']}, expected a float matrix")
        item = np.dtype(stored).itemsize
        count = (stop - start) * cols
        out = np.empty(count, stored)
        offset = self._data_start[path] + info["data_offsets"][0] + start * cols * item
        with open(path, "rb") as f:
            f.seek(offset)
            got = f.readinto(memoryview(out).cast("B"))
        if got != count * item:
            raise EdgeMTPError(f"{path}: truncated safetensors file (tensor {name} rows {start}..{stop - 1})")
        if info["dtype"] == "BF16":  # bf16 is the top half of a float32
            return (out.astype(np.uint32) << 16).view(np.float32).reshape(-1, cols)
        return out.astype(np.float32, copy=False).reshape(-1, cols)


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(8)
