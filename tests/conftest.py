"""Fixtures for the core tests; the helpers themselves live in `core_kit`."""

from __future__ import annotations

from pathlib import Path

import pytest
from core_kit import TraceKit


@pytest.fixture
def kit(tmp_path: Path) -> TraceKit:
    """Helpers bound to this test's tmp_path."""
    return TraceKit(tmp_path)
