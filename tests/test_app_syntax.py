"""Syntax check of the app layers that cannot be compiled here: every android_demo/**/*.kt and
*.gradle.kts (Kotlin grammar) and, when the iOS demo exists, ios_demo/**/*.swift (Swift grammar) parse
without ERROR or MISSING nodes under tree-sitter. A parse check only: no types, no imports. (The
pure-Kotlin core is also compiled by kotlinc in tests/test_android_jvm.py.) Plus well-formed XML for
the Android manifest and resources.

tree-sitter comes from scripts/install_tools.sh (pip --target .tools/python); skipped without it."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS_PY = ROOT / ".tools" / "python"
if TOOLS_PY.is_dir() and str(TOOLS_PY) not in sys.path:
    sys.path.append(str(TOOLS_PY))

try:
    import tree_sitter
    import tree_sitter_kotlin
    import tree_sitter_swift
except ImportError:  # pragma: no cover - depends on the tools
    tree_sitter = None

needs_tree_sitter = pytest.mark.skipif(tree_sitter is None,
                                       reason="tree-sitter not installed (bash scripts/install_tools.sh)")
SKIP_DIRS = {"build", ".gradle", ".build", "DerivedData", "node_modules", ".swiftpm"}


def _files(folder: str, *patterns: str) -> list[Path]:
    base = ROOT / folder
    if not base.is_dir():
        return []
    found = {p for pattern in patterns for p in base.rglob(pattern)}
    return sorted(p for p in found if not SKIP_DIRS & set(p.relative_to(base).parts))


def _parser(language) -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(language.language()))


def problems(parser, source: bytes) -> list[str]:
    """ERROR/MISSING nodes as 'line:col kind' (1-based), empty when the file parses cleanly."""
    tree = parser.parse(source)
    out, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            row, col = node.start_point
            out.append(f"{row + 1}:{col + 1} {'missing ' + node.type if node.is_missing else 'syntax error'}")
            continue
        if node.has_error:
            stack.extend(node.children)
    return sorted(out)


KOTLIN = _files("android_demo", "*.kt", "*.kts")
SWIFT = _files("ios_demo", "*.swift")


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_android_demo_has_sources():
    names = {p.name for p in KOTLIN}
    assert {"MainActivity.kt", "NativeCore.kt", "LoopDriver.kt", "Trace.kt", "Bench.kt", "build.gradle.kts",
            "settings.gradle.kts"} <= names
    # the core module must stay pure Kotlin: it is compiled and tested on a desktop JVM
    core = [p for p in KOTLIN if "core/src" in _rel(p)]
    assert core and not [p for p in core if "import android." in p.read_text()]


@needs_tree_sitter
@pytest.mark.parametrize("path", KOTLIN, ids=_rel)
def test_kotlin_parses(path):
    assert problems(_parser(tree_sitter_kotlin), path.read_bytes()) == []


@needs_tree_sitter
@pytest.mark.skipif(not SWIFT, reason="no ios_demo/**/*.swift in this checkout")
@pytest.mark.parametrize("path", SWIFT, ids=_rel)
def test_swift_parses(path):
    assert problems(_parser(tree_sitter_swift), path.read_bytes()) == []


@needs_tree_sitter
def test_checker_catches_broken_sources():
    kotlin, swift = _parser(tree_sitter_kotlin), _parser(tree_sitter_swift)
    assert problems(kotlin, b"fun f(x: Int): Int { return x + 1 }\n") == []
    assert problems(kotlin, b"fun f(x: Int): Int { return x + }\nclass {\n")
    assert problems(swift, b"func f(_ x: Int) -> Int { return x + 1 }\n") == []
    assert problems(swift, b"func f(_ x: Int) -> Int { return x + }\nstruct {\n")


@pytest.mark.parametrize("path", _files("android_demo", "*.xml"), ids=_rel)
def test_android_xml_is_well_formed(path):
    ET.parse(path)
