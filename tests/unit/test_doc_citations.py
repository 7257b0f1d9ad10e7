"""Every `docs/<file>.md#<section>` that code, tests or the docs cite exists (GitHub's heading anchors),
and nothing cites notes outside the repository (the research notes the docs were written from)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CITATION = re.compile(r"(?:docs/)?\b([a-z_]+\.md)#([a-z0-9_\-]+)")
# spelled in pieces so that this file does not match itself
OUTSIDE = re.compile("|".join(["shared" + "/", "gemma4" + "_spec", "toolchain" + r"\.md §", "trace-v1" + r"\.md",
                               r"\bspec §"]))
OUTSIDE_DOC = re.compile("toolchain" + r"\.md")  # the research note; ours is docs/tooling.md


def anchor(heading: str) -> str:
    """GitHub's slug: lower case, punctuation other than - and _ dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.DOTALL)
    return {anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / p for p in out if p.endswith((".py", ".md", ".c", ".h", ".kt", ".swift", ".sh"))]


def test_anchor_rule():
    assert anchor("K/V writes: DYNAMIC_UPDATE_SLICE vs scatter") == "kv-writes-dynamic_update_slice-vs-scatter"
    assert anchor("The dynamo exporter's Transpose in front of the tied head") == \
        "the-dynamo-exporters-transpose-in-front-of-the-tied-head"


def test_cited_sections_exist():
    anchors = {doc.name: _anchors(doc) for doc in DOCS.glob("*.md")}
    missing = []
    for path in _tracked():
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for doc, section in CITATION.findall(line):
                if doc in anchors and section not in anchors[doc]:
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {doc}#{section}")
    assert not missing, "\n".join(missing)


def test_nothing_cites_notes_outside_the_repository():
    bad = []
    for path in _tracked():
        name = path.relative_to(ROOT).as_posix()
        if not path.is_file():
            continue
        bad += [f"{name}:{n}" for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
                if OUTSIDE.search(line) or OUTSIDE_DOC.search(line)]
    assert not bad, bad
