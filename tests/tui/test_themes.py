"""Theme files: every shipped theme loads and defines the semantic colours; lookup rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_helpers import BatchFeed, trace_tree, tree_screen

from tracetui.store import TraceStore
from tracetui.tui.app import TraceApp
from tracetui.tui.themes import (
    SEMANTIC_DEFAULTS,
    ThemeError,
    builtin_dirs,
    discover,
    load_theme_file,
    resolve,
)

REPO_THEMES = Path(__file__).resolve().parents[2] / "themes"


@pytest.mark.parametrize("name", ["dark", "light", "high-contrast"])
def test_shipped_themes_define_every_semantic_colour_themselves(name: str) -> None:
    path = REPO_THEMES / f"{name}.toml"
    text = path.read_text()
    for variable in SEMANTIC_DEFAULTS:
        if variable != "layer-unknown":
            assert f"\n{variable} = " in text, f"{path.name} lacks {variable}"
    theme = load_theme_file(path)
    assert theme.name == f"tracetui-{name}"
    assert theme.dark == (name != "light")


def test_themes_are_looked_up_in_the_package_and_the_checkout(no_user_themes: Path) -> None:
    package = Path(__file__).resolve().parents[2] / "tracetui"
    assert package / "themes" in builtin_dirs()  # an installed wheel (force-include)
    assert REPO_THEMES in builtin_dirs()  # a checkout
    found, problems = discover()
    assert [tf.theme.name for tf in found][:1] == ["tracetui-dark"]
    assert {"tracetui-light", "tracetui-high-contrast"} <= {tf.theme.name for tf in found}
    assert problems == []


def test_resolve_by_name_stem_or_path_and_unknown_names(tmp_path: Path) -> None:
    available, _ = discover()
    assert resolve("light", available).name == "tracetui-light"
    assert resolve("tracetui-high-contrast", available).name == "tracetui-high-contrast"
    mine = tmp_path / "mine.toml"
    mine.write_text('name = "mine"\nprimary = "#123456"\n')
    assert resolve(str(mine), available).name == "mine"
    with pytest.raises(ThemeError, match=r"unknown theme 'nope'.*light"):
        resolve("nope", available)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n')
    with pytest.raises(ThemeError, match=r"bad\.toml: `primary` colour is required"):
        load_theme_file(bad)


async def test_no_color_keeps_status_glyphs(
    monkeypatch: pytest.MonkeyPatch, no_user_themes: Path
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    store = TraceStore()
    feed = BatchFeed(store)
    feed.push(trace_tree(2) + trace_tree(3, start=2000.0))
    app = TraceApp(store, feed)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert app.no_color
        shown = "\n".join(tree_screen(app))
        assert "⊘ [foc] gate_check" in shown and "blocked" in shown
        assert "✗ [alt] transition" in shown and "error" in shown
