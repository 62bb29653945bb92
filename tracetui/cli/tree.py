"""`tracetui tree`: print the span forest."""

from __future__ import annotations

from collections.abc import Iterator

import click

from tracetui.cli.common import (
    BadLineReport,
    common_load_options,
    filter_options,
    load_or_fail,
    make_filter,
    write_out,
)
from tracetui.formatting import json_forest, tree_lines
from tracetui.query import select
from tracetui.sanitize import sanitize


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@filter_options
@click.option("--trace-id", default=None, metavar="ID", help="Only the tree of this span.")
@click.option(
    "--last",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Only the last N root trees.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Console text, or nested JSON for scripts.",
)
@common_load_options
def tree(
    files: tuple[str, ...],
    layers: tuple[str, ...],
    statuses: tuple[str, ...],
    agents: tuple[str, ...],
    labels: tuple[str, ...],
    text: str,
    regex: bool,
    trace_id: str | None,
    last: int | None,
    fmt: str,
    strict: bool,
    max_events: int | None,
) -> None:
    """Print the spans of FILES (`-` = stdin) as a tree.

    A span is shown when it matches the filters or one of its descendants does; ancestors shown
    only for context are marked ⟨context⟩.
    """
    flt = make_filter(layers, statuses, agents, labels, text, regex)
    report = BadLineReport()
    store = load_or_fail(files, report, max_events, identity=bool(agents or labels))
    if trace_id is not None and trace_id not in store.by_id:
        report.summary()
        click.echo(f"tracetui: no span has trace_id '{sanitize(trace_id)}'", err=True)
        raise SystemExit(1)
    selection = select(store, flt, trace_id=trace_id, last=last)
    if fmt == "json":
        write_out(json_forest(store, selection))
        write_out([b"\n"])
    else:
        write_out(_with_newlines(tree_lines(store, selection)))
    report.summary()
    if strict and report.count:
        raise SystemExit(1)


def _with_newlines(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        yield line + "\n"
