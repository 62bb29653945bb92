"""`tracetui diff`: compare a trace with a golden trace, as structure."""

from __future__ import annotations

from collections.abc import Iterator

import click

from tracetui.cli.check import contract_option, contracts_or_exit
from tracetui.cli.common import BadLineReport, load_and_check, write_out
from tracetui.contracts.diff import DEFAULT_IGNORES, TraceDiff, compare
from tracetui.contracts.findings import Finding
from tracetui.formatting import console_line
from tracetui.model import Span, layer_short
from tracetui.sanitize import sanitize
from tracetui.store import TraceStore


@click.command()
@click.argument("golden", type=click.Path(allow_dash=True))
@click.argument("new", type=click.Path(allow_dash=True))
@click.option(
    "--ignore",
    "ignores",
    multiple=True,
    metavar="FIELD",
    help="Also ignore this field (dotted path such as metadata.tokens; globs allowed; "
    "repeatable). Always ignored: " + ", ".join(DEFAULT_IGNORES) + ".",
)
@contract_option
def diff(golden: str, new: str, ignores: tuple[str, ...], contracts: tuple[str, ...]) -> None:
    """Compare NEW with GOLDEN as structure: ids, timestamps and durations are ignored and sibling
    order does not matter. Prints added, removed and changed spans and attributes, and findings
    that appeared or disappeared.

    Exit status: 0 same, 1 any difference, 2 usage or contract errors.
    """
    if golden == "-" and new == "-":
        raise click.BadParameter("only one of GOLDEN and NEW can be stdin", param_hint="NEW")
    contract_set = contracts_or_exit(contracts, "diff")
    report = BadLineReport()
    g_store, g_check = load_and_check((golden,), report, contract_set)
    n_store, n_check = load_and_check((new,), report, contract_set)
    result = compare(g_store, n_store, ignores, g_check.all(), n_check.all())
    write_out(render(result, g_store, n_store))
    report.summary()
    if not result.equal:
        raise SystemExit(1)


def _path(store: TraceStore, span: Span) -> str:
    chain = [span, *store.ancestors(span)]
    parts = [f"[{layer_short(s.layer)}] {s.short_operation}" for s in reversed(chain)]
    return sanitize(" › ".join(parts))


def _where(store: TraceStore, span: Span) -> str:
    return store.where(span.origin, span.line_no)


def _finding_line(store: TraceStore, f: Finding) -> str:
    span = store.get(f.seq)
    at = f" at {_where(store, span)} {_path(store, span)}" if span is not None else ""
    field = f" {sanitize(f.field)}" if f.field else ""
    return f"{f.severity} {f.rule}{field}{at}: {sanitize(f.message)}"


def render(result: TraceDiff, golden: TraceStore, new: TraceStore) -> Iterator[str]:
    """The differences as text, golden order first."""
    for span in result.removed:
        size = sum(1 for _ in golden.subtree(span))
        extra = f" (and {size - 1} spans below)" if size > 1 else ""
        yield f"- removed  {_where(golden, span)}  {_path(golden, span)}{extra}\n"
        yield f"           {console_line(span, golden)}\n"
    for span in result.added:
        size = sum(1 for _ in new.subtree(span))
        extra = f" (and {size - 1} spans below)" if size > 1 else ""
        yield f"+ added    {_where(new, span)}  {_path(new, span)}{extra}\n"
        yield f"           {console_line(span, new)}\n"
    for change in result.changed:
        yield (
            f"~ changed  {_where(golden, change.golden)} → {_where(new, change.new)}  "
            f"{_path(golden, change.golden)}\n"
        )
        for attr in change.attrs:
            before = sanitize(attr.golden) if attr.golden is not None else "(absent)"
            after = sanitize(attr.new) if attr.new is not None else "(absent)"
            yield f"           {sanitize(attr.path)}: {before} → {after}\n"
    for f in result.findings_appeared:
        yield f"+ finding  {_finding_line(new, f)}\n"
    for f in result.findings_disappeared:
        yield f"- finding  {_finding_line(golden, f)}\n"
    if result.equal:
        yield f"no differences ({result.golden_spans:,} spans)\n"
    else:
        yield (
            f"{len(result.added)} added, {len(result.removed)} removed, "
            f"{len(result.changed)} changed; findings: {len(result.findings_appeared)} appeared, "
            f"{len(result.findings_disappeared)} disappeared "
            f"({result.golden_spans:,} golden spans, {result.new_spans:,} new)\n"
        )
