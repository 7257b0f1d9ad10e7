"""Open an exported model with the runtime that fits it, recognised by its bytes, not its name."""

from __future__ import annotations

from pathlib import Path

from edge_mtp.errors import EdgeMTPError

LITERTLM_MAGIC, ZIP_MAGIC = b"LITERTLM", b"PK\x03\x04"


def export_kind(path: Path | str) -> str:
    """"onnx" for a directory or a zip archive, else "litertlm" (whose reader then checks the bytes)."""
    path = Path(path)
    if path.is_dir():
        return "onnx"
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise EdgeMTPError(f"{path}: cannot read ({e.strerror})") from None
    if head.startswith(ZIP_MAGIC) or (path.suffix == ".zip" and not head.startswith(LITERTLM_MAGIC)):
        return "onnx"
    return "litertlm"  # anything else: the bundle reader says precisely what is wrong with it


def read_manifest(path: Path | str) -> dict:
    """An export's manifest, without loading any graph."""
    path = Path(path)
    if export_kind(path) == "litertlm":
        from edge_mtp.litertlm import read_bundle
        from edge_mtp.runtime.export_backend import check_manifest

        return check_manifest(read_bundle(path).manifest(), str(path))
    from edge_mtp.runtime.onnx_backend import read_onnx_manifest

    if path.is_dir():
        return read_onnx_manifest(path)[0]
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory(prefix="edge-mtp-manifest-") as tmp:
        try:
            with zipfile.ZipFile(path) as archive:
                archive.extract("manifest.json", tmp)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise EdgeMTPError(f"{path}: not a readable ONNX export .zip ({e})") from None
        return read_onnx_manifest(Path(tmp))[0]


def open_export(path: Path | str, threads: int = 2):
    """A ready backend (LiteRT or ONNX Runtime) for an `edge-export` output."""
    if export_kind(path) == "litertlm":
        from edge_mtp.runtime.litert_backend import LiteRTBackend

        return LiteRTBackend(path, threads)
    from edge_mtp.runtime.onnx_backend import OnnxBackend

    return OnnxBackend(path, threads)
