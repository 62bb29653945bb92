"""Live sources benchmark: followed-file ingest, write→store delay, and a socket flood.

    python tests/perf/bench_sources.py [--events 500000] [--seconds 5] [--producers 20]
                                       [--per-producer 10000]

Figures printed, each with a baseline measured in the same run:
- Followed file, sustained: a writer process appends realistic events (gen_trace, ~440 B/line) to
  a followed file in 4 KiB writes as fast as it can; events/s from the writer's first write until
  every event is in the store (inotify and polling). Baselines: raw read of the same file
  (newlines counted) and a static bulk load of it (`load_paths`).
- Delay at 1,000 events/s: a writer process appends one event per write at 1,000/s, each carrying
  its write time; p50/p95/p99/max delay until the span is in the store (inotify and polling).
- Socket: N producer processes each send M lines (1% not JSON; every fifth producer then dies
  mid-line) to a Unix socket; checks received + rejected + dropped = sent and reports lines/s.
  Baseline: the same producers against a bare server that only counts newlines.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_trace import generate  # noqa: E402

from tracetui.load import load_paths  # noqa: E402
from tracetui.sources.live import LiveIngest  # noqa: E402
from tracetui.store import TraceStore  # noqa: E402

COPIER = r"""
import os, sys, time
src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
fd = os.open(dst, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
sys.stdout.write(f"{time.time()}\n"); sys.stdout.flush()
start = time.time()
for i in range(0, len(data), 4096):
    os.write(fd, data[i : i + 4096])
os.close(fd)
sys.stdout.write(f"{start} {time.time()}\n"); sys.stdout.flush()
"""

PACED = r"""
import json, os, sys, time
dst, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fd = os.open(dst, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
n = int(rate * seconds)
t0 = time.monotonic()
for i in range(n):
    due = t0 + i / rate
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    line = {"trace_id": f"lat_{i}", "hrm_layer": "alt", "operation": "altitude.transition",
            "status": "success", "duration_ms": 1.0, "sent_at": time.time(),
            "input_summary": "paced event for the delay benchmark"}
    os.write(fd, (json.dumps(line) + "\n").encode())
os.close(fd)
"""

PRODUCER = r"""
import socket, sys
path, src, k, per, die = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
lines = []
with open(src, "rb") as fh:
    for i, line in enumerate(fh):
        if i >= per:
            break
        if i % 100 == 99:
            lines.append(b"this line is not json %d\n" % i)
        else:
            lines.append(line.replace(b'"trace_id":"', b'"trace_id":"p%d-' % k, 1))
payload = b"".join(lines)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(path)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
sock.sendall(payload)
if die == "1":
    sock.sendall(b'{"trace_id": "cut-off-mid-li')
sock.close()
"""


def rate(n: float, seconds: float) -> str:
    return f"{n / seconds:>12,.0f}/s"


# ---- followed file -----------------------------------------------------------------------------


def raw_read(path: Path) -> tuple[int, float]:
    t = time.perf_counter()
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return n, time.perf_counter() - t


def static_load(path: Path) -> tuple[int, float, float]:
    store = TraceStore()
    t, c = time.perf_counter(), time.process_time()
    load_paths(store, [str(path)])
    return len(store), time.perf_counter() - t, time.process_time() - c


def followed(
    src: Path, workdir: Path, events: int, poll: bool
) -> tuple[float, float, float, float]:
    """(events/s into the store, writer's seconds, seconds until all were in the store, CPU s)."""
    dst = workdir / f"followed-{'poll' if poll else 'inotify'}.jsonl"
    store = TraceStore()
    with LiveIngest([str(dst)], store, poll=poll) as ingest:
        while "waiting for" not in ingest.states()[0].message:
            time.sleep(0.01)
        writer = subprocess.Popen(
            [sys.executable, "-c", COPIER, str(src), str(dst)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None
        writer.stdout.readline()
        cpu = time.process_time()
        while len(store) < events:
            ingest.wait(0.05)
            ingest.drain()
        done = time.time()
        cpu = time.process_time() - cpu
        start, end = map(float, writer.stdout.readline().split())
        writer.wait()
    return events / (done - start), end - start, done - start, cpu


def paced(workdir: Path, seconds: float, poll: bool) -> list[float]:
    dst = workdir / f"paced-{'poll' if poll else 'inotify'}.jsonl"
    n = int(1000 * seconds)
    store = TraceStore()
    delays: list[float] = []
    with LiveIngest([str(dst)], store, poll=poll) as ingest:
        while "waiting for" not in ingest.states()[0].message:
            time.sleep(0.01)
        writer = subprocess.Popen([sys.executable, "-c", PACED, str(dst), "1000", str(seconds)])
        while len(store) < n:
            ingest.wait(0.05)
            change = ingest.drain()
            now = time.time()
            delays.extend(now - orjson.loads(s.raw)["sent_at"] for s in change.new)
        writer.wait()
    return delays


# ---- socket ------------------------------------------------------------------------------------


def start_producers(path: str, src: Path, producers: int, per: int) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PRODUCER,
                path,
                str(src),
                str(k),
                str(per),
                str(int(k % 5 == 0)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(producers)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    return procs


def go(procs: list[subprocess.Popen[str]]) -> float:
    t = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    return t


def bare_server(path: str, expected: int, src: Path, producers: int, per: int) -> float:
    """Seconds for the producers to deliver `expected` newlines to a server that only counts."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(128)
    counted = 0
    finished = threading.Event()

    def serve() -> None:
        nonlocal counted
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ)
        while counted < expected:
            for key, _ in sel.select(0.1):
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    sel.register(conn, selectors.EVENT_READ)
                else:
                    conn = key.fileobj  # type: ignore[assignment]
                    data = conn.recv(256 << 10)
                    if data:
                        counted += data.count(b"\n")
                    else:
                        sel.unregister(conn)
                        conn.close()
        finished.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    procs = start_producers(path, src, producers, per)
    t = go(procs)
    finished.wait()
    seconds = time.perf_counter() - t
    for p in procs:
        p.wait()
    listener.close()
    os.unlink(path)
    return seconds


def socket_flood(path: str, src: Path, producers: int, per: int) -> dict[str, float]:
    store = TraceStore()
    dying = sum(1 for k in range(producers) if k % 5 == 0)
    sent = producers * per + dying  # a line cut off mid-way was sent too, if not whole
    with LiveIngest([f"unix:{path}"], store) as ingest:
        procs = start_producers(path, src, producers, per)
        t, cpu = go(procs), time.process_time()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ingest.wait(0.05)
            ingest.drain()
            st = ingest.states()[0]
            if len(store) + len(store.rejected) + st.dropped >= sent and st.producers == 0:
                break
        seconds = time.perf_counter() - t
        cpu = time.process_time() - cpu
        for p in procs:
            p.wait()
        st = ingest.states()[0]
    return {
        "sent": sent,
        "received": len(store),
        "rejected": len(store.rejected),
        "dropped": st.dropped,
        "seconds": seconds,
        "cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--producers", type=int, default=20)
    parser.add_argument("--per-producer", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sources-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o700)
        src = workdir / "source.jsonl"
        events = generate(src, args.events)
        size = src.stat().st_size
        print(f"source file: {events:,} events, {size / 1e6:,.0f} MB ({size / events:.0f} B/line)")

        print("\n== followed file, writer appending 4 KiB chunks ==")
        n, secs = raw_read(src)
        print(f"baseline raw read (count newlines)     {rate(n, secs)}")
        n, secs, cpu = static_load(src)
        static = n / secs
        print(
            f"baseline static load (load_paths)      {rate(n, secs)}  "
            f"({n / cpu:,.0f} per CPU-second of this process)"
        )
        for poll in (False, True):
            eps, writer_s, total_s, cpu = followed(src, workdir, events, poll)
            mode = "polling" if poll else "inotify"
            print(
                f"followed, {mode:<8}                     {eps:>12,.0f}/s  "
                f"({events / cpu:,.0f} per CPU-second; writer done in {writer_s:.2f}s, all in "
                f"store after {total_s:.2f}s; {eps / static:.2f}× static load)"
            )

        print(f"\n== write → store delay at 1,000 events/s for {args.seconds:g}s ==")
        for poll in (False, True):
            delays = sorted(paced(workdir, args.seconds, poll))
            q = statistics.quantiles(delays, n=100)
            mode = "polling" if poll else "inotify"
            print(
                f"{mode:<8} n={len(delays):,}  p50 {q[49] * 1e3:6.1f} ms  p95 {q[94] * 1e3:6.1f} ms"
                f"  p99 {q[98] * 1e3:6.1f} ms  max {delays[-1] * 1e3:6.1f} ms"
            )

        print(f"\n== socket: {args.producers} producers × {args.per_producer:,} lines ==")
        path = str(workdir / "bench.sock")
        expected = args.producers * args.per_producer
        bare = bare_server(path, expected, src, args.producers, args.per_producer)
        print(f"baseline bare server (count newlines)  {rate(expected, bare)}")
        r = socket_flood(path, src, args.producers, args.per_producer)
        total = r["received"] + r["rejected"] + r["dropped"]
        print(
            f"tracetui listener                      {rate(r['sent'], r['seconds'])}  "
            f"({r['sent'] / r['cpu']:,.0f} per CPU-second; "
            f"{r['sent'] / r['seconds'] / (expected / bare):.2f}× bare)"
        )
        print(
            f"sent {r['sent']:,.0f} = received {r['received']:,.0f} + rejected "
            f"{r['rejected']:,.0f} + dropped {r['dropped']:,.0f} → "
            + ("all accounted for" if total == r["sent"] else f"MISMATCH ({total:,.0f})")
        )


if __name__ == "__main__":
    main()
