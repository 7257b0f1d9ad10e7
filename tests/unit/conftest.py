"""The unit tier: building blocks against transformers' own modules or a float64 reference, with no
checkpoint, export or toolchain; it runs first (scripts/test.sh) and in well under a minute."""

from __future__ import annotations

import pytest

HEAVY_FIXTURES = {"pairs", "bundles", "onnx_exports", "preset"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        heavy = HEAVY_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if heavy:
            raise pytest.UsageError(f"{item.nodeid}: unit tests must not use checkpoint fixtures ({', '.join(heavy)})")
