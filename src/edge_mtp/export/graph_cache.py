"""A cache of converted graphs: the conversion (minutes at full size) does not depend on the weight
matrices or the `--quant` mode, so re-exporting the same checkpoints with another recipe reuses it.

Graphs are converted with the weight matrices as inputs (`edge_mtp.export.graphs.ExternalWeights`), so
a converted graph is a function of: the two configs, the small tensors baked into it as constants (norm
weights, layer scalars, the centroid head's token ordering), the export's shapes, the converter
versions and this package's own graph code. The key hashes all of them; a hit copies the graphs, a miss
converts and stores them atomically. `EDGE_MTP_GRAPH_CACHE=off` disables it (the cross-process
determinism test does), `EDGE_MTP_GRAPH_CACHE=DIR` moves it; by default it is `~/.cache/edge-mtp/graphs`
(or `$EDGE_MTP_CACHE/graphs`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Callable

import torch

PACKAGE = Path(__file__).resolve().parents[1]
# the sources that decide what a converted graph contains
GRAPH_CODE = ("contract.py", "model", "export/graphs.py", "export/litert.py", "export/onnx.py")
TOOLS = ("torch", "litert-torch", "litert-converter", "onnx", "onnxscript")


def cache_root() -> Path | None:
    """`$EDGE_MTP_GRAPH_CACHE` (a folder, or `off`), else `$EDGE_MTP_CACHE/graphs`, else ~/.cache/edge-mtp/graphs."""
    setting = os.environ.get("EDGE_MTP_GRAPH_CACHE", "")
    if setting.lower() in ("off", "0", "no"):
        return None
    if setting:
        return Path(setting)
    return Path(os.environ.get("EDGE_MTP_CACHE", Path.home() / ".cache" / "edge-mtp")) / "graphs"


def _code_digest() -> str:
    digest = hashlib.sha256()
    for part in GRAPH_CODE:
        path = PACKAGE / part
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(PACKAGE).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _tensors_digest(*modules: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            if tensor is not None and tensor.device.type != "meta":
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def installed_versions(names) -> dict[str, str | None]:
    """Each distribution's installed version, None where it is not installed."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def graph_key(kind: str, configs: list[Path], shapes: dict, modules: list[torch.nn.Module]) -> str:
    versions = installed_versions(TOOLS)
    parts = {"kind": kind, "configs": [Path(p).read_text() for p in configs], "shapes": shapes,
             "tensors": _tensors_digest(*modules), "code": _code_digest(), "versions": versions}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def cached(key: str, workdir: Path, convert: Callable[[Path], dict[str, Path]]) -> dict[str, Path]:
    """{graph: path in `workdir`}: copied from the cache, or converted by `convert(workdir)` and stored."""
    root = cache_root()
    entry = root / key if root else None
    index = entry / "graphs.json" if entry else None
    workdir.mkdir(parents=True, exist_ok=True)
    if index and index.is_file():
        names = json.loads(index.read_text())
        for name in names.values():
            shutil.copyfile(entry / name, workdir / name)
        return {graph: workdir / name for graph, name in names.items()}
    paths = convert(workdir)
    if entry:
        _store(entry, paths)
    return paths


def _store(entry: Path, paths: dict[str, Path]) -> None:
    """Atomically; a full or read-only cache folder, or a concurrent export of the same graphs, never fails
    the export."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}."))
    except OSError:
        return
    try:
        for path in paths.values():
            shutil.copyfile(path, staging / path.name)
        (staging / "graphs.json").write_text(json.dumps({g: p.name for g, p in paths.items()}))
        staging.rename(entry)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
