"""OTLP receiver benchmark: spans/s over loopback and the delay from `span.end()` to the store.

    python tests/perf/bench_otel.py [--spans 50000] [--rate 500] [--seconds 4] [--clients 2]
                                    [--apps 2] [--rounds 3]

Figures printed (the target of issue 7 is ≥ 20,000 spans/s with the SDK's batch exporter):
- SDK apps, batch exporter: `--apps` OpenTelemetry SDK app processes create `--spans` nested
  spans in all (attributes on each) as fast as they can with `BatchSpanProcessor` + the OTLP/HTTP
  protobuf exporter (max_queue_size raised so the SDK drops none); spans/s from the first span
  until every span is in a `TraceStore` (decoded and ingested on a consumer thread, as LiveIngest
  does). Baseline in the same run: how fast the apps alone produce and encode spans when their
  exporter throws the requests away (the ceiling any receiver can see from these apps).
- Receiver capacity: the same SDK-encoded requests (512 spans each) replayed by `--clients`
  client processes over keep-alive connections; spans/s until all are in the store. Baseline:
  the in-process cost of parsing + mapping + decoding + ingesting those requests (no HTTP).
- Delay: the app paced at `--rate` spans/s for `--seconds` s with the batch exporter's delay set
  to 100 ms (the SDK's default is 5 s, which would only measure the exporter's own wait);
  p50/p95/max from `span.end()` (the span's end time) to "in the store".
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tracetui.decode import LineDecoder
from tracetui.otel.otlp_proto import convert_protobuf, parse_protobuf
from tracetui.otel.receiver import OtlpReceiver
from tracetui.store import TraceStore

APP = r"""
import sys, time
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

mode, endpoint, n, rate, delay_ms, dump = sys.argv[1:7]
n, rate, delay_ms = int(n), float(rate), int(delay_ms)

class Discard(SpanExporter):
    def __init__(self):
        self.out = open(dump, "wb") if dump != "-" else None
    def export(self, spans):
        data = encode_spans(spans).SerializeToString()
        if self.out is not None:
            self.out.write(len(data).to_bytes(4, "big") + data)
        return SpanExportResult.SUCCESS
    def shutdown(self):
        if self.out is not None:
            self.out.close()

exporter = Discard() if mode == "discard" else OTLPSpanExporter(endpoint=endpoint + "/v1/traces")
provider = TracerProvider(resource=Resource.create({"service.name": "bench-app"}))
provider.add_span_processor(BatchSpanProcessor(
    exporter, max_queue_size=max(2048, n + 1), max_export_batch_size=512,
    schedule_delay_millis=delay_ms))
tracer = provider.get_tracer("bench.app", "1.0")
sys.stdout.write(f"start {time.time()}\n"); sys.stdout.flush()
t0 = time.perf_counter()
made = 0
while made < n:
    with tracer.start_as_current_span("request", attributes={"agent.name": "bench", "i": made}):
        made += 1
        for _ in range(min(4, n - made)):
            attrs = {"flujo.step.id": "s", "tokens": 7}
            with tracer.start_as_current_span("step", attributes=attrs):
                made += 1
    if rate > 0:
        ahead = made / rate - (time.perf_counter() - t0)
        if ahead > 0:
            time.sleep(ahead)
provider.shutdown()
sys.stdout.write(f"done {time.time()}\n"); sys.stdout.flush()
"""

REPLAY = r"""
import http.client, sys
port, path, first, step = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = open(path, "rb").read()
bodies, i = [], 0
while i < len(data):
    size = int.from_bytes(data[i:i + 4], "big")
    bodies.append(data[i + 4:i + 4 + size])
    i += 4 + size
conn = http.client.HTTPConnection("127.0.0.1", port)
for body in bodies[first::step]:
    while True:
        conn.request("POST", "/v1/traces", body=body,
                     headers={"Content-Type": "application/x-protobuf"})
        resp = conn.getresponse(); resp.read()
        if resp.status == 200:
            break
        assert resp.status in (429, 503), resp.status
"""


class Consumer:
    """Decodes and ingests delivered lines on one thread; records when each span landed."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self.store = TraceStore()
        self.count = 0
        self.delays: list[float] = []
        self.last = 0.0
        self.track = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def on_lines(self, lines: list[bytes], origin: str) -> None:
        self.inbox.put(lines)

    def _run(self) -> None:
        decoder = LineDecoder()
        origin = self.store.origin("otlp")
        while True:
            lines = self.inbox.get()
            if lines is None:
                return
            spans, rejected = decoder.decode([x[:-1] for x in lines], 1, origin)
            self.store.ingest(spans, rejected)
            now = time.time()
            self.count += len(spans)
            self.last = now
            if self.track:
                for span in spans:
                    if span.start is not None and span.duration_ms is not None:
                        self.delays.append(now - (span.start + span.duration_ms / 1000))

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: {self.count} of {count} spans arrived")
            time.sleep(0.005)

    def close(self) -> None:
        self.inbox.put(None)
        self._thread.join()


