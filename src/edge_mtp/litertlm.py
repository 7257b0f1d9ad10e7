"""The `.litertlm` container: write with litert-lm-builder (deterministically), read it back ourselves.

Layout (LiteRT-LM 1.x): 8-byte magic `LITERTLM`, major/minor/patch uint32, at byte 24 a uint64 end
of the header, at byte 32 a flatbuffer `LiteRTLMMetaData` (system metadata key/values, and per section:
key/values such as `model_type`, a data type, begin and end offsets), then the sections, each aligned to
16 KiB. Our manifest travels as a generic binary section tagged `edge_mtp=manifest`.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edge_mtp.atomic import atomic_write
from edge_mtp.contract import model_id
from edge_mtp.errors import EdgeMTPError

MAGIC = b"LITERTLM"
MANIFEST_TAG = ("edge_mtp", "manifest")
FIXED_TIMESTAMP = "1970-01-01T00:00:00+00:00"  # bundles must not depend on when they were built


@dataclass
class Section:
    kind: str  # model_type ("tf_lite_prefill_decode", ...) or the data type name
    begin: int
    end: int
    items: dict[str, object] = field(default_factory=dict)


@dataclass
class Bundle:
    path: Path
    sections: list[Section]
    system: dict[str, object]

    def read(self, section: Section) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(section.begin)
            return f.read(section.end - section.begin)

    def view(self, section: Section) -> memoryview:
        """A read-only view of a section through a file mapping: nothing is read until it is touched (a
        full-size bundle's sections are gigabytes; reading a signature list touches a few pages)."""
        import mmap

        with open(self.path, "rb") as f:
            mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return memoryview(mapping)[section.begin:section.end]

    def find(self, kind: str) -> Section | None:
        return next((s for s in self.sections if s.kind == kind), None)

    def model(self, kind: str) -> bytes:
        section = self.find(kind)
        if section is None:
            raise EdgeMTPError(f"{self.path}: no {kind} section")
        return self.read(section)

    def tokenizer_json(self) -> bytes | None:
        """The HF tokenizer section (stored as uint64 size + zlib stream), or None."""
        section = self.find("HF_Tokenizer_Zlib")
        if section is None:
            return None
        raw = self.read(section)
        try:
            return zlib.decompress(raw[8:])
        except zlib.error:
            raise EdgeMTPError(f"{self.path}: corrupt tokenizer section") from None

    def manifest_bytes(self) -> bytes:
        """The manifest section as stored (its hash is the bundle's id, `edge_mtp.contract.model_id`)."""
        for s in self.sections:
            if s.items.get(MANIFEST_TAG[0]) == MANIFEST_TAG[1]:
                return self.read(s)
        raise EdgeMTPError(f"{self.path}: no edge-mtp manifest section (not exported by edge-export?)")

    def manifest(self) -> dict:
        try:
            return json.loads(self.manifest_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EdgeMTPError(f"{self.path}: the edge-mtp manifest section is not valid JSON") from None

    def model_id(self) -> str:
        """The bundle's id in traces (`edge_mtp.contract.model_id`)."""
        return model_id(self.manifest_bytes())


def _kv(pair) -> tuple[str, object]:
    from litert_lm_builder import litertlm_peek

    value = litertlm_peek.kvp_to_dict(pair)
    return value["key"], value["value"]


def read_bundle(path: Path | str) -> Bundle:
    """Parse the container header and check every section lies inside the file."""
    from litert_lm_builder import litertlm_core
    from litert_lm_builder import litertlm_header_schema_py_generated as schema

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(32)
            if len(head) < 32 or head[:8] != MAGIC:
                raise EdgeMTPError(f"{path}: not a .litertlm bundle (bad magic)")
            (header_end,) = struct.unpack_from("<Q", head, 24)
            if not 32 < header_end <= size:
                raise EdgeMTPError(f"{path}: truncated .litertlm header")
            header = f.read(header_end - 32)
    except OSError as e:
        raise EdgeMTPError(f"{path}: cannot read ({e.strerror})") from None
    try:
        meta = schema.LiteRTLMMetaData.GetRootAs(header, 0)
        system = dict(_kv(meta.SystemMetadata().Entries(i)) for i in range(meta.SystemMetadata().EntriesLength()))
        sections = []
        objects = meta.SectionMetadata()
        for i in range(objects.ObjectsLength()):
            obj = objects.Objects(i)
            items = dict(_kv(obj.Items(j)) for j in range(obj.ItemsLength()))
            kind = str(items.get("model_type") or litertlm_core.any_section_data_type_to_string(obj.DataType()))
            sections.append(Section(kind, obj.BeginOffset(), obj.EndOffset(), items))
    except Exception as e:  # flatbuffers raises assorted errors on garbage
        raise EdgeMTPError(f"{path}: corrupt .litertlm header ({type(e).__name__})") from None
    for s in sections:
        if not header_end <= s.begin <= s.end <= size:
            raise EdgeMTPError(f"{path}: truncated bundle (section {s.kind} ends at byte {s.end}, file has {size})")
    return Bundle(path, sections, system)


@contextmanager
def _deterministic_system_metadata(uuid: str):
    """litert-lm-builder stamps a random UUID and the current time; ours derive from the content."""
    from litert_lm_builder import litertlm_builder as lb

    original = lb.populate_system_metadata

    def fixed(system_metadata):
        kept = [m for m in system_metadata if m.key not in ("uuid", "creation_timestamp")]
        return kept + [lb.Metadata(key="uuid", value=uuid, dtype=lb.DType.STRING),
                       lb.Metadata(key="creation_timestamp", value=FIXED_TIMESTAMP, dtype=lb.DType.STRING)]

    lb.populate_system_metadata = fixed
    try:
        yield
    finally:
        lb.populate_system_metadata = original


def write_bundle(out: Path, models: dict[str, Path], tokenizer_json: Path | None, llm_metadata: bytes,
                 manifest_json: Path, workdir: Path) -> None:
    """Pack the sections into `out` atomically; the bytes depend only on the inputs."""
    from litert_lm_builder import litertlm_builder as lb

    # The manifest records every section's sha256, so hashing it (not gigabytes of sections) names the content.
    digest = hashlib.sha256()
    for p in (p for p in (tokenizer_json, manifest_json) if p):
        digest.update(Path(p).read_bytes())
    metadata_path = workdir / "llm_metadata.pb"
    metadata_path.write_bytes(llm_metadata)
    digest.update(llm_metadata)
    h = digest.hexdigest()
    uuid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    builder = lb.LitertLmFileBuilder()
    builder.add_system_metadata(lb.Metadata(key="Authors", value="edge-mtp", dtype=lb.DType.STRING))
    builder.add_llm_metadata(str(metadata_path))
    if tokenizer_json:
        builder.add_hf_tokenizer(str(tokenizer_json))
    for kind, path in models.items():
        builder.add_tflite_model(str(path), lb.TfLiteModelType(kind))
    builder.add_generic_binary_data(str(manifest_json), additional_metadata=[
        lb.Metadata(key=MANIFEST_TAG[0], value=MANIFEST_TAG[1], dtype=lb.DType.STRING)])
    with _deterministic_system_metadata(uuid), atomic_write(out, "wb") as f:
        builder.build(f)
