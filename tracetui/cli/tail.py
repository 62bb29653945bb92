"""`tracetui tail`: print events as they arrive from files, stdin and sockets."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import click

from tracetui.cli.common import (
    BadLineReport,
    filter_options,
    make_filter,
    plural,
    stop_on_signals,
    write_out,
)
from tracetui.formatting import console_line
from tracetui.model import Span
from tracetui.sources.live import LiveIngest, SourceError, SourceState
from tracetui.store import Change, TraceStore

TICK = 0.2
"""Seconds between checks for a stop request while nothing arrives."""
DRAIN_BATCH = 20_000
"""Spans ingested and printed per output flush."""


@click.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@filter_options
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep following files after their end, through rotation and truncation (like tail -F).",
)
@click.option("--from-end", is_flag=True, help="Start files at their end: only new events.")
@click.option(
    "--last",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Start files N lines before their end.",
)
@click.option("--poll", is_flag=True, help="Poll files instead of using inotify.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Console text, or each event's original JSON line.",
)
@click.option(
    "--max-events",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    metavar="N",
    help="Events remembered for duplicate and cycle marks (oldest trees forgotten first).",
)
def tail(
    sources: tuple[str, ...],
    layers: tuple[str, ...],
    statuses: tuple[str, ...],
    agents: tuple[str, ...],
    labels: tuple[str, ...],
    text: str,
    regex: bool,
    follow: bool,
    from_end: bool,
    last: int | None,
    poll: bool,
    fmt: str,
    max_events: int,
) -> None:
    """Print events from SOURCE... as they arrive.

    A SOURCE is a file PATH, `-` for stdin, `unix:PATH` to listen on a Unix socket, or
    `tcp:PORT` / `tcp:127.0.0.1:PORT` / `tcp:[::1]:PORT` to listen on TCP loopback. Files are
    read to their end and the command exits, unless --follow; sockets are always followed.
    Ctrl-C (or SIGTERM) stops after printing what has arrived; a summary goes to stderr.
    """
    flt = make_filter(layers, statuses, agents, labels, text, regex)
    match = None if flt.empty else flt.predicate()
    report = BadLineReport()
    store = TraceStore(max_events=max_events)
    try:
        ingest = LiveIngest(
            list(sources),
            store,
            follow=follow,
            from_end=from_end,
            last=last,
            poll=poll,
            on_reject=report,
        )
    except SourceError as exc:
        raise click.UsageError(exc.message) from None
    printer = _Printer(store, fmt, match)
    with stop_on_signals() as stop:
        try:
            try:
                ingest.start()
            except SourceError as exc:
                raise click.UsageError(exc.message) from None
            for state in ingest.states():
                if state.address:
                    click.echo(f"tracetui: {state.origin}: listening on {state.address}", err=True)
            while not stop.requested and not ingest.done:
                ingest.wait(TICK)
                printer.show(ingest.drain(DRAIN_BATCH))
                printer.waiting(ingest.states())
        finally:
            ingest.stop()
    while True:
        change = ingest.drain(DRAIN_BATCH)
        if not (change.new or change.rejected):
            break
        printer.show(change)
    printer.notices()
    failed = _summary(ingest, printer, report)
    if failed:
        raise SystemExit(1)


class _Printer:
    """Prints new spans (filtered) and the store's new notices, flushing once per batch."""

    def __init__(self, store: TraceStore, fmt: str, match: Callable[[Span], bool] | None) -> None:
        self.store = store
        self.fmt = fmt
        self.match = match
        self.shown = 0
        self._notices = 0
        self._said: dict[str, str] = {}  # per origin, the last thing said about it

    def show(self, change: Change) -> None:
        spans = change.new if self.match is None else [s for s in change.new if self.match(s)]
        if spans:
            self.shown += len(spans)
            write_out(self._render(spans))
        self.notices()

    def _render(self, spans: list[Span]) -> Iterator[str | bytes]:
        if self.fmt == "json":
            for span in spans:
                yield span.raw
                yield b"\n"
        else:
            for span in spans:
                # No store: a parent that has not arrived *yet* is the rule in a live stream.
                yield console_line(span)
                yield "\n"

    def notices(self) -> None:
        notices = self.store.notices
        origins = self.store.origins
        for notice in notices[self._notices :]:
            origin = origins[notice.origin]
            click.echo(f"tracetui: {origin}: {notice.text}", err=True)
            self._said[origin] = notice.text
        self._notices = len(notices)

    def waiting(self, states: list[SourceState]) -> None:
        """Say once why a source is waiting (file or directory missing, unreadable …)."""
        for state in states:
            if state.state == "waiting" and self._said.get(state.origin) != state.message:
                click.echo(f"tracetui: {state.origin}: {state.message}", err=True)
                self._said[state.origin] = state.message


def _summary(ingest: LiveIngest, printer: _Printer, report: BadLineReport) -> bool:
    """The closing summary on stderr; True when a file could not be read at all."""
    states = ingest.states()
    failed = False
    for state in states:
        if state.kind == "file" and state.state == "closed" and state.lines == 0:
            click.echo(f"tracetui: {state.message}", err=True)
            failed = True
    events = sum(s.lines - s.rejected for s in states)
    dropped = sum(s.dropped for s in states)
    rotations = sum(s.rotations for s in states)
    parts = [plural(events, "event")]
    if printer.match is not None:
        parts[0] += f" ({printer.shown:,} shown)"
    parts.append(plural(report.count, "bad line"))
    parts.append(f"{dropped:,} dropped")
    parts.append(plural(rotations, "rotation"))
    refused = sum(s.refused for s in states)
    if refused:
        parts.append(plural(refused, "connection") + " refused")
    click.echo("tracetui: " + ", ".join(parts), err=True)
    sys.stderr.flush()
    return failed
