"""`LiveIngest` with OTLP sources: `otlp:…` specs and OTLP-JSON files among ordinary sources."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from test_otel_support import json_request, json_span

from tracetui.sources.live import LiveIngest, SourceError
from tracetui.store import TraceStore


def _spans(store: TraceStore) -> int:
    return sum(1 for _ in store.events())


def _pump(ingest: LiveIngest, store: TraceStore, count: int) -> None:
    deadline = time.monotonic() + 10
    while _spans(store) < count:
        assert time.monotonic() < deadline, f"{_spans(store)} of {count} spans"
        ingest.wait(0.1)
        ingest.drain()


def test_otlp_source_and_otlp_json_file_feed_one_store(tmp_path: Path) -> None:
    path = tmp_path / "collector.jsonl"
    path.write_bytes(json_request([json_span("00000000000000aa", "", "from-file")]) + b"\n")
    store = TraceStore()
    with LiveIngest(["otlp:127.0.0.1:0", str(path)], store, poll=True) as ingest:
        state = ingest.states()[0]
        assert state.state == "listening" and state.address.startswith("127.0.0.1:")
        provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
        exporter = OTLPSpanExporter(endpoint=f"http://{state.address}/v1/traces")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner"):
            pass
        provider.shutdown()
        with path.open("ab") as out:
            out.write(json_request([json_span("00000000000000bb", "00000000000000aa")]) + b"\n")
        _pump(ingest, store, 4)
    ops = {s.operation: s for s in store.events()}
    assert store.parent(ops["inner"]) is ops["outer"]
    assert store.origins[ops["outer"].origin].startswith(f"otlp:{state.address} peer 127.0.0.1:")
    assert store.parent(store.by_id["00000000000000bb"]) is ops["from-file"]
    assert store.by_id["00000000000000bb"].line_no == 2


def test_otlp_spec_errors_are_source_errors() -> None:
    with pytest.raises(SourceError, match="not a loopback"):
        LiveIngest(["otlp:192.168.1.5:4318"], TraceStore())
    with pytest.raises(SourceError, match="given twice"):
        LiveIngest(["otlp:4400", "otlp:127.0.0.1:4400"], TraceStore())