def run_app(
    mode: str, endpoint: str, n: int, rate: float, delay_ms: int, dump: str, apps: int = 1
) -> float:
    """Run `apps` SDK app processes at once (n spans in all).

    Returns the earliest start time (epoch seconds), or for `discard` the wall time they took.
    """
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                APP,
                mode,
                endpoint,
                str(n // apps + (1 if k < n % apps else 0)),
                str(rate / apps),
                str(delay_ms),
                f"{dump}.{k}" if dump != "-" else dump,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(apps)
    ]
    starts: list[float] = []
    dones: list[float] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit("an app process failed")
        for line in out.splitlines():
            word, value = line.split()
            (starts if word == "start" else dones).append(float(value))
    return min(starts) if mode != "discard" else max(dones) - min(starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--apps", type=int, default=2, help="SDK app processes sending at once")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.spans
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {n:,} spans")

    with tempfile.TemporaryDirectory() as tmp:
        dump = str(Path(tmp) / "requests.bin")
        # Alternating rounds (shared machine): the apps alone, then the apps sending.
        alone: list[float] = []
        sending: list[float] = []
        for _ in range(args.rounds):
            alone.append(n / run_app("discard", "-", n, 0, 50, dump, args.apps))
            consumer = Consumer()
            rx = OtlpReceiver("127.0.0.1", 0, consumer.on_lines)
            rx.start()
            try:
                started = run_app("send", rx.endpoint, n, 0, 50, "-", args.apps)
                consumer.wait_for(n, 600)
                sending.append(n / (consumer.last - started))
            finally:
                rx.stop()
                consumer.close()
        ratios = [b / a for a, b in zip(alone, sending, strict=True)]
        print(
            f"{args.apps} app process(es) alone (SDK batch + encode, discarded): "
            f"best {max(alone):,.0f}, median {statistics.median(alone):,.0f} spans/s"
        )
        print(
            f"{args.apps} SDK app(s), batch exporter → receiver → store: best {max(sending):,.0f}, "
            f"median {statistics.median(sending):,.0f} spans/s (target 20,000: best "
            f"{max(sending) / 20_000:.2f}×; vs the apps alone in the same round: best "
            f"{max(ratios):.2f}×, median {statistics.median(ratios):.2f}×)"
        )

        # Receiver capacity with replayed SDK requests.
        data = b"".join(Path(f"{dump}.{k}").read_bytes() for k in range(args.apps))
        Path(dump).write_bytes(data)
        bodies = []
        i = 0
        while i < len(data):
            size = int.from_bytes(data[i : i + 4], "big")
            bodies.append(data[i + 4 : i + 4 + size])
            i += 4 + size
        t0 = time.perf_counter()
        store = TraceStore()
        decoder = LineDecoder()
        origin = store.origin("x")
        for body in bodies:
            lines = convert_protobuf(parse_protobuf(body)).lines
            store.ingest(*decoder.decode([x[:-1] for x in lines], 1, origin))
        in_process = n / (time.perf_counter() - t0)
        print(f"in-process parse + map + decode + ingest (no HTTP): {in_process:,.0f} spans/s")

        consumer = Consumer()
        rx = OtlpReceiver("127.0.0.1", 0, consumer.on_lines)
        rx.start()
        try:
            t0 = time.time()
            procs = [
                subprocess.Popen(
                    [sys.executable, "-c", REPLAY, str(rx.port), dump, str(k), str(args.clients)]
                )
                for k in range(args.clients)
            ]
            for proc in procs:
                if proc.wait(600) != 0:
                    raise SystemExit("a replay client failed")
            consumer.wait_for(n, 600)
            capacity = n / (consumer.last - t0)
            print(
                f"receiver capacity ({args.clients} clients replaying {len(bodies)} SDK requests): "
                f"{capacity:,.0f} spans/s ({capacity / in_process:.2f}× in-process; "
                f"refused {rx.stats.refused})"
            )
        finally:
            rx.stop()
            consumer.close()

        # Delay from span.end() to the store, paced.
        consumer = Consumer()
        consumer.track = True
        rx = OtlpReceiver("127.0.0.1", 0, consumer.on_lines)
        rx.start()
        try:
            paced = int(args.rate * args.seconds)
            run_app("send", rx.endpoint, paced, args.rate, 100, "-")
            consumer.wait_for(paced, 60)
        finally:
            rx.stop()
            consumer.close()
        d = sorted(consumer.delays)
        p95 = d[int(len(d) * 0.95) - 1]
        print(
            f"span.end() → store at {args.rate:,.0f} spans/s, batch delay 100 ms: "
            f"p50 {statistics.median(d) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {d[-1] * 1000:.0f} ms ({len(d)} spans)"
        )


if __name__ == "__main__":
    main()
