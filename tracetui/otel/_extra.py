"""The check that the `otel` extra is installed, with the message that says how to get it."""

from __future__ import annotations

import importlib.util
from typing import Final

EXTRA_HINT: Final = (
    'OpenTelemetry support needs the otel extra: pip install "tracetui[otel]" '
    "(opentelemetry-proto and aiohttp; the exporter also needs opentelemetry-sdk)"
)


def require(*modules: str) -> None:
    """Raise ImportError with `EXTRA_HINT` when a module of the extra is missing.

    Args:
        modules: extra modules to check besides the protobuf classes (e.g. `aiohttp`).
    """
    for name in ("google.protobuf", "opentelemetry.proto", *modules):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ModuleNotFoundError, ValueError):
            found = False
        if not found:
            raise ImportError(f"{EXTRA_HINT}; missing: {name}", name=name)
