"""Options and helpers shared by the commands."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tracetui.load import input_bytes, load_paths
from tracetui.model import Rejected
from tracetui.query import Filter
from tracetui.store import TraceStore

if TYPE_CHECKING:
    from tracetui.contracts import Checker, ContractSet

F = TypeVar("F", bound=Callable[..., Any])


def filter_options(func: F) -> F:
    """The span filters every command that shows spans accepts."""
    options = [
        click.option(
            "--layer",
            "--hrm",
            "layers",
            multiple=True,
            metavar="LAYER",
            help="Only this HRM layer (repeatable; aliases such as alt, foc accepted).",
        ),
        click.option(
            "--status",
            "statuses",
            multiple=True,
            metavar="STATUS",
            help="Only this status: success, error, blocked (repeatable).",
        ),
        click.option(
            "--agent", "agents", multiple=True, metavar="NAME", help="Only this agent (repeatable)."
        ),
        click.option(
            "--label",
            "labels",
            multiple=True,
            metavar="KEY=VALUE",
            help="Only spans whose agent has this label (repeatable; same key = either value).",
        ),
        click.option(
            "--grep",
            "text",
            default="",
            metavar="TEXT",
            help="Only spans whose operation, component or summaries contain TEXT.",
        ),
        click.option("--regex", is_flag=True, help="Treat --grep TEXT as a regular expression."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_filter(
    layers: Iterable[str],
    statuses: Iterable[str],
    agents: Iterable[str],
    labels: Iterable[str],
    text: str,
    regex: bool,
) -> Filter:
    """Build a Filter from the options, with usage errors in the user's words."""
    for label in labels:
        if "=" not in label:
            raise click.BadParameter(f"{label!r} is not KEY=VALUE", param_hint="--label")
    if regex:
        import re

        try:
            re.compile(text)
        except re.error as exc:
            raise click.BadParameter(f"{text!r}: {exc}", param_hint="--grep") from None
    return Filter.make(layers, statuses, agents, labels, text, regex)


class StopRequest:
    """Set by SIGINT/SIGTERM, so a streaming loop can finish its batch, flush and exit.

    A second signal does not wait for the loop (which may be stuck writing to a paused pager):
    it raises KeyboardInterrupt at once.
    """

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Catch SIGINT and SIGTERM for the duration; the previous handlers come back after."""
    stop = StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def plural(n: int, noun: str) -> str:
    """`1 event`, `2 events`, `1,000 events`."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


class UnreadableFile(click.ClickException):
    """A file named on the command line cannot be read: a usage error, exit status 2."""

    exit_code = 2


class BadLineReport:
    """Prints each bad line once on stderr as `FILE:LINE: reason: preview`, and the total."""

    def __init__(self, quiet: bool = False) -> None:
        self.count = 0
        self.quiet = quiet

    def __call__(self, origin: str, rej: Rejected) -> None:
        self.count += 1
        if not self.quiet:
            preview = f": {rej.preview}" if rej.preview else ""
            click.echo(f"{origin}:{rej.line_no}: {rej.reason}{preview}", err=True)

    def summary(self) -> None:
        """The total, when there were any."""
        if self.count:
            noun = "line" if self.count == 1 else "lines"
            click.echo(f"tracetui: {self.count:,} bad {noun} skipped", err=True)


kept_stores: list[TraceStore] | None = None
"""Set to a list by `entry` (the console script): one-shot commands keep the stores they load
there, so that they outlive the command's function; `entry` then exits without freeing them
object by object (a third of a second for a million events), once all output is flushed."""

SPOOL_ABOVE = 1 << 30
"""Inputs larger than this (1 GiB in all), or stdin, have their lines spooled to a temp file."""


def _worth_spooling(paths: tuple[str, ...]) -> bool:
    return "-" in paths or input_bytes(list(paths)) > SPOOL_ABOVE


def _new_store(paths: tuple[str, ...], max_events: int | None) -> TraceStore:
    """A store for loading these files, kept alive until `entry` exits."""
    store = TraceStore(max_events=max_events, spool=_worth_spooling(paths))
    if kept_stores is not None:
        kept_stores.append(store)
    return store


@contextlib.contextmanager
def _readable() -> Iterator[None]:
    """An unreadable file is a clear usage error (exit 2)."""
    try:
        yield
    except OSError as exc:
        raise UnreadableFile(f"cannot read {exc.filename or '?'}: {exc.strerror or exc}") from None


def load_or_fail(
    paths: tuple[str, ...],
    report: BadLineReport,
    max_events: int | None,
    identity: bool = True,
) -> TraceStore:
    """Load files into a new store; an unreadable file is a clear usage error (exit 2).

    `identity=False` skips agent identity (for output that neither filters nor shows it).
    """
    store = _new_store(paths, max_events)
    with _readable():
        load_paths(store, list(paths), report, identity)
    return store


def load_and_check(
    paths: tuple[str, ...],
    report: BadLineReport,
    contracts: ContractSet,
    max_events: int | None = None,
) -> tuple[TraceStore, Checker]:
    """`load_or_fail`, with the spans judged against the contracts (see `load_checked`)."""
    from tracetui.contracts.bulk import load_checked

    store = _new_store(paths, max_events)
    with _readable():
        checker = load_checked(store, list(paths), contracts, report)
    return store, checker


def common_load_options(func: F) -> F:
    """--strict, --quiet-bad-lines and --max-events."""
    func = click.option(
        "--max-events",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Keep at most N events, evicting the oldest whole trees.",
    )(func)
    func = click.option("--strict", is_flag=True, help="Exit with status 1 when any line was bad.")(
        func
    )
    return func


def write_out(chunks: Iterable[str | bytes]) -> None:
    """Write output, buffered; a closed pipe (`| head`) ends quietly."""
    out = sys.stdout.buffer
    try:
        buf: list[bytes] = []
        size = 0
        for piece in chunks:
            data = piece.encode("utf-8", "surrogateescape") if isinstance(piece, str) else piece
            buf.append(data)
            size += len(data)
            if size > 1 << 16:
                out.write(b"".join(buf))
                buf.clear()
                size = 0
        out.write(b"".join(buf))
        out.flush()
    except BrokenPipeError:
        _silence_broken_pipe()


def _silence_broken_pipe() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)
