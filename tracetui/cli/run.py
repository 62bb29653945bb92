"""`tracetui run -- CMD [ARGS...]` and `tracetui demo`: start an app and watch its events live.

`run` listens on a private Unix socket (a fresh 0700 temp directory; the socket itself is 0600),
starts CMD with `DOPEJAR_TRACE=1` and `DOPEJAR_TRACE_SOCKET=unix:<that socket>`, and shows the
events it emits: in the TUI when standard output is a terminal, else (or with `--no-tui`) as
console lines like `tracetui tail`. When CMD exits, or tracetui is stopped (Ctrl-C, SIGTERM,
quitting the TUI), CMD and its process group get SIGTERM, then SIGKILL after `--grace` seconds;
`run` reports CMD's exit status and exits with it. `demo` is `run` on the bundled demo app.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import click

import tracetui
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
from tracetui.store import Change, TraceStore

TICK = 0.1
"""Seconds between looks at CMD and at stop requests while no event arrives."""
SETTLE = 2.0
"""After CMD exits: longest wait for its connections to close, so its last events are shown."""
DRAIN_BATCH = 20_000


DEMO_CONTRACTS: tuple[str, ...] = ("dopejar", "baggage", "correlation", "context")
"""What `tracetui demo` checks by default: every preset whose rules the demo breaks on purpose."""


def demo_script() -> Path:
    """The demo app: `tracetui/demo/assistant.py` in a wheel, `demo/assistant.py` in a checkout."""
    package = Path(tracetui.__file__).resolve().parent
    for candidate in (package / "demo", package.parent / "demo"):
        script = candidate / "assistant.py"
        if script.is_file():
            return script
    raise click.ClickException("the demo app is not installed (no tracetui/demo/assistant.py)")


class Child:
    """CMD, started in its own session so that it can be stopped as a group."""

    def __init__(
        self, argv: list[str], socket_path: Path, stdin: Any, stdout: Any, stderr: Any
    ) -> None:
        env = dict(os.environ)
        env["DOPEJAR_TRACE"] = "1"
        env["DOPEJAR_TRACE_SOCKET"] = f"unix:{socket_path}"
        env.pop("DOPEJAR_TRACE_FILE", None)
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self, grace: float) -> int:
        """SIGTERM to CMD's process group, SIGKILL after `grace` seconds; returns its status."""
        code = self.proc.poll()
        if code is not None:
            return code
        self._signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            return self.proc.wait()

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)


def describe_status(argv: list[str], code: int) -> tuple[str, int]:
    """`CMD exited with status N` / `CMD was killed by SIGKILL`, and the exit status to return."""
    name = Path(argv[0]).name
    if code < 0:
        try:
            signame = signal.Signals(-code).name
        except ValueError:
            signame = f"signal {-code}"
        return f"{name} was killed by {signame}", 128 - code
    return f"{name} exited with status {code}", code


def _start(argv: list[str], socket_path: Path, stdin: Any, stdout: Any, stderr: Any) -> Child:
    try:
        return Child(argv, socket_path, stdin, stdout, stderr)
    except FileNotFoundError:
        click.echo(f"tracetui: {argv[0]}: command not found", err=True)
        raise SystemExit(127) from None
    except PermissionError:
        click.echo(f"tracetui: {argv[0]}: permission denied", err=True)
        raise SystemExit(126) from None
    except OSError as exc:
        click.echo(f"tracetui: {argv[0]}: cannot run: {exc.strerror or exc}", err=True)
        raise SystemExit(126) from None


def _check_runnable(program: str) -> None:
    """Exit 127/126 like a shell when CMD cannot be run, before anything is started."""
    if os.sep in program:
        if not os.path.exists(program):
            click.echo(f"tracetui: {program}: no such file", err=True)
            raise SystemExit(127)
        if os.path.isdir(program) or not os.access(program, os.X_OK):
            click.echo(f"tracetui: {program}: permission denied (not executable)", err=True)
            raise SystemExit(126)
    elif shutil.which(program) is None:
        click.echo(f"tracetui: {program}: command not found", err=True)
        raise SystemExit(127)


class _Printer:
    """Console lines (or the original JSON lines) of new spans, flushed once per batch."""

    def __init__(self, fmt: str, match: Callable[[Span], bool] | None) -> None:
        self.fmt = fmt
        self.match = match
        self.shown = 0

    def show(self, change: Change) -> None:
        spans = change.new if self.match is None else [s for s in change.new if self.match(s)]
        if spans:
            self.shown += len(spans)
            write_out(self._render(spans))

    def _render(self, spans: list[Span]) -> Iterator[str | bytes]:
        for span in spans:
            if self.fmt == "json":
                yield span.raw
                yield b"\n"
            else:
                yield console_line(span)
                yield "\n"


