"""Fixtures shared across the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the checkout; tests that need it skip (or fail in CI) without it."""
    if not (SHARED_DATA / "default_credit_hetero_guest.csv").exists():
        if os.environ.get("CI"):
            pytest.fail(f"shared data missing at {SHARED_DATA} (CI must have shared/ beside the clone)")
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
