"""`tracetui [SOURCE...]`, `tracetui -f FILE`, `tracetui monitor`: the live monitor.

`MonitorGroup` lets the top-level command take sources directly: a first argument that is not a
subcommand is a source for `monitor`, and `tracetui` alone follows the tracer's default file. The
group's own options (`--follow/-f`, `--theme`, `--snapshot-dir`, `--contract`, `--poll`) are handed
to `monitor`. Textual is only imported when the monitor actually starts.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

DEFAULT_FILE = "trace.jsonl"
_META = "tracetui.monitor"
WAITING_HINT = (
    "Apps write trace events only when run with DOPEJAR_TRACE=1 "
    "(to ./trace.jsonl, or to $DOPEJAR_TRACE_FILE)."
)


def _stash(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if param.name is not None:
        ctx.meta.setdefault(_META, {})[param.name] = value
    return value


def _options(stash: bool) -> list[click.Option]:
    extra: dict[str, Any] = {"expose_value": False, "callback": _stash} if stash else {}
    return [
        click.Option(
            ["--follow", "-f", "follow"],
            multiple=True,
            metavar="FILE",
            help="Follow FILE like tail -F (repeatable; same as naming it as a source).",
            **extra,
        ),
        click.Option(
            ["--theme"],
            metavar="NAME|PATH",
            default=None,
            help="Theme: dark (default), light, high-contrast, a user theme, or a .toml file.",
            **extra,
        ),
        click.Option(
            ["--snapshot-dir"],
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Where `s` writes snapshot files (default: the current directory).",
            **extra,
        ),
        click.Option(
            ["--contract", "contracts"],
            multiple=True,
            metavar="PRESET|FILE",
            help="Contracts to check (repeatable; default: dopejar plus ./.tracetui.yaml).",
            **extra,
        ),
        click.Option(
            ["--no-contracts"],
            is_flag=True,
            default=False,
            help="Do not check contracts.",
            **extra,
        ),
        click.Option(
            ["--poll"],
            is_flag=True,
            default=False,
            help="Watch files by polling (network filesystems, containers).",
            **extra,
        ),
        click.Option(
            ["--max-events"],
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help="Keep at most N events, evicting the oldest whole trees.",
            **extra,
        ),
    ]


class MonitorGroup(click.Group):
    """A group that runs `monitor` when given sources (or nothing) instead of a subcommand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("invoke_without_command", True)
        super().__init__(*args, **kwargs)
        self.params.extend(_options(stash=True))
        self.lazy: dict[str, str] = {}
        """Subcommands imported only when used (`name` → `module:attribute`), so that a
        command starts without importing every other one."""

    def add_lazy(self, name: str, target: str) -> None:
        """Register a subcommand by where it lives, to be imported when first needed."""
        self.lazy[name] = target

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.pop(cmd_name, None)
        if target is not None:
            module, _, attr = target.partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        known = name in self.commands or name in self.lazy
        if name is not None and not known and "monitor" in self.commands:
            return "monitor", self.commands["monitor"], args
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest and "monitor" in self.commands:
            click.Command.invoke(self, ctx)
            return ctx.invoke(self.commands["monitor"])
        return super().invoke(ctx)


@click.command("monitor")
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@click.pass_context
def monitor(ctx: click.Context, /, sources: tuple[str, ...] = (), **opts: Any) -> None:
    """Watch SOURCEs live: files (followed like tail -F), `-`, unix:PATH, tcp:PORT.

    With no source, follows ./trace.jsonl (or $DOPEJAR_TRACE_FILE), waiting for it to appear.
    """
    group = ctx.meta.get(_META, {})
    merged = {**{k: v for k, v in group.items()}, **{k: v for k, v in opts.items() if v}}
    follow = tuple(group.get("follow", ())) + tuple(opts.get("follow") or ())
    specs = [*follow, *sources]
    hint = None
    if not specs:
        specs = [os.environ.get("DOPEJAR_TRACE_FILE") or DEFAULT_FILE]
        if not Path(specs[0]).exists():
            hint = WAITING_HINT
    run_monitor(
        specs,
        theme=merged.get("theme"),
        snapshot_dir=merged.get("snapshot_dir"),
        contracts=list(merged.get("contracts") or ()),
        no_contracts=bool(merged.get("no_contracts")),
        poll=bool(merged.get("poll")),
        max_events=merged.get("max_events"),
        waiting_hint=hint,
    )


