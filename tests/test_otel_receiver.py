"""The OTLP/HTTP receiver with real OpenTelemetry SDK apps, real HTTP, and bad requests."""

from __future__ import annotations

import gzip
import http.client
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from google.rpc.status_pb2 import Status as RpcStatus  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.json.http.trace_exporter import (
    OTLPSpanExporter as JsonSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode
from test_otel_support import json_request, json_span, store_of, tree_shape

from tracetui.otel.otlp_proto import convert_protobuf, parse_protobuf
from tracetui.otel.receiver import OtlpReceiver
from tracetui.otel.source import OtlpSource, parse_otlp
from tracetui.sources.channel import Channel
from tracetui.sources.spec import SourceError, SourceSpec
from tracetui.store import TraceStore


class Collected:
    """What `on_lines` received, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lines: list[bytes] = []
        self.origins: list[str] = []

    def __call__(self, lines: list[bytes], origin: str) -> None:
        with self.lock:
            self.lines.extend(lines)
            self.origins.append(origin)

    def wait(self, count: int, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.lines) >= count:
                    return list(self.lines)
            assert time.monotonic() < deadline, f"got {len(self.lines)} of {count} lines"
            time.sleep(0.01)


@pytest.fixture
def collected() -> Collected:
    return Collected()


@pytest.fixture
def receiver(collected: Collected) -> Iterator[OtlpReceiver]:
    rx = OtlpReceiver("127.0.0.1", 0, collected)
    rx.start()
    try:
        yield rx
    finally:
        rx.stop()


def run_app(exporter: SpanExporter) -> dict[str, int]:
    """A small traced app: nested spans with attributes, events, an error and a resource."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": "planner-svc", "deployment.environment": "dev"})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    tracer = provider.get_tracer("app.agents", "2.1")
    ids: dict[str, int] = {}
    with tracer.start_as_current_span(
        "plan", attributes={"hrm.layer": "reasoning", "agent.name": "planner", "agent.run_id": "r1"}
    ) as root:
        ids["plan"] = root.get_span_context().span_id
        for i in range(3):
            with tracer.start_as_current_span(
                f"step{i}", attributes={"flujo.step.id": f"s{i}"}
            ) as s:
                ids[f"step{i}"] = s.get_span_context().span_id
                s.add_event("context.defaulted", {"field": "user_id", "default": "anon"})
                with tracer.start_as_current_span(
                    "tool", attributes={"tokens": 12, "ok": True}
                ) as t:
                    ids[f"tool{i}"] = t.get_span_context().span_id
                    if i == 1:
                        t.record_exception(ValueError("bad tool input"))
                        t.set_status(Status(StatusCode.ERROR, "bad tool input"))
    provider.shutdown()
    return ids


@pytest.mark.parametrize("encoding", ["protobuf", "protobuf+gzip", "json"])
def test_sdk_app_spans_land_with_parents_and_fields(
    receiver: OtlpReceiver, collected: Collected, encoding: str
) -> None:
    url = f"{receiver.endpoint}/v1/traces"
    exporter: SpanExporter
    if encoding == "json":
        exporter = JsonSpanExporter(endpoint=url)
    else:
        gz = Compression.Gzip if encoding.endswith("gzip") else Compression.NoCompression
        exporter = OTLPSpanExporter(endpoint=url, compression=gz)
    ids = run_app(exporter)
    lines = collected.wait(7 + 3)  # 7 spans + 3 context outcome events
    store = store_of(lines)
    hexid = {name: f"{v:016x}" for name, v in ids.items()}
    root = store.by_id[hexid["plan"]]
    assert root.parent_id is None and root.layer == "reasoning" and root.agent == "planner"
    for i in range(3):
        step = store.by_id[hexid[f"step{i}"]]
        tool = store.by_id[hexid[f"tool{i}"]]
        assert store.parent(step) is root and store.parent(tool) is step
        assert step.layer == "planner-svc"  # no hrm.layer on the step: the service name
        assert step.metadata()["flujo.step.id"] == f"s{i}"
        assert tool.metadata()["tokens"] == 12 and tool.metadata()["ok"] is True
        assert tool.status == ("error" if i == 1 else "success")
        outcome = store.by_id[f"{hexid[f'step{i}']}.ctx0"]
        assert outcome.operation == "context.defaulted" and store.parent(outcome) is step
    bad = store.by_id[hexid["tool1"]]
    meta = bad.metadata()
    assert meta["otel.events"][0]["name"] == "exception"
    assert meta["otel.events"][0]["attributes"]["exception.message"] == "bad tool input"
    assert meta["resource.service.name"] == "planner-svc"
    assert meta["resource.deployment.environment"] == "dev"
    assert bad.component == "app.agents" and meta["otel.scope_version"] == "2.1"
    assert len({m["otel.trace_id"] for m in (s.metadata() for s in store.events())}) == 1
    assert all(o.startswith(f"otlp:{receiver.address} peer 127.0.0.1:") for o in collected.origins)
    assert receiver.stats.bad_requests == 0 and receiver.stats.rejected_spans == 0


