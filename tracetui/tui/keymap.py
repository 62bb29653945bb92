"""User key bindings: `~/.config/tracetui/keys.toml` maps binding ids to keys.

    [keys]
    pause = "p"                 # instead of space
    snapshot = "ctrl+s,s"       # several keys: comma-separated
    "tree.down" = "j,down"

Binding ids are listed by the help screen (`?`). A file that cannot be used is reported and
ignored; the defaults stay.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from tracetui.tui.themes import user_dir


def keymap_path() -> Path:
    """Where the user's key file lives."""
    return user_dir().parent / "keys.toml"


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """The id → keys mapping from the user's file (empty when absent), and any problems."""
    path = path or keymap_path()
    if not path.exists():
        return {}, []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{path}: not a usable TOML file: {exc}"]
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        return {}, [f'{path}: [keys] must be a table of binding id = "key,key"']
    mapping: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, value in keys.items():
        if isinstance(value, str) and value.strip():
            mapping[str(binding_id)] = value.replace(" ", "")
        else:
            problems.append(f'{path}: keys.{binding_id}: expected a string such as "ctrl+s"')
    return mapping, problems
