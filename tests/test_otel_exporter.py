"""`TraceTuiSpanExporter`: the same lines as the receiver, through the tracer's sinks."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from test_otel_support import store_of

from tracetui.otel import TraceTuiSpanExporter
from tracetui.otel.otlp_json import convert_request
from tracetui.otel.receiver import OtlpReceiver
from tracetui.sources.live import LiveIngest
from tracetui.store import TraceStore


def traced_work(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("svc.worker", "0.3")
    with tracer.start_as_current_span(
        "handle", kind=SpanKind.SERVER, attributes={"hrm.layer": "focus", "agent.name": "router"}
    ) as root:
        link = Link(root.get_span_context(), {"why": "retry of"})
        with tracer.start_as_current_span(
            "call", kind=SpanKind.CLIENT, links=[link], attributes={"sizes": [1, 2, 3]}
        ) as call:
            call.add_event("flujo.retry", {"attempt": 1})
            call.add_event("context.propagated", {"field": "tenant"})
            call.set_status(Status(StatusCode.ERROR, "upstream 502"))
        with tracer.start_as_current_span("guard", attributes={"guardrail.blocked": True}):
            pass


def _by_id(lines: list[bytes]) -> dict[str, dict[str, Any]]:
    out = {}
    for line in lines:
        record = orjson.loads(line)
        out[record["trace_id"]] = record
    return out


def test_exporter_lines_match_what_the_receiver_and_otlp_json_files_make(tmp_path: Path) -> None:
    got: list[bytes] = []
    lock = threading.Lock()

    def collect(lines: list[bytes], origin: str) -> None:
        with lock:
            got.extend(lines)

    rx = OtlpReceiver("127.0.0.1", 0, collect)
    rx.start()
    out = tmp_path / "trace.jsonl"
    otlp_file = tmp_path / "otlp.jsonl"
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": "worker"}))
        exporter = TraceTuiSpanExporter(str(out))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(f"{rx.endpoint}/v1/traces"))
        )
        provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(str(otlp_file))))
        traced_work(provider)
        provider.shutdown()
        deadline = time.monotonic() + 10
        while len(got) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        rx.stop()
    written = out.read_bytes().splitlines(keepends=True)
    from_file = [
        x for line in otlp_file.read_bytes().splitlines() for x in convert_request(line).lines
    ]
    assert len(written) == 4  # 3 spans + 1 context outcome
    assert _by_id(written) == _by_id(got) == _by_id(from_file)
    store = store_of(written)
    spans = {s.operation: s for s in store.events()}
    assert store.parent(spans["call"]) is spans["handle"]
    assert spans["call"].status == "error" and spans["guard"].status == "blocked"
    meta = spans["call"].metadata()
    assert meta["otel.span_kind"] == "client" and meta["sizes"] == [1, 2, 3]
    assert meta["otel.links"][0]["attributes"] == {"why": "retry of"}
    assert meta["events"][0]["name"] == "flujo.retry"
    assert exporter.stats().written == 4 and exporter.stats().dropped == 0


def test_exporter_writes_to_a_listening_tracetui_socket(tmp_path: Path) -> None:
    store = TraceStore()
    with LiveIngest(["tcp:127.0.0.1:0"], store) as ingest:
        address = ingest.states()[0].address
        provider = TracerProvider()
        exporter = TraceTuiSpanExporter(socket=f"tcp:{address}")
        assert exporter.sink == f"socket tcp:{address}"
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        traced_work(provider)
        provider.force_flush()
        deadline = time.monotonic() + 10
        while sum(1 for _ in store.events()) < 4:
            assert time.monotonic() < deadline
            ingest.wait(0.1)
            ingest.drain()
        provider.shutdown()
    ops = sorted(s.operation or "" for s in store.events())
    assert ops == ["call", "context.propagated", "guard", "handle"]
    assert not store.rejected


def test_unwritable_file_drops_and_counts_without_raising(tmp_path: Path) -> None:
    provider = TracerProvider()
    exporter = TraceTuiSpanExporter(str(tmp_path), warn=False)  # a directory: cannot be opened
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traced_work(provider)
    provider.shutdown()
    stats = exporter.stats()
    assert stats.written == 0 and stats.dropped == 4 and stats.pending == 0


def test_exporter_follows_the_tracer_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOPEJAR_TRACE_SOCKET", raising=False)
    monkeypatch.setenv("DOPEJAR_TRACE_FILE", str(tmp_path / "env.jsonl"))
    exporter = TraceTuiSpanExporter()
    assert exporter.sink == f"file {tmp_path / 'env.jsonl'}"
    exporter.shutdown()
    with pytest.raises(ValueError, match="loopback"):
        TraceTuiSpanExporter(socket="tcp:10.0.0.1:9000")