def _post(
    rx: OtlpReceiver,
    body: bytes,
    ctype: str,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=10)
    try:
        conn.request(
            method, "/v1/traces", body=body, headers={"Content-Type": ctype, **(headers or {})}
        )
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _proto_request(*span_ids: bytes) -> bytes:
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for sid in span_ids:
        span = spans.add()
        span.trace_id = bytes.fromhex("5b8efff798038103d269b633813fc60c")
        span.span_id = sid
        span.name = "op"
        span.start_time_unix_nano = 1_700_000_000_000_000_000
        span.end_time_unix_nano = 1_700_000_000_001_000_000
    return bytes(req.SerializeToString())


def _status_of(body: bytes) -> RpcStatus:
    status = RpcStatus()
    status.ParseFromString(body)
    return status


def test_bad_requests_get_the_right_status_and_change_nothing(collected: Collected) -> None:
    rx = OtlpReceiver("127.0.0.1", 0, collected, max_body=1 << 20)
    rx.start()
    try:
        good = _proto_request(b"\x01" * 8)
        code, _, body = _post(rx, good, "text/plain")
        assert code == 415 and "unsupported content type" in _status_of(body).message
        code, _, body = _post(rx, good, "application/x-protobuf", {"Content-Encoding": "br"})
        assert code == 415
        code, _, body = _post(rx, b"\xff\xfe garbage \x00" * 10, "application/x-protobuf")
        assert code == 400 and "protobuf" in _status_of(body).message
        code, _, body = _post(rx, b"{not json", "application/json")
        assert code == 400 and b"not valid JSON" in body
        code, _, body = _post(
            rx, b"\x1f\x8b not gzip", "application/json", {"Content-Encoding": "gzip"}
        )
        assert code == 400
        code, _, _ = _post(rx, b"x" * ((1 << 20) + 1), "application/x-protobuf")
        assert code == 413
        bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
        assert len(bomb) < 200_000
        code, _, body = _post(rx, bomb, "application/x-protobuf", {"Content-Encoding": "gzip"})
        assert code == 413 and "decompressed" in _status_of(body).message
        code, _, _ = _post(rx, good, "application/x-protobuf", method="GET")
        assert code == 405
        time.sleep(0.2)
        assert collected.lines == [] and rx.stats.lines == 0 and rx.stats.spans == 0
        # the receiver still works afterwards
        code, _, _ = _post(
            rx, gzip.compress(good), "application/x-protobuf", {"Content-Encoding": "gzip"}
        )
        assert code == 200
        assert len(collected.wait(1)) == 1
    finally:
        rx.stop()


def test_rejected_spans_are_counted_in_partial_success(
    receiver: OtlpReceiver, collected: Collected
) -> None:
    code, _, body = _post(
        receiver, _proto_request(b"\x02" * 8, b"\x00" * 8, b"\x03" * 4), "application/x-protobuf"
    )
    assert code == 200
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(body)
    assert answer.partial_success.rejected_spans == 2
    assert "span id" in answer.partial_success.error_message
    assert len(collected.wait(1)) == 1
    body_json = json_request([json_span("0202020202020202"), json_span("zz")])
    code, _, body = _post(receiver, body_json, "application/json")
    assert code == 200 and b'"rejectedSpans": "1"' in body


def test_full_queue_answers_503_with_retry_after_and_loses_nothing() -> None:
    release = threading.Event()
    got: list[bytes] = []

    def slow(lines: list[bytes], origin: str) -> None:
        release.wait(10)
        got.extend(lines)

    rx = OtlpReceiver("127.0.0.1", 0, slow, queue_bytes=2000)
    rx.start()
    try:
        accepted = 0
        refused: dict[str, str] = {}
        for i in range(50):
            code, headers, _ = _post(
                rx, _proto_request(bytes([i + 1]) * 8), "application/x-protobuf"
            )
            if code == 503:
                refused = headers
                break
            assert code == 200
            accepted += 1
        assert refused.get("Retry-After") == "1"
        assert 0 < accepted < 50 and rx.stats.refused == 1
        release.set()
        deadline = time.monotonic() + 10
        while len(got) < accepted:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        code, _, _ = _post(rx, _proto_request(b"\x7f" * 8), "application/x-protobuf")
        assert code == 200
    finally:
        release.set()
        rx.stop()
    assert len(got) == accepted + 1


