"""Atomic file output: write to a temporary file beside the target, then rename over it.

A crash or error never leaves a partial file, and readers never see a half-written one. `atomic_dir` does
the same for a folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from edge_mtp.errors import EdgeMTPError


def require_parent(path: Path | str) -> Path:
    """The output rule: every output goes into an existing folder; nothing creates missing parents."""
    path = Path(path)
    if not path.parent.is_dir():
        raise EdgeMTPError(f"{path}: directory {path.parent} does not exist")
    return path


@contextmanager
def atomic_write(path: Path | str, mode: str = "w") -> Iterator[IO]:
    path = require_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise EdgeMTPError(f"{path}: cannot write ({e.strerror})") from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """A temporary folder beside `path` (mode 0755, not mkdtemp's private 0700) to fill in the block, renamed to
    `path` when the block ends and removed, with what is in it, if the block raises."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        tmp.chmod(0o755)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
