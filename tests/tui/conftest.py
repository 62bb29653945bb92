"""Fixtures for the TUI tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_helpers import BatchFeed

from tracetui.store import TraceStore


@pytest.fixture
def store() -> TraceStore:
    return TraceStore()


@pytest.fixture
def feed(store: TraceStore) -> BatchFeed:
    return BatchFeed(store)


@pytest.fixture
def no_user_themes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolate from the developer's ~/.config themes."""
    cfg = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg))
    return cfg
