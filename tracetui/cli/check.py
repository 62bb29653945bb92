"""`tracetui check`: judge trace files against contracts, as a CI gate."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import click
import msgspec

from tracetui.cli.common import BadLineReport, load_and_check, write_out
from tracetui.contracts import RANK, Checker, ContractError, ContractSet, Finding, load_contracts
from tracetui.formatting import console_line
from tracetui.model import Span
from tracetui.sanitize import sanitize
from tracetui.store import TraceStore

GLYPH = {"error": "✗", "warning": "!", "info": "i"}


def contracts_or_exit(specs: tuple[str, ...], command: str) -> ContractSet:
    """Load `--contract` specs; a bad contract is reported on stderr and exits 2."""
    try:
        contracts = load_contracts(list(specs))
    except ContractError as exc:
        click.echo(f"tracetui {command}: contract error: {sanitize(str(exc))}", err=True)
        raise SystemExit(2) from None
    if contracts.project_file is not None:
        click.echo(f"tracetui {command}: using project contract {contracts.project_file}", err=True)
    return contracts


def contract_option(func: click.decorators.FC) -> click.decorators.FC:
    """`--contract FILE|PRESET`, repeatable."""
    return click.option(
        "--contract",
        "contracts",
        multiple=True,
        metavar="FILE|PRESET",
        help="Contract file or preset (dopejar, baggage, correlation, context, flujo); "
        "repeatable. Default: dopejar plus ./.tracetui.yaml when present.",
    )(func)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@contract_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "junit"]),
    default="text",
    show_default=True,
    help="Text grouped by trace, one JSON object per finding per line, or JUnit XML.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning"]),
    default="error",
    show_default=True,
    help="Exit 1 when there is a finding of this severity or worse.",
)
def check(files: tuple[str, ...], contracts: tuple[str, ...], fmt: str, fail_on: str) -> None:
    """Check the spans of FILES (`-` = stdin) against contracts.

    Exit status: 0 clean, 1 findings at or above --fail-on (or lines that are not trace events),
    2 usage or contract errors.
    """
    contract_set = contracts_or_exit(contracts, "check")
    report = BadLineReport()
    store, checker = load_and_check(files, report, contract_set)
    if fmt == "json":
        write_out(json_lines(store, checker))
    elif fmt == "junit":
        write_out([junit_xml(store, checker, fail_on)])
    else:
        write_out(text_report(store, checker, contract_set))
    report.summary()
    threshold = RANK[fail_on]
    if any(RANK.get(f.severity, 0) >= threshold for f in checker.all()):
        raise SystemExit(1)
    if report.count:
        click.echo("tracetui check: failing because lines could not be read", err=True)
        raise SystemExit(1)


def _where(store: TraceStore, span: Span) -> str:
    return store.where(span.origin, span.line_no)


def by_trace(
    store: TraceStore, checker: Checker
) -> dict[int | str, list[tuple[Span, list[Finding]]]]:
    """Spans with findings grouped by their top-level tree, trees in first-seen order."""
    groups: dict[int | str, list[tuple[Span, list[Finding]]]] = {}
    for seq in sorted({f.seq for f in checker.all()}):
        span = store.get(seq)
        if span is None:
            continue
        top = store.top_of(span)
        key = top if isinstance(top, str) else top.seq
        groups.setdefault(key, []).append((span, checker.findings_for(seq)))
    order = {(t if isinstance(t, str) else t.seq): i for i, t in enumerate(store.top())}
    return dict(sorted(groups.items(), key=lambda kv: order.get(kv[0], len(order))))


def text_report(store: TraceStore, checker: Checker, contracts: ContractSet) -> Iterator[str]:
    """Findings grouped by trace: each offending span's line, its findings under it."""
    for top, spans in by_trace(store, checker).items():
        if isinstance(top, str):
            title = f"trace under missing parent {sanitize(top)}"
        else:
            root = store.get(top)
            title = f"trace {sanitize(root.trace_id) if root is not None else top}"
        n = sum(len(found) for _, found in spans)
        yield f"{title} — {n} finding{'s' if n != 1 else ''}\n"
        for span, found in spans:
            yield f"  {_where(store, span)}  {console_line(span, store)}\n"
            for f in sorted(found, key=lambda f: -RANK.get(f.severity, 0)):
                field = f" {sanitize(f.field)}:" if f.field else ""
                yield (
                    f"    {GLYPH.get(f.severity, '?')} {f.severity:<7} {f.rule}{field} "
                    f"{sanitize(f.message)}\n"
                )
                yield f"      hint: {sanitize(f.hint)}\n"
        yield "\n"
    counts = checker.counts
    total = sum(counts.values())
    used = ", ".join(contracts.sources)
    if total:
        yield (
            f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info "
            f"in {len(store):,} spans (contracts: {used})\n"
        )
    else:
        yield f"no findings in {len(store):,} spans (contracts: {used})\n"


class _JsonFinding(msgspec.Struct):
    rule: str
    severity: str
    trace_id: str
    field: str | None
    message: str
    hint: str
    file: str
    line: int


def json_lines(store: TraceStore, checker: Checker) -> Iterator[bytes]:
    """One JSON object per finding per line."""
    encode = msgspec.json.encode
    for f in checker.all():
        span = store.get(f.seq)
        file = store.origins[span.origin] if span is not None else ""
        line = span.line_no if span is not None else 0
        yield (
            encode(
                _JsonFinding(f.rule, f.severity, f.trace_id, f.field, f.message, f.hint, file, line)
            )
            + b"\n"
        )


def junit_xml(store: TraceStore, checker: Checker, fail_on: str) -> bytes:
    """JUnit XML: one test case per trace; findings at/above `fail_on` are failures."""
    threshold = RANK[fail_on]
    suites = ET.Element("testsuites", name="tracetui check")
    suite = ET.SubElement(suites, "testsuite", name="tracetui.contracts")
    groups = by_trace(store, checker)
    tops = list(store.top())
    failures = 0
    for top in tops:
        key = top if isinstance(top, str) else top.seq
        name = sanitize(top if isinstance(top, str) else top.trace_id)
        case = ET.SubElement(suite, "testcase", classname="trace", name=name)
        notes: list[str] = []
        failed = False
        for span, found in groups.get(key, []):
            for f in found:
                text = (
                    f"{_where(store, span)}: {sanitize(f.trace_id)}: {f.rule}: "
                    f"{sanitize(f.message)} (hint: {sanitize(f.hint)})"
                )
                if RANK.get(f.severity, 0) >= threshold:
                    failed = True
                    el = ET.SubElement(case, "failure", type=f.rule, message=sanitize(f.message))
                    el.text = text
                else:
                    notes.append(f"{f.severity}: {text}")
        if failed:
            failures += 1
        if notes:
            ET.SubElement(case, "system-out").text = "\n".join(notes)
    suite.set("tests", str(len(tops)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suites.set("tests", str(len(tops)))
    suites.set("failures", str(failures))
    ET.indent(suites)
    data: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
