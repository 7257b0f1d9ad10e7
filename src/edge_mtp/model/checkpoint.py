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

import torch
from safetensors import safe_open

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


def _tolerated(name: str, prefix: str, module: torch.nn.Module) -> bool:
    """Unused tensors some releases carry: vision/audio towers, an untied copy of the LM head, and the
    k/v projections of KV-shared layers (the original Google E2B/E4B releases ship them)."""
    if _IGNORED.search(name):
        return True
    m = re.fullmatch(re.escape(prefix) + r"layers\.(\d+)\.self_attn\.(k_proj|v_proj|k_norm|v_norm)\.weight", name)
    if m and hasattr(module, "layers") and int(m.group(1)) < len(module.layers):
        return not module.layers[int(m.group(1))].self_attn.produces_kv
    return False


def load_weights(module: torch.nn.Module, directory: Path, prefix: str, dtype: torch.dtype) -> None:
    """Fill a meta-device `module` from the checkpoint in `directory` (keys = prefix + module key)."""
    index = tensor_index(directory)
    expected = {k: v for k, v in module.state_dict(keep_vars=True).items()}
    loaded = {}
    handles: dict[Path, object] = {}
    for key, ref in expected.items():
        name = prefix + key
        if name not in index:
            raise EdgeMTPError(f"{directory}: missing tensor {name} (expected shape {list(ref.shape)})")
        path, info = index[name]
        if list(info["shape"]) != list(ref.shape):
            raise EdgeMTPError(f"{path}: tensor {name} has shape {info['shape']}, expected {list(ref.shape)}")
        if (info["dtype"] in _FLOAT_DTYPES) != ref.dtype.is_floating_point:
            raise EdgeMTPError(f"{path}: tensor {name} has dtype {info['dtype']}, expected {ref.dtype}")
        if path not in handles:
            handles[path] = safe_open(str(path), framework="pt")
        tensor = handles[path].get_tensor(name)
        loaded[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    for name in index:
        if name.startswith(prefix) and name[len(prefix):] not in expected and not _tolerated(name, prefix, module):
            raise EdgeMTPError(f"{index[name][0]}: unexpected tensor {name} (not part of this config's model)")
    module.load_state_dict(loaded, assign=True, strict=True)
    module.eval().requires_grad_(False)


def resolve_dtype(name: str, stored: str) -> torch.dtype:
    """`auto` keeps the checkpoint's float dtype; anything else must be float32/bfloat16/float16."""
    key = stored if name == "auto" else name
    if key not in DTYPES:
        raise EdgeMTPError(f"dtype '{key}' is not supported; expected one of {', '.join(DTYPES)}")
    return DTYPES[key]


def load_target(directory: Path | str, dtype: str = "auto") -> tuple[Gemma4Target, TargetConfig]:
    cfg = load_target_config(directory)
    with torch.device("meta"):
        model = Gemma4Target(cfg.text)
    load_weights(model, cfg.path, cfg.weight_prefix, resolve_dtype(dtype, cfg.dtype))
    return model, cfg


def load_drafter(directory: Path | str, dtype: str = "auto", dense_head: bool = False
                 ) -> tuple[Gemma4Drafter, DrafterConfig]:
    cfg = load_drafter_config(directory)
    with torch.device("meta"):
        model = Gemma4Drafter(cfg, dense_head=dense_head)
    load_weights(model, cfg.path, "", resolve_dtype(dtype, cfg.dtype))
    if cfg.use_ordered_embeddings:
        ordering = model.masked_embedding.token_ordering
        if not torch.equal(torch.sort(ordering).values, torch.arange(cfg.text.vocab_size)):
            raise EdgeMTPError(f"{cfg.path}: masked_embedding.token_ordering is not a permutation of "
                               f"0..{cfg.text.vocab_size - 1}")
    return model, cfg


def load_pair(target_dir: Path | str, drafter_dir: Path | str, dtype: str = "auto", dense_head: bool = False):
    """Load a target and its drafter after checking that the drafter was made for this target."""
    check_pair(load_target_config(target_dir), load_drafter_config(drafter_dir))
    target, tcfg = load_target(target_dir, dtype)
    drafter, dcfg = load_drafter(drafter_dir, dtype, dense_head)
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
