"""Atomic file output: write to a temporary file beside the target, then rename over it.

A crash or error never leaves a partial file, and readers never see a half-written one.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from edge_mtp.errors import EdgeMTPError


@contextmanager
def atomic_write(path: Path | str, mode: str = "w") -> Iterator[IO]:
    path = Path(path)
    if not path.parent.is_dir():
        raise EdgeMTPError(f"{path}: directory {path.parent} does not exist")
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