for _option in _options(stash=False):
    monitor.params.append(_option)


def _big_file(specs: list[str]) -> bool:
    """Whether a file among the sources is big enough that its first read is worth a screen
    process beside the checker (see `tracetui.contracts.remote`)."""
    from tracetui.contracts.remote import screen_wanted
    from tracetui.load import input_bytes
    from tracetui.sources.spec import SourceError, parse_source

    for text in specs:
        try:
            spec = parse_source(text)
        except SourceError:
            continue
        if spec.kind == "file" and spec.path and screen_wanted(input_bytes([spec.path])):
            return True
    return False


def load_checker(contracts: list[str], no_contracts: bool) -> Any:
    """The contract checker for the options, or None; bad contract files are usage errors."""
    if no_contracts:
        return None
    from tracetui.contracts import Checker, ContractError, load_contracts

    try:
        return Checker(load_contracts(contracts))
    except ContractError as exc:
        raise click.UsageError(str(exc)) from None


def resolve_theme(spec: str | None) -> Any:
    """The Textual theme for `--theme`, or None for the default."""
    if spec is None:
        return None
    from tracetui.tui.themes import ThemeError, discover, resolve

    try:
        return resolve(spec, discover()[0])
    except ThemeError as exc:
        raise click.BadParameter(str(exc), param_hint="--theme") from None


def _free_stdin_for_keys() -> int | None:
    """When events come on a piped stdin (`app | tracetui -`), read them from a duplicate of it
    and give the app the terminal as its stdin, so keys still work."""
    if sys.stdin is None or sys.stdin.isatty():
        return None
    try:
        tty = os.open("/dev/tty", os.O_RDONLY)
    except OSError:
        return None
    data_fd = os.dup(0)
    os.dup2(tty, 0)
    os.close(tty)
    return data_fd


def run_monitor(
    specs: list[str],
    *,
    theme: str | None,
    snapshot_dir: Path | None,
    contracts: list[str],
    no_contracts: bool,
    poll: bool,
    max_events: int | None,
    waiting_hint: str | None,
) -> None:
    """Build the store, the live ingest and the checker, and run the app until it quits."""
    from tracetui.sources.live import LiveIngest, SourceError
    from tracetui.store import TraceStore

    theme_obj = resolve_theme(theme)
    checker = load_checker(contracts, no_contracts)
    if snapshot_dir is not None and not snapshot_dir.is_dir():
        raise click.BadParameter(f"{snapshot_dir}: no such directory", param_hint="--snapshot-dir")
    store = TraceStore(max_events=max_events)
    stdin_fd = _free_stdin_for_keys() if "-" in specs else None
    screen = checker.start_screen() if checker is not None and _big_file(specs) else None
    try:
        feed = LiveIngest(specs, store, follow=True, poll=poll, stdin=stdin_fd, screen=screen)
        feed.start()
    except SourceError as exc:
        if screen is not None:
            checker.stop_screen()
        raise click.UsageError(exc.message) from None
    from tracetui.tui.app import TraceApp

    app = TraceApp(
        store,
        feed,
        checker=checker,
        theme=theme_obj,
        snapshot_dir=snapshot_dir,
        sources=specs,
        waiting_hint=waiting_hint,
    )
    try:
        app.run()
    finally:
        feed.stop()
        if checker is not None:
            checker.stop_screen()
