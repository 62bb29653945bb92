"""`tracetui stats`: per-layer figures, slowest operations, counts per status and agent."""

from __future__ import annotations

from collections.abc import Iterator

import click
import msgspec

from tracetui.cli.common import (
    BadLineReport,
    common_load_options,
    load_or_fail,
    plural,
    write_out,
)
from tracetui.formatting import clip, format_duration
from tracetui.model import layer_short
from tracetui.stats import Stats, compute


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option(
    "--slowest",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    metavar="N",
    help="How many of the slowest spans to list.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@common_load_options
def stats(
    files: tuple[str, ...], slowest: int, fmt: str, strict: bool, max_events: int | None
) -> None:
    """Summarise FILES (`-` = stdin): durations and outcomes per layer, slowest spans, agents."""
    report = BadLineReport()
    store = load_or_fail(files, report, max_events)
    result = compute(store.events(), bad_lines=len(store.rejected), slowest=slowest)
    result.evicted = store.evicted
    if fmt == "json":
        write_out([msgspec.json.encode(result), b"\n"])
    else:
        write_out(line + "\n" for line in stats_text(result))
    report.summary()
    if strict and report.count:
        raise SystemExit(1)


def stats_text(result: Stats) -> Iterator[str]:
    """The stats as an aligned console table."""
    yield plural(result.events, "event")
    yield ""
    yield (
        f"{'layer':<12}{'ops':>9}{'avg':>10}{'p50':>10}{'p95':>10}{'max':>10}"
        f"{'errors':>8}{'blocked':>9}"
    )
    for row in result.layers:
        yield (
            f"{clip(row.layer, 12):<12}{row.ops:>9,}{format_duration(row.avg_ms):>10}"
            f"{format_duration(row.p50_ms):>10}{format_duration(row.p95_ms):>10}"
            f"{format_duration(row.max_ms):>10}{row.errors:>8,}{row.blocked:>9,}"
        )
    if result.slowest:
        yield ""
        yield "slowest:"
        for slow in result.slowest:
            yield (
                f"  {format_duration(slow.duration_ms):>9}  [{clip(layer_short(slow.layer), 12)}] "
                f"{clip(slow.operation, 60)}  {clip(slow.trace_id, 60)}"
            )
    yield ""
    statuses = ", ".join(f"{clip(k, 30)} {v:,}" for k, v in result.statuses.items())
    agents = ", ".join(f"{clip(k, 30)} {v:,}" for k, v in result.agents.items())
    yield f"status: {statuses or '(no events)'}"
    yield f"agents: {agents or '(no events)'}"
    yield f"bad lines: {result.bad_lines:,}"
    if result.evicted:
        yield f"evicted: {result.evicted:,}"
