"""`tracetui snapshot SOURCE... -o PREFIX [filters]`: the monitor's snapshot files, headless."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tracetui.cli.common import (
    BadLineReport,
    common_load_options,
    filter_options,
    load_or_fail,
    make_filter,
)


def _size(value: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT", param_hint="--size") from None
    if width < 20 or height < 5:
        raise click.BadParameter("at least 20x5", param_hint="--size")
    return width, height


@click.command("snapshot")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option(
    "-o",
    "--output",
    "prefix",
    required=True,
    type=click.Path(path_type=Path),
    metavar="PREFIX",
    help="Write PREFIX.jsonl, PREFIX.txt and PREFIX.svg.",
)
@filter_options
@click.option("--violations", is_flag=True, help="Only spans with contract findings.")
@click.option(
    "--contract",
    "contracts",
    multiple=True,
    metavar="PRESET|FILE",
    help="Contracts for --violations (default: dopejar plus ./.tracetui.yaml).",
)
@click.option("--no-svg", is_flag=True, help="Skip the screenshot (faster; no Textual).")
@click.option("--theme", metavar="NAME|PATH", default=None, help="Theme of the screenshot.")
@click.option("--size", default="120x40", show_default=True, metavar="WxH", help="Screenshot size.")
@common_load_options
def snapshot(
    files: tuple[str, ...],
    prefix: Path,
    layers: tuple[str, ...],
    statuses: tuple[str, ...],
    agents: tuple[str, ...],
    labels: tuple[str, ...],
    text: str,
    regex: bool,
    violations: bool,
    contracts: tuple[str, ...],
    no_svg: bool,
    theme: str | None,
    size: str,
    strict: bool,
    max_events: int | None,
) -> None:
    """Write the view of FILES (`-` = stdin) as snapshot files, like `s` in the monitor.

    PREFIX.jsonl holds the exact lines of the events in the view (reopen it with tracetui),
    PREFIX.txt the tree in the console format of `tracetui tree`, PREFIX.svg a screenshot.
    """
    from tracetui.cli.monitor import resolve_theme
    from tracetui.tui.snapshot import write_snapshot
    from tracetui.tui.view import TreeView

    flt = make_filter(layers, statuses, agents, labels, text, regex)
    width_height = _size(size)
    theme_obj = resolve_theme(theme)
    if not prefix.parent.is_dir():
        raise click.BadParameter(f"{prefix.parent}: no such directory", param_hint="-o")
    report = BadLineReport()
    store = load_or_fail(files, report, max_events)
    checker = None
    if violations or contracts:
        from tracetui.contracts import ContractError, check_all, load_contracts

        try:
            contract_set = load_contracts(list(contracts))
        except ContractError as exc:
            raise click.UsageError(str(exc)) from None
        checker = check_all(store, contract_set)
    view = TreeView(store, checker)
    view.set_filter(flt, violations_only=violations)
    view.rebuild()
    svg = None if no_svg else _screenshot(store, checker, flt, violations, theme_obj, width_height)
    try:
        paths = write_snapshot(prefix, store, view.selection(), view.visible_spans(), svg)
    except OSError as exc:
        raise click.FileError(str(prefix), hint=exc.strerror or str(exc)) from None
    for path in paths:
        click.echo(str(path))
    report.summary()
    if strict and report.count:
        raise SystemExit(1)


def _screenshot(
    store: Any,
    checker: Any,
    flt: Any,
    violations: bool,
    theme: Any,
    size: tuple[int, int],
) -> str:
    """Render the monitor headless on the loaded store and return its SVG screenshot."""
    from textual.pilot import Pilot

    from tracetui.tui.app import TraceApp

    app = TraceApp(store, None, checker=checker, theme=theme)
    app.view.set_filter(flt, violations_only=violations)
    shots: list[str] = []

    async def shoot(pilot: Pilot[object]) -> None:
        await pilot.pause()
        app.span_tree.action_first()
        await pilot.pause()
        shots.append(app.export_screenshot(title="tracetui"))
        app.exit()

    app.run(headless=True, size=size, auto_pilot=shoot)
    return shots[0] if shots else ""
