"""The unit tier: building blocks against transformers' own modules or a float64 reference, with no
checkpoint, export or toolchain; it runs first (scripts/test.sh) and in well under a minute."""

from __future__ import annotations

from pathlib import Path

import pytest

HEAVY_FIXTURES = {"pairs", "bundles", "onnx_exports"}  # the session fixtures that build and export pairs
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in Path(item.path).parents:  # this hook sees every collected test, not only ours
            continue
        heavy = HEAVY_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if heavy:
            raise pytest.UsageError(f"{item.nodeid}: unit tests must not use checkpoint fixtures ({', '.join(heavy)})")
