"""Themes as data: TOML files holding Textual colours plus tracetui's semantic variables.

Built-in themes live in the top-level `themes/` folder of a checkout and in `tracetui/themes/`
inside an installed wheel; user themes in `~/.config/tracetui/themes/` (or
`$XDG_CONFIG_HOME/tracetui/themes/`) are added to them, a user theme replacing a built-in one of the
same name.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from textual.theme import Theme

DEFAULT_THEME: Final = "tracetui-dark"

SEMANTIC_DEFAULTS: Final = {
    "layer-altitude": "#c792ea",
    "layer-focus": "#59c2ff",
    "layer-reasoning": "#ffb454",
    "layer-learning": "#95e6cb",
    "layer-memory": "#f07178",
    "layer-system": "#8a9199",
    "layer-unknown": "#8a9199",
    "status-success": "#7fd67f",
    "status-error": "#ff5f6b",
    "status-blocked": "#e5c07b",
    "severity-error": "#ff5f6b",
    "severity-warning": "#e5c07b",
    "severity-info": "#59c2ff",
    "duration-slow": "#ffb454",
}
"""Every semantic variable with a fallback, so a theme file may leave any of them out."""

_COLOUR_KEYS: Final = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)


class ThemeError(Exception):
    """A theme file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ThemeFile:
    """A loaded theme and where it came from."""

    theme: Theme
    path: Path


def builtin_dirs() -> list[Path]:
    """Where built-in themes may be: inside the package (wheel) and the checkout's `themes/`."""
    here = Path(__file__).resolve().parent
    return [here.parent / "themes", here.parent.parent / "themes"]


def user_dir() -> Path:
    """The user's theme folder."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tracetui" / "themes"


def load_theme_file(path: Path) -> Theme:
    """Read one theme file.

    Raises:
        ThemeError: when the file cannot be read or lacks what a theme needs.
    """
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ThemeError(f"{path}: cannot read theme: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ThemeError(f"{path}: not a valid TOML theme: {exc}") from None
    name = data.get("name") or path.stem
    if not isinstance(name, str):
        raise ThemeError(f"{path}: `name` must be a string")
    if "primary" not in data or not isinstance(data["primary"], str):
        raise ThemeError(f'{path}: `primary` colour is required (a string such as "#4ea1ff")')
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ThemeError(f"{path}: [variables] must map names to colour strings")
    kwargs: dict[str, Any] = {k: data[k] for k in _COLOUR_KEYS if isinstance(data.get(k), str)}
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeError(f"{path}: `dark` must be true or false")
    try:
        return Theme(name=name, dark=dark, variables={**SEMANTIC_DEFAULTS, **variables}, **kwargs)
    except Exception as exc:  # Theme validates colours lazily or eagerly by version
        raise ThemeError(f"{path}: {exc}") from None


def discover(extra_dirs: list[Path] | None = None) -> tuple[list[ThemeFile], list[str]]:
    """All themes found (built-in first, then user themes) and the problems met on the way."""
    found: dict[str, ThemeFile] = {}
    problems: list[str] = []
    dirs = [*builtin_dirs(), user_dir(), *(extra_dirs or [])]
    seen_dirs: set[Path] = set()
    for folder in dirs:
        if folder in seen_dirs or not folder.is_dir():
            continue
        seen_dirs.add(folder)
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ThemeError as exc:
                problems.append(str(exc))
                continue
            found[theme.name] = ThemeFile(theme, path)
    order = sorted(found.values(), key=lambda t: (t.theme.name != DEFAULT_THEME, str(t.path)))
    return order, problems


def resolve(spec: str, available: list[ThemeFile]) -> Theme:
    """A theme named by `--theme`: a theme name, a file stem (`light`), or a path to a file.

    Raises:
        ThemeError: when nothing matches; the message lists the available names.
    """
    for tf in available:
        if spec in (tf.theme.name, tf.path.stem, f"tracetui-{spec}"):
            return tf.theme
    path = Path(spec).expanduser()
    if path.suffix == ".toml" or path.exists():
        return load_theme_file(path)
    names = ", ".join(tf.path.stem for tf in available) or "(none found)"
    raise ThemeError(f"unknown theme {spec!r}; available: {names}, or a path to a .toml file")