def stream(
    argv: list[str],
    socket_path: Path,
    *,
    grace: float,
    fmt: str,
    match: Callable[[Span], bool] | None,
) -> int:
    """Run CMD and print its events until it exits or we are stopped; returns CMD's status."""
    from tracetui.sources.live import LiveIngest, SourceError

    report = BadLineReport()
    store = TraceStore(max_events=100_000)
    try:
        ingest = LiveIngest([f"unix:{socket_path}"], store, on_reject=report)
        ingest.start()
    except SourceError as exc:
        raise click.ClickException(exc.message) from None
    printer = _Printer(fmt, match)
    child: Child | None = None
    code: int | None = None
    with stop_on_signals() as stop:
        try:
            child = _start(argv, socket_path, None, sys.stderr.fileno(), None)
            while not stop.requested:
                ingest.wait(TICK)
                printer.show(ingest.drain(DRAIN_BATCH))
                code = child.poll()
                if code is not None:
                    break
            if code is None:
                code = child.stop(grace)
            _settle(ingest, printer)
        finally:
            if child is not None and code is None:
                code = child.stop(grace)
            ingest.stop()
    while True:
        change = ingest.drain(DRAIN_BATCH)
        if not (change.new or change.rejected):
            break
        printer.show(change)
    states = ingest.states()
    events = sum(s.lines - s.rejected for s in states)
    dropped = sum(s.dropped for s in states)
    shown = f" ({printer.shown:,} shown)" if match is not None else ""
    click.echo(
        f"tracetui: {plural(events, 'event')}{shown}, {plural(report.count, 'bad line')}, "
        f"{dropped:,} dropped",
        err=True,
    )
    assert code is not None
    return code


def _settle(ingest: Any, printer: _Printer) -> None:
    """CMD has gone: show what it sent until its connections have closed (bounded wait)."""
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        printer.show(ingest.drain(DRAIN_BATCH))
        if all(s.producers == 0 for s in ingest.states()):
            break
        ingest.wait(TICK)
    printer.show(ingest.drain(DRAIN_BATCH))


def tui(
    argv: list[str],
    socket_path: Path,
    *,
    grace: float,
    log_path: Path,
    theme: str | None,
    contracts: list[str],
    no_contracts: bool,
) -> int:
    """Run the live monitor on the socket and CMD once it listens; CMD's output goes to a log."""
    from tracetui.cli.monitor import run_monitor

    with open(log_path, "wb") as log:
        starter = _Starter(argv, socket_path, log)
        starter.start()
        try:
            run_monitor(
                [f"unix:{socket_path}"],
                theme=theme,
                snapshot_dir=None,
                contracts=contracts,
                no_contracts=no_contracts,
                poll=False,
                max_events=None,
                waiting_hint=None,
            )
        finally:
            child = starter.finish()
            code = child.stop(grace) if child is not None else None
    if code is None:
        raise click.ClickException(starter.error or "the monitor stopped before CMD started")
    if code != 0:
        _show_log_tail(log_path)
    return code


class _Starter(threading.Thread):
    """Starts CMD as soon as the monitor's socket exists (so no early event is refused)."""

    def __init__(self, argv: list[str], socket_path: Path, log: IO[bytes]) -> None:
        super().__init__(name="tracetui-run-starter", daemon=True)
        self.argv = argv
        self.socket_path = socket_path
        self.log = log
        self.child: Child | None = None
        self.error: str | None = None
        self.cancelled = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 10
        while not self.socket_path.exists():
            if self.cancelled.wait(0.01) or time.monotonic() > deadline:
                self.error = "the monitor did not start listening"
                return
        try:
            self.child = Child(self.argv, self.socket_path, subprocess.DEVNULL, self.log, self.log)
        except OSError as exc:
            self.error = f"{self.argv[0]}: cannot run: {exc.strerror or exc}"

    def finish(self) -> Child | None:
        """Stop waiting (the monitor has ended) and return CMD if it was started."""
        self.cancelled.set()
        self.join()
        return self.child


def _show_log_tail(log_path: Path, lines: int = 20) -> None:
    try:
        tail = log_path.read_bytes().splitlines()[-lines:]
    except OSError:
        return
    if tail:
        click.echo("tracetui: the last lines CMD wrote:", err=True)
        for line in tail:
            click.echo("  " + line.decode("utf-8", "replace"), err=True)


