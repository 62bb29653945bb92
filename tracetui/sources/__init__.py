"""Live sources: files followed like `tail -F`, stdin, Unix sockets and TCP loopback.

See `tracetui.sources.live.LiveIngest` for the one entry point the CLI and the TUI use.
"""

from tracetui.sources.live import LiveIngest, SourceError, SourceSpec, SourceState, parse_source

__all__ = ["LiveIngest", "SourceError", "SourceSpec", "SourceState", "parse_source"]
