"""`xcrun xctrace export --input X.trace --xpath '...table[@schema="os-signpost-interval"]'` XML.

The export is `<trace-query-result><node xpath=...><schema name=...><col><mnemonic>..</mnemonic>...`
then `<row>`s whose children are the cells, in schema column order. xctrace interns values: the
first occurrence carries `id="N"` (text = raw value, `fmt` = display string), later ones are just
`<tag ref="N"/>`; `<sentinel/>` is an empty cell. Times are nanoseconds since the trace started.

The iOS demo app's contract: OSSignposter(subsystem: "dev.edgemtp.demo", category: "mtp_on" |
"mtp_off") intervals named "generate" (one per measured repetition), "prefill", "draft", "verify".
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from edge_mtp.profiling._files import bad_file, number

EXPECTED = "an `xctrace export` XML table (<trace-query-result> with <schema> and <row>s)"
SUBSYSTEM = "dev.edgemtp.demo"


@dataclass
class Table:
    schema: str
    columns: list[str]  # column mnemonics
    rows: list[dict[str, str]]  # mnemonic -> raw value (the fmt string when a cell has no text)


@dataclass
class Interval:
    name: str
    category: str
    start_ns: int
    duration_ns: int


def _cell(el: ET.Element, interned: dict[str, ET.Element]) -> str:
    if "ref" in el.attrib:
        el = interned.get(el.attrib["ref"], el)
    elif "id" in el.attrib:
        interned[el.attrib["id"]] = el
    for child in el.iter():  # nested cells (thread -> tid, process -> pid) are interned too
        if child is not el and "id" in child.attrib:
            interned[child.attrib["id"]] = child
    text = (el.text or "").strip()
    return text if text else el.attrib.get("fmt", "")


def _table(node: ET.Element, interned: dict[str, ET.Element]) -> Table | None:
    schema = node.find("schema")
    if schema is None:
        return None
    cols = [c.findtext("mnemonic", "").strip() for c in schema.findall("col")]
    rows = [dict(zip(cols, (_cell(c, interned) for c in row), strict=False)) for row in node.findall("row")]
    return Table(schema.attrib.get("name", ""), cols, rows)


def parse_xctrace(path: Path | str) -> list[Table]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise bad_file(path, EXPECTED, e) from None
    if root.tag != "trace-query-result":
        raise bad_file(path, EXPECTED, f"root element is <{root.tag}>")
    interned: dict[str, ET.Element] = {}
    tables = [t for t in (_table(n, interned) for n in root.findall("node")) if t is not None]
    if not tables:
        raise bad_file(path, EXPECTED, "no <node> with a <schema>")
    return tables


def signpost_intervals(path: Path | str, subsystem: str = SUBSYSTEM) -> list[Interval]:
    """The app's os_signpost intervals (schema os-signpost-interval) from an export."""
    tables = [t for t in parse_xctrace(path) if t.schema == "os-signpost-interval"]
    if not tables:
        raise bad_file(path, "an xctrace export of the os-signpost-interval table", "no such schema")
    out = []
    for t in tables:
        missing = {"start", "duration", "name"} - set(t.columns)
        if missing:
            raise bad_file(path, EXPECTED, f"os-signpost-interval lacks columns {sorted(missing)}")
        for n, r in enumerate(t.rows, 1):
            if len(r) < len(t.columns):
                raise bad_file(path, EXPECTED, f"row {n} has {len(r)} cells for {len(t.columns)} columns")
            if r.get("subsystem", subsystem) != subsystem:
                continue
            out.append(Interval(r["name"], r.get("category", ""),
                                int(number(r["start"], path, EXPECTED, "start")),
                                int(number(r["duration"], path, EXPECTED, "duration"))))
    return out


def interval_summary(intervals: list[Interval]) -> dict[str, dict[str, float]]:
    """(category/name) -> count, total and mean duration in ms."""
    out: dict[str, dict[str, float]] = {}
    for iv in intervals:
        s = out.setdefault(f"{iv.category}/{iv.name}", {"count": 0, "total_ms": 0.0})
        s["count"] += 1
        s["total_ms"] += iv.duration_ns / 1e6
    for s in out.values():
        s["mean_ms"] = s["total_ms"] / s["count"]
    return out