def run_command(
    argv: list[str],
    *,
    no_tui: bool,
    grace: float,
    fmt: str,
    match: Callable[[Span], bool] | None,
    theme: str | None = None,
    contracts: tuple[str, ...] = (),
    no_contracts: bool = False,
    name: str | None = None,
) -> None:
    """Shared body of `run` and `demo`: private socket, CMD, view, status; exits with CMD's."""
    _check_runnable(argv[0])
    private = Path(tempfile.mkdtemp(prefix="tracetui-run-"))
    os.chmod(private, 0o700)
    socket_path = private / "trace.sock"
    use_tui = not no_tui and sys.stdout.isatty() and sys.stdin.isatty()
    try:
        if use_tui:
            code = tui(
                argv,
                socket_path,
                grace=grace,
                log_path=private / "output.log",
                theme=theme,
                contracts=list(contracts),
                no_contracts=no_contracts,
            )
        else:
            code = stream(argv, socket_path, grace=grace, fmt=fmt, match=match)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    message, status = describe_status([name or argv[0]], code)
    click.echo(f"tracetui: {message}", err=True)
    raise SystemExit(status)


def _view_options(func: Any) -> Any:
    options = [
        click.option(
            "--no-tui",
            is_flag=True,
            help="Print events as console lines instead of opening the monitor "
            "(automatic when output is not a terminal).",
        ),
        click.option(
            "--grace",
            type=click.FloatRange(min=0),
            default=3.0,
            show_default=True,
            metavar="SECONDS",
            help="How long CMD may take to exit after SIGTERM before it is killed.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="Without the monitor: console text, or each event's original JSON line.",
        ),
        click.option("--theme", default=None, metavar="NAME|PATH", help="Monitor theme."),
        click.option(
            "--contract",
            "contracts",
            multiple=True,
            metavar="PRESET|FILE",
            help="Contracts the monitor checks (repeatable; default: dopejar + ./.tracetui.yaml).",
        ),
        click.option("--no-contracts", is_flag=True, help="The monitor checks no contracts."),
    ]
    for option in reversed(options):
        func = option(func)
    return filter_options(func)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_view_options
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
def run(
    cmd: tuple[str, ...],
    no_tui: bool,
    grace: float,
    fmt: str,
    theme: str | None,
    contracts: tuple[str, ...],
    no_contracts: bool,
    layers: tuple[str, ...],
    statuses: tuple[str, ...],
    agents: tuple[str, ...],
    labels: tuple[str, ...],
    text: str,
    regex: bool,
) -> None:
    """Run CMD with tracing on and watch its events live.

    CMD gets DOPEJAR_TRACE=1 and DOPEJAR_TRACE_SOCKET pointing at a private socket tracetui
    listens on. The events show in the monitor, or as console lines with --no-tui or when output
    is not a terminal (the filter options apply to those lines). When CMD exits, or tracetui is
    stopped, CMD is stopped (SIGTERM, then SIGKILL after --grace) and tracetui exits with CMD's
    exit status.

    Example: tracetui run -- python myapp.py --port 8000
    """
    flt = make_filter(layers, statuses, agents, labels, text, regex)
    run_command(
        list(cmd),
        no_tui=no_tui,
        grace=grace,
        fmt=fmt,
        match=None if flt.empty else flt.predicate(),
        theme=theme,
        contracts=contracts,
        no_contracts=no_contracts,
    )


@click.command()
@_view_options
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    metavar="N",
    show_default=True,
    help="Requests per second the demo assistant handles.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="Stop the demo after this many seconds (default: run until stopped).",
)
@click.option(
    "--requests",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Stop the demo after N requests (default: run until stopped).",
)
@click.option("--seed", type=int, default=None, help="Random seed, for a repeatable demo.")
def demo(
    no_tui: bool,
    grace: float,
    fmt: str,
    theme: str | None,
    contracts: tuple[str, ...],
    no_contracts: bool,
    layers: tuple[str, ...],
    statuses: tuple[str, ...],
    agents: tuple[str, ...],
    labels: tuple[str, ...],
    text: str,
    regex: bool,
    rate: float,
    duration: float,
    requests: int,
    seed: int | None,
) -> None:
    """Watch the demo: a simulated assistant on the HRM layers, with agents, errors, blocked
    gates and one of each contract violation in every 50 requests.

    Same as `tracetui run -- python demo/assistant.py` with the contracts the demo breaks
    (dopejar, baggage, correlation, context) unless --contract says otherwise; stop it with q
    (monitor) or Ctrl-C.
    """
    argv = [sys.executable, str(demo_script()), "--rate", f"{rate:g}"]
    if duration:
        argv += ["--duration", f"{duration:g}"]
    if requests:
        argv += ["--requests", str(requests)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    flt = make_filter(layers, statuses, agents, labels, text, regex)
    run_command(
        argv,
        no_tui=no_tui,
        grace=grace,
        fmt=fmt,
        match=None if flt.empty else flt.predicate(),
        theme=theme,
        contracts=contracts or DEMO_CONTRACTS,
        no_contracts=no_contracts,
        name="the demo",
    )
