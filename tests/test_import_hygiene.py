"""The headless core imports no Textual or Rich: checked in a fresh interpreter per module.

Apps import `tracetui.tracer`, and `tree`/`stats`/`check` run without a terminal UI, so pulling
Textual or Rich in through the core would slow every one of them and blur the layering.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tracetui"
CORE = ["model", "decode", "framing", "store", "query", "formatting", "stats", "load", "sanitize"]
OPTIONAL = ["sources", "contracts", "tracer"]
FORBIDDEN = ("textual", "rich")


def core_modules() -> list[str]:
    """Core module names, found on disk (so modules added later are checked too)."""
    names = ["tracetui"] + [f"tracetui.{name}" for name in CORE]
    for name in OPTIONAL:
        path = PACKAGE / name
        if path.with_suffix(".py").is_file():
            names.append(f"tracetui.{name}")
        elif (path / "__init__.py").is_file():
            for file in sorted(path.rglob("*.py")):
                parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                names.append(".".join(parts))
    return names


CHECK = f"""
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})
print(",".join(leaked))
"""


def leaked_by(*modules: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, *modules],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PACKAGE.parent,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    return out.split(",") if out else []


def test_the_check_itself_sees_a_leak() -> None:
    assert "textual" in leaked_by("textual")


@pytest.mark.parametrize("module", core_modules())
def test_core_module_imports_no_textual_or_rich(module: str) -> None:
    assert leaked_by(module) == []


def test_all_core_modules_together() -> None:
    modules = core_modules()
    assert {f"tracetui.{name}" for name in CORE} <= set(modules)
    assert leaked_by(*modules) == []
