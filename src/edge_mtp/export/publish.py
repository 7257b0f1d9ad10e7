"""Publish a finished export directory atomically: as a directory (rename) or as a deterministic `.zip`.

Nothing appears at the output path until everything is written; a failure leaves no partial output.
Replacing an earlier export swaps it out only after the new one is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from edge_mtp.atomic import atomic_write
from edge_mtp.errors import EdgeMTPError

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # zip's epoch: archives must not depend on when they were built


def write_zip(src: Path, out: Path) -> None:
    """Deflated members in name order with fixed dates and permissions: same files, same bytes."""
    with atomic_write(out, "wb") as f, zipfile.ZipFile(f, "w") as archive:
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(src).as_posix(), ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(path, "rb") as member, archive.open(info, "w", force_zip64=True) as dst:
                shutil.copyfileobj(member, dst, 1 << 20)  # streamed: a full-size graph's data is gigabytes


def _replaceable(out: Path) -> bool:
    return out.is_dir() and (out / "manifest.json").is_file() and not any(p.is_dir() for p in out.iterdir())


def check_destination(out: Path) -> None:
    """Fail before any work if `out` cannot receive an export."""
    out = Path(out)
    if not out.parent.is_dir():
        raise EdgeMTPError(f"{out}: directory {out.parent} does not exist")
    if out.suffix != ".zip" and out.exists() and not _replaceable(out):
        raise EdgeMTPError(f"{out}: exists and is not an earlier export (no manifest.json); refusing to replace it")


def publish_directory(src: Path, out: Path) -> None:
    """Move the finished directory `src` (beside `out`, on the same filesystem) to `out`, or zip it there if
    `out` ends in `.zip`. An earlier export at `out` is swapped out only once the new one is in place."""
    out = Path(out)
    check_destination(out)
    if out.suffix == ".zip":
        write_zip(src, out)
        return
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(src, 0o777 & ~umask)  # mkdtemp made it private; the export is ordinary output
    if not out.exists():
        src.rename(out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
    out.rename(old / out.name)
    try:
        src.rename(out)
    except BaseException:
        (old / out.name).rename(out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
