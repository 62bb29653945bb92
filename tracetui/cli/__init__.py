"""The `tracetui` command line: a thin layer that builds core objects and prints what they say."""

from __future__ import annotations

import os
import sys

import click

from tracetui import __version__
from tracetui.cli.monitor import MonitorGroup


@click.group(cls=MonitorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="tracetui")
def main() -> None:
    """tracetui: watch, check and summarise trace events (JSON lines) from your app.

    Apps write events when DOPEJAR_TRACE=1 is set; tracetui reads them from files, sockets or stdin.
    """


def entry() -> None:
    """The console script and `python -m tracetui`: `main`, then a quick exit after one-shot
    commands (see `common.kept_stores`)."""
    from tracetui.cli import common

    common.kept_stores = []
    try:
        main()
    except SystemExit as exc:
        if not common.kept_stores:  # no store was loaded: a normal exit
            raise
        code = exc.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            pass
        os._exit(code or 0)


def _register() -> None:
    from tracetui.cli.monitor import monitor

    main.add_command(monitor)
    for name, target in {
        "tree": "tracetui.cli.tree:tree",
        "stats": "tracetui.cli.stats:stats",
        "tail": "tracetui.cli.tail:tail",
        "check": "tracetui.cli.check:check",
        "diff": "tracetui.cli.diff:diff",
        "run": "tracetui.cli.run:run",
        "demo": "tracetui.cli.run:demo",
        "snapshot": "tracetui.cli.snapshot:snapshot",
    }.items():
        main.add_lazy(name, target)


_register()
