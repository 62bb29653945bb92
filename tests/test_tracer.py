"""tracetui.tracer: what the written events say (decoded with the project's own decoder)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from tracetui.decode import LineDecoder
from tracetui.model import SCHEMA, Span
from tracetui.tracer import (
    SAFE_BAGGAGE_KEYS,
    Tracer,
    enabled_in,
    generate_id,
    tracer,
)

ID_SHAPE = re.compile(r"^[a-z]+_\d{10}_[0-9a-f]{16}$")


def run_py(
    code: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a snippet in a fresh interpreter with exactly these tracer variables."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DOPEJAR_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def decode_file(path: Path) -> list[Span]:
    """Decode a trace file; fail on any rejected line or schema finding."""
    lines = path.read_bytes().splitlines()
    spans, rejected = LineDecoder().decode(lines, 1)
    assert not rejected, rejected[:3]
    for span in spans:
        assert not span.flags & SCHEMA, (span.issues, span.raw)
    return spans


@pytest.fixture
def tr(tmp_path: Path) -> Tracer:
    t = Tracer(environ={})
    t.configure(enabled=True, file=str(tmp_path / "trace.jsonl"))
    return t


def written(t: Tracer, tmp_path: Path) -> list[Span]:
    t.flush()
    return decode_file(tmp_path / "trace.jsonl")


def by_op(spans: list[Span]) -> dict[str, Span]:
    return {s.operation or "": s for s in spans}


def test_import_pulls_in_neither_textual_nor_rich() -> None:
    code = (
        "import sys, tracetui.tracer\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual','rich','msgspec'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " On "])
def test_truthy_values_switch_it_on(value: str) -> None:
    assert enabled_in({"DOPEJAR_TRACE": value})


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", "2", "enabled"])
def test_anything_else_leaves_it_off(value: str) -> None:
    assert not enabled_in({"DOPEJAR_TRACE": value})


def test_off_creates_no_file_no_socket_no_thread(tmp_path: Path) -> None:
    import socket

    sock_path = tmp_path / "listen.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen()
    server.settimeout(0.3)
    code = """
        import asyncio, threading
        from tracetui.tracer import tracer
        assert not tracer.enabled
        with tracer.agent("a", run_id="r"):
            with tracer.span("alt", "transition", "altitude.py", "L3→L2") as s:
                s.set_output("ok", reason="x")
                s.block("no")
                tracer.baggage(run_id="r")
                tracer.event("foc", "gate_check", "gates.py", "G", "allowed")
        @tracer.span("rsn", "classify", "r.py")
        def f(x): return x + 1
        assert f(1) == 2
        async def main():
            async with tracer.span("mem", "read", "m.py"):
                return 3
        assert asyncio.run(main()) == 3
        tracer.flush()
        print(threading.active_count(), tracer.stats())
    """
    for value in ("", "0", "off"):
        env = {"DOPEJAR_TRACE": value, "DOPEJAR_TRACE_FILE": str(tmp_path / "t.jsonl")}
        out = run_py(code, env, tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[0] == "1"
        env = {"DOPEJAR_TRACE": value, "DOPEJAR_TRACE_SOCKET": f"unix:{sock_path}"}
        out = run_py(code, env, tmp_path)
        assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["listen.sock"]
    with pytest.raises(TimeoutError):
        server.accept()
    server.close()


def test_env_switches_on_and_default_file_is_trace_jsonl(tmp_path: Path) -> None:
    code = """
        from tracetui.tracer import tracer
        with tracer.span("alt", "transition", "altitude.py", "L3→L2"):
            pass
    """
    out = run_py(code, {"DOPEJAR_TRACE": "yes"}, tmp_path)
    assert out.returncode == 0, out.stderr
    spans = decode_file(tmp_path / "trace.jsonl")
    assert [s.operation for s in spans] == ["altitude.transition"]


def test_file_variable_and_flush_at_exit(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "custom.jsonl"
    target.parent.mkdir()
    code = """
        from tracetui.tracer import tracer
        for i in range(5000):
            with tracer.span("mem", "write", "memory.py", f"key{i}"):
                pass
    """
    out = run_py(code, {"DOPEJAR_TRACE": "1", "DOPEJAR_TRACE_FILE": str(target)}, tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(decode_file(target)) == 5000
    assert not (tmp_path / "trace.jsonl").exists()


def test_span_fields_and_conventions_decode(tr: Tracer, tmp_path: Path) -> None:
    with (
        tr.agent("planner", run_id="r1", labels={"env": "dev", "tier": 2}),
        tr.span("alt", "transition", "altitude.py", "L3→L2", correlation_id="c-1") as span,
    ):
        span.set_output("success", from_level="L3", to_level="L2", reason="user asked")
        tr.event(
            "foc",
            "gate_check",
            "gates.py",
            input_data="WriteApprovalGate",
            output_data="allowed",
            metadata={"user_consent": True},
        )
    spans = written(tr, tmp_path)
    assert [s.operation for s in spans] == ["focus.gate_check", "altitude.transition"]
    gate, alt = spans
    assert ID_SHAPE.match(alt.trace_id) and alt.trace_id.startswith("alt_")
    assert gate.trace_id.startswith("foc_")
    assert gate.parent_id == alt.trace_id and alt.parent_id is None
    assert (alt.layer, alt.status, alt.component) == ("altitude", "success", "altitude.py")
    assert gate.layer == "focus"
    fields = alt.fields()
    assert fields["input_summary"] == "L3→L2" and fields["output_summary"] == "success"
    assert alt.metadata()["from_level"] == "L3" and alt.metadata()["reason"] == "user asked"
    assert gate.metadata()["user_consent"] is True
    assert gate.fields()["output_summary"] == "allowed"
    for s in spans:
        assert (s.agent, s.run_id, s.labels) == ("planner", "r1", ("env=dev", "tier=2"))
    assert alt.correlation_id == "c-1" and alt.parent_correlation_id is None
    assert alt.start is not None and alt.duration_ms is not None and alt.duration_ms >= 0
    assert alt.start <= gate.start  # type: ignore[operator]


def test_exception_marks_error_with_text_and_reraises(tr: Tracer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="boom"), tr.span("rsn", "classify", "r.py"):
        raise ValueError("boom")
    (span,) = written(tr, tmp_path)
    assert span.status == "error"
    assert span.fields()["output_summary"] == "ValueError: boom"
    assert span.metadata()["error"] == "ValueError: boom"
    assert span.metadata()["error_type"] == "ValueError"


def test_blocked_and_explicit_status(tr: Tracer, tmp_path: Path) -> None:
    with tr.span("foc", "gate_check", "gates.py", "WriteApprovalGate") as span:
        span.block("no user consent")
    with tr.span("foc", "consent_check", "gates.py") as span:
        span.set_status("blocked")
    gate, consent = written(tr, tmp_path)
    assert gate.status == consent.status == "blocked"
    assert gate.fields()["output_summary"] == "no user consent"
    assert gate.metadata()["blocked_reason"] == "no user consent"


def test_decorator_sync_and_async_each_call_is_a_span(tr: Tracer, tmp_path: Path) -> None:
    @tr.span("rsn", "classify", "reasoning.py", "query")
    def classify(x: int) -> int:
        return x * 2

    @tr.span("mem", "read", "memory.py")
    async def read(key: str) -> str:
        await asyncio.sleep(0)
        cur = tr.current()
        assert cur is not None
        cur.set_output(f"hit {key}", key=key)
        return key.upper()

    @tr.span("rsn", "escalate", "reasoning.py")
    async def fail() -> None:
        raise RuntimeError("nope")

    assert classify.__name__ == "classify"
    assert classify(2) == 4 and classify(3) == 6

    async def main() -> None:
        async with tr.span("alt", "execute", "altitude.py") as outer:
            assert await read("a") == "A"
            with pytest.raises(RuntimeError):
                await fail()
            outer.set_output("done")

    asyncio.run(main())
    spans = written(tr, tmp_path)
    ops = [s.operation for s in spans]
    assert ops == [
        "reasoning.classify",
        "reasoning.classify",
        "memory.read",
        "reasoning.escalate",
        "altitude.execute",
    ]
    assert spans[0].trace_id != spans[1].trace_id
    outer = spans[-1]
    assert spans[2].parent_id == outer.trace_id and spans[3].parent_id == outer.trace_id
    assert spans[2].metadata()["key"] == "a"
    assert spans[3].status == "error"


def test_correlation_ids_record_the_enclosing_one(tr: Tracer, tmp_path: Path) -> None:
    with (
        tr.span("alt", "plan", "a.py", correlation_id="req-1"),
        tr.span("rsn", "route", "r.py"),
        tr.span("foc", "route", "f.py", correlation_id="req-2"),
    ):
        tr.event("mem", "read", "m.py", correlation_id="req-3")
    with tr.span("lrn", "pattern_match", "l.py", correlation_id="solo"):
        pass
    s = by_op(written(tr, tmp_path))
    assert s["altitude.plan"].parent_correlation_id is None
    assert s["reasoning.route"].correlation_id is None
    assert s["focus.route"].parent_correlation_id == "req-1"
    assert s["memory.read"].parent_correlation_id == "req-2"
    assert s["learning.pattern_match"].parent_correlation_id is None


def test_only_safe_baggage_reaches_children(tr: Tracer, tmp_path: Path) -> None:
    assert {"run_id", "project"} <= SAFE_BAGGAGE_KEYS
    with tr.span("alt", "plan", "a.py", baggage={"project": "p1", "session_id": "s-1"}):
        tr.baggage(run_id="r9", session_name="morning", custom="x")
        with tr.span("rsn", "route", "r.py") as child:
            child.add_baggage(dataset_id="d1")
            tr.event("mem", "read", "m.py")
    s = by_op(written(tr, tmp_path))
    assert s["altitude.plan"].metadata()["baggage"] == {
        "project": "p1",
        "session_id": "s-1",
        "run_id": "r9",
        "session_name": "morning",
        "custom": "x",
    }
    assert s["reasoning.route"].metadata()["baggage"] == {
        "project": "p1",
        "run_id": "r9",
        "dataset_id": "d1",
    }
    assert s["memory.read"].metadata()["baggage"] == {
        "project": "p1",
        "run_id": "r9",
        "dataset_id": "d1",
    }


def test_agent_scopes_nest_and_end(tr: Tracer, tmp_path: Path) -> None:
    with tr.agent("outer", labels={"team": "a"}):
        with tr.agent("inner", run_id="r2"):
            tr.event("sys", "tick", "s.py")
        tr.event("sys", "tock", "s.py")
    tr.event("sys", "after", "s.py")
    s = by_op(written(tr, tmp_path))
    assert (s["system.tick"].agent, s["system.tick"].run_id) == ("inner", "r2")
    assert (s["system.tock"].agent, s["system.tock"].labels) == ("outer", ("team=a",))
    assert s["system.after"].agent is None


def test_generate_id_shape_and_no_collisions() -> None:
    ids = {generate_id("alt") for _ in range(200_000)}
    assert len(ids) == 200_000
    assert all(ID_SHAPE.match(i) for i in list(ids)[:1000])


def test_layer_aliases_and_dotted_operations(tr: Tracer, tmp_path: Path) -> None:
    tr.event("ALTITUDE", "evaluate", "a.py")
    tr.event("sys", "context.defaulted", "c.py")
    tr.event("custom", "thing", "c.py")
    spans = written(tr, tmp_path)
    assert [(s.layer, s.operation) for s in spans] == [
        ("altitude", "altitude.evaluate"),
        ("system", "context.defaulted"),
        ("custom", "custom.thing"),
    ]
    assert spans[0].trace_id.startswith("alt_") and spans[2].trace_id.startswith("custom_")


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


def test_unserialisable_and_huge_values_are_coerced(tr: Tracer, tmp_path: Path) -> None:
    circular: dict[str, Any] = {"name": "loop"}
    circular["self"] = circular
    nasty: list[dict[Any, Any]] = [
        {"obj": object(), "set": {1, 2}, "bad": _BadRepr()},
        {"circular": circular},
        {"huge": "x" * 10_000_000},
        {"bigint": 10**30, "deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]},
        {"surrogate": "a\ud800b", 7: "int key", (1, 2): "tuple key"},
        {f"k{i}": "y" * 3000 for i in range(1000)},
    ]
    for i, meta in enumerate(nasty):
        with tr.span("sys", "nasty", "n.py", input_data=b"\x00bytes" * 50, metadata=meta) as sp:
            sp.set_output({"i": i})
    spans = written(tr, tmp_path)
    size = (tmp_path / "trace.jsonl").stat().st_size
    assert len(spans) == len(nasty)
    assert size < len(nasty) * 600_000
    first = spans[0].metadata()
    assert first["obj"].startswith("<object object")
    assert first["bad"] == "<unrepresentable _BadRepr>"
    assert len(spans[0].fields()["input_summary"]) <= 100
    assert spans[0].fields()["output_summary"] == "{'i': 0}"
    assert "loop" in str(spans[1].metadata())
    huge = spans[2].metadata()
    assert len(huge["huge"]) <= 4096
    assert spans[3].metadata()["bigint"] == "<int of 100 bits>"
    assert spans[4].metadata()["surrogate"] == "a\\ud800b"
    assert "tracer_truncated" in spans[5].metadata() or len(spans[5].raw) <= 512 * 1024
    assert tr.stats().dropped == 0


def test_a_bad_string_in_a_summary_keeps_the_metadata(tr: Tracer, tmp_path: Path) -> None:
    name = os.fsdecode(b"report-\xff.txt")  # a non-UTF-8 file name: a lone surrogate
    with tr.agent("planner", run_id="run-42"):
        with tr.span("mem", "read", name, name, correlation_id="req-9") as sp:
            sp.set_output(name, namespace="files", tier="hot")
        tr.event("mem", "write", "files.py", name, name, metadata={"key": "k"})
    read, write = by_op(written(tr, tmp_path)).values()
    assert read.fields()["output_summary"] == "report-\\udcff.txt"
    assert read.component == "report-\\udcff.txt"
    assert read.metadata()["namespace"] == "files" and read.metadata()["tier"] == "hot"
    assert (read.agent, read.run_id, read.correlation_id) == ("planner", "run-42", "req-9")
    assert write.metadata()["key"] == "k" and write.agent == "planner"


def test_string_summaries_are_clipped_to_100(tr: Tracer, tmp_path: Path) -> None:
    with tr.span("rsn", "clip", "c", "I" * 300) as sp:
        sp.set_output("O" * 300)
    tr.event("rsn", "ev", "c", "I" * 300, "O" * 300)
    for span in written(tr, tmp_path):
        fields = span.fields()
        assert len(fields["input_summary"]) == 100 and fields["input_summary"].endswith("…")
        assert len(fields["output_summary"]) == 100


def test_module_tracer_is_configured_from_environment() -> None:
    assert tracer.enabled == enabled_in(os.environ)


def test_lines_are_complete_json_objects(tr: Tracer, tmp_path: Path) -> None:
    for i in range(1000):
        tr.event("mem", "write", "m.py", f"key {i}", metadata={"i": i})
    tr.flush()
    data = (tmp_path / "trace.jsonl").read_bytes()
    assert data.endswith(b"\n")
    assert [orjson.loads(line)["metadata"]["i"] for line in data.splitlines()] == list(range(1000))


def _anything() -> Any:
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**80), max_value=2**80)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(alphabet=st.characters(), max_size=50)
        | st.binary(max_size=20)
        | st.builds(object)
        | st.builds(_BadRepr)
        | st.sampled_from([frozenset({1, 2}), 3j, Path("/x")])
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=5)
            | st.tuples(inner, inner)
            | st.dictionaries(st.text(max_size=10) | st.integers(), inner, max_size=5)
        ),
        max_leaves=30,
    )


def test_any_metadata_gives_one_decodable_line(tmp_path: Path) -> None:
    from hypothesis import given, settings

    from tracetui.tracer._encode import MAX_LINE, encode

    decoder = LineDecoder()

    @settings(max_examples=300, deadline=None)
    @given(meta=_anything(), summary=_anything())
    def check(meta: Any, summary: Any) -> None:
        record = {
            "trace_id": "sys_1_ab",
            "parent_id": None,
            "timestamp": 1.0,
            "hrm_layer": "system",
            "operation": "system.x",
            "status": "success",
            "input_summary": summary,
            "metadata": {"value": meta},
        }
        line = encode(record)
        assert line.endswith(b"\n") and line.count(b"\n") == 1 and len(line) <= MAX_LINE
        spans, rejected = decoder.decode([line[:-1]], 1)
        assert not rejected and len(spans) == 1 and spans[0].trace_id == "sys_1_ab"

    check()


def test_arguments_of_the_wrong_type_are_written_not_raised(tr: Tracer, tmp_path: Path) -> None:
    bad: Any = [1, 2]
    with tr.agent(bad, run_id=7, labels=bad), tr.span(bad, 3, bad, bad, metadata=bad) as span:  # type: ignore[arg-type]
        span.set_output(bad)
        span.block(bad)
    tr.event(None, None, metadata=bad, duration_ms=bad, baggage=bad, correlation_id=bad)  # type: ignore[arg-type]
    spans = written(tr, tmp_path)
    assert len(spans) == 2
    assert spans[0].status == "blocked" and spans[0].agent == "[1, 2]" and spans[0].run_id == "7"
    assert spans[0].metadata()["metadata"] == "[1, 2]"
    assert spans[1].metadata()["baggage"] == {"baggage": "[1, 2]"}
    assert spans[1].duration_ms == 0.0
