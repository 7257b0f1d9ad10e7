"""Reading a profiling file, and the one-line error every parser raises."""

from __future__ import annotations

from pathlib import Path

from edge_mtp.errors import EdgeMTPError


def bad_file(path: Path | str, expected: str, detail: str = "") -> EdgeMTPError:
    """`<path>: not <expected> (<detail>)` on one line."""
    detail = " ".join(str(detail).split())
    return EdgeMTPError(f"{path}: not {expected}" + (f" ({detail})" if detail else ""))


def read_text(path: Path | str, expected: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise bad_file(path, expected, e) from None


def number(text: str, path: Path | str, expected: str, where: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise bad_file(path, expected, f"{where}: {text!r} is not a number") from None
