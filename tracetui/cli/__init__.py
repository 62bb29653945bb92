"""The `tracetui` command line: a thin layer that builds core objects and prints what they say."""

from __future__ import annotations

import click

from tracetui import __version__
from tracetui.cli.monitor import MonitorGroup


@click.group(cls=MonitorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="tracetui")
def main() -> None:
    """tracetui: watch, check and summarise trace events (JSON lines) from your app.

    Apps write events when DOPEJAR_TRACE=1 is set; tracetui reads them from files, sockets or stdin.
    """


def _register() -> None:
    from tracetui.cli import monitor, snapshot, stats, tree

    main.add_command(tree.tree)
    main.add_command(stats.stats)
    main.add_command(monitor.monitor)
    main.add_command(snapshot.snapshot)
    main.add_command(__import__("tracetui.cli.tail", fromlist=["tail"]).tail)
    main.add_command(__import__("tracetui.cli.check", fromlist=["check"]).check)
    main.add_command(__import__("tracetui.cli.diff", fromlist=["diff"]).diff)
    main.add_command(__import__("tracetui.cli.run", fromlist=["run"]).run)
    main.add_command(__import__("tracetui.cli.run", fromlist=["demo"]).demo)


_register()