def test_only_loopback_by_default() -> None:
    with pytest.raises(ValueError, match="not a loopback"):
        OtlpReceiver("0.0.0.0", 0)
    with pytest.raises(SourceError, match="not a loopback"):
        parse_otlp("otlp:10.1.2.3:4318")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("otlp", ("127.0.0.1", 4318)),
        ("otlp:4319", ("127.0.0.1", 4319)),
        ("otlp:127.0.0.1:0", ("127.0.0.1", 0)),
        ("otlp:localhost:5000", ("127.0.0.1", 5000)),
        ("otlp:[::1]:4318", ("::1", 4318)),
    ],
)
def test_parse_otlp(spec: str, expected: tuple[str, int]) -> None:
    assert parse_otlp(spec) == expected


def test_otlp_source_feeds_a_live_channel_and_reports_a_busy_port() -> None:
    channel = Channel()
    stop = threading.Event()
    source = OtlpSource(
        SourceSpec("tcp", "otlp:127.0.0.1:0", host="127.0.0.1", port=0), channel, stop
    )
    source.start()
    try:
        rx = source.receiver
        assert isinstance(rx, OtlpReceiver)
        assert source.status.snapshot().address == rx.address
        busy = OtlpSource(
            SourceSpec("tcp", "otlp:x", host="127.0.0.1", port=rx.port),
            Channel(),
            threading.Event(),
        )
        with pytest.raises(SourceError, match="cannot listen"):
            busy.bind()
        ids = run_app(OTLPSpanExporter(endpoint=f"{rx.endpoint}/v1/traces"))
        store = TraceStore()
        deadline = time.monotonic() + 10
        while sum(1 for _ in store.events()) < 10:
            assert time.monotonic() < deadline
            channel.wait(0.1)
            for batch in channel.take():
                origin = store.origin(batch.origin)
                for span in batch.spans:
                    span.origin = origin
                store.ingest(batch.spans, batch.rejected)
        root = store.by_id[f"{ids['plan']:016x}"]
        assert store.origins[root.origin].startswith(f"otlp:{rx.address} peer ")
        assert source.status.snapshot().lines == 10
    finally:
        stop.set()
        source.join(10)
    assert source.status.snapshot().state == "closed"


def test_missing_extra_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "try:\n    from tracetui.otel import OtlpReceiver\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert 'pip install "tracetui[otel]"' in out.stdout and "aiohttp" in out.stdout


def test_too_many_requests_at_once_get_429_with_retry_after(collected: Collected) -> None:
    rx = OtlpReceiver("127.0.0.1", 0, collected, max_reading=1)
    rx.start()
    slow = socket.create_connection(("127.0.0.1", rx.port), timeout=10)
    try:
        body = _proto_request(b"\x05" * 8)
        head = (
            "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/x-protobuf\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        slow.sendall(head.encode() + body[:5])
        deadline = time.monotonic() + 10
        while rx._reading < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        code, headers, _ = _post(rx, _proto_request(b"\x06" * 8), "application/x-protobuf")
        assert code == 429 and headers.get("Retry-After") == "1"
        slow.sendall(body[5:])
        assert slow.recv(4096).startswith(b"HTTP/1.1 200")
        assert len(collected.wait(1)) == 1
    finally:
        slow.close()
        rx.stop()


_IDS = [bytes([0, 0, 0, 0, 0, 0, 0, i + 1]) for i in range(10)]


@st.composite
def _forest(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    n = draw(st.integers(2, len(_IDS)))
    return [(_IDS[i], draw(st.sampled_from([b"", *_IDS[:i]])) if i else b"") for i in range(n)]


def _pb_request(pairs: list[tuple[bytes, bytes]]) -> bytes:
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for sid, parent in pairs:
        span = spans.add()
        span.trace_id = bytes.fromhex("5b8efff798038103d269b633813fc60c")
        span.span_id = sid
        span.parent_span_id = parent
        span.name = f"op{sid[-1]}"
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + sid[-1]
        span.end_time_unix_nano = 1_700_000_000_100_000_000
        if sid[-1] % 3 == 0:
            event = span.events.add()
            event.name = "context.propagated"
            event.time_unix_nano = 1_700_000_000_000_000_500
    return bytes(req.SerializeToString())


@settings(max_examples=25, deadline=None)
@given(forest=_forest(), data=st.data())
def test_spans_posted_in_any_order_and_batching_build_the_same_tree(
    forest: list[tuple[bytes, bytes]], data: st.DataObject
) -> None:
    reference = store_of(convert_protobuf(parse_protobuf(_pb_request(forest))).lines)
    expected = sum(1 for _ in reference.events())
    order = data.draw(st.permutations(forest))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(order) - 1), max_size=4)))
    bounds = zip([0, *cuts], [*cuts, len(order)], strict=True)
    batches = [order[a:b] for a, b in bounds if order[a:b]]
    got = Collected()
    with OtlpReceiver("127.0.0.1", 0, got) as rx:
        for batch in batches:
            code, _, _ = _post(rx, _pb_request(batch), "application/x-protobuf")
            assert code == 200
        lines = got.wait(expected)
    store = store_of(lines)
    assert tree_shape(store) == tree_shape(reference)
    assert not [t for t in store.top() if isinstance(t, str)]
