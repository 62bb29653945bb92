"""An OTLP/HTTP trace receiver (`POST /v1/traces`) that turns spans into tracetui lines.

aiohttp serves HTTP on its own event loop in a background thread; requests are parsed with the
official generated protobuf classes (`opentelemetry-proto`) or the OTLP-JSON Structs, mapped by
`tracetui.otel.mapping`, and the lines handed to `on_lines(lines, origin)` from one delivery
thread, in arrival order. `on_lines` may block (backpressure): requests then queue up to
`queue_bytes` of lines, and beyond that are answered 503 with `Retry-After`, which OTLP
exporters retry, so nothing is lost.

Answers follow the OTLP/HTTP specification: 200 with an `ExportTraceServiceResponse` (with
`partial_success` counting spans whose ids are unusable), 400 for a body that cannot be parsed,
413 for a body over `max_body` bytes (after gzip decompression too, which is bounded while it
runs, so a gzip bomb costs at most `max_body` bytes), 415 for a content type or encoding other
than protobuf/JSON and gzip, 429 when too many requests are being read at once, and 503 when the
queue is full. Error bodies are a `google.rpc.Status` in the request's encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import sys
import threading
import zlib
from collections import deque
from collections.abc import Callable
from typing import Final

from tracetui.otel._extra import require

require("aiohttp", "google.rpc")

from aiohttp import web  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from google.protobuf.message import Message  # noqa: E402
from google.rpc.status_pb2 import Status as RpcStatus  # type: ignore[import-untyped]  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from tracetui.otel.otlp_json import Conversion, OtlpError, convert_request  # noqa: E402
from tracetui.otel.otlp_proto import convert_protobuf, parse_protobuf  # noqa: E402

__all__ = ["DEFAULT_PORT", "MAX_BODY", "OtlpReceiver", "ReceiverStats"]

DEFAULT_PORT: Final = 4318
MAX_BODY: Final = 20 << 20
"""Largest request body accepted, before and after decompression (20 MiB)."""
QUEUE_BYTES: Final = 64 << 20
"""Bytes of lines waiting for `on_lines` before requests are refused with 503."""
MAX_READING: Final = 64
"""Requests whose bodies are read at the same time before new ones get 429."""
RETRY_AFTER: Final = "1"
TRACES_PATH: Final = "/v1/traces"
PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
_CHUNK: Final = 1 << 16

OnLines = Callable[[list[bytes], str], None]


class ReceiverStats:
    """Counters of a receiver (read from any thread; written by the receiver's threads)."""

    def __init__(self) -> None:
        self.requests = 0
        self.spans = 0
        self.lines = 0
        self.rejected_spans = 0
        self.bad_requests = 0
        self.refused = 0
        self.delivery_errors = 0

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"ReceiverStats({fields})"


class _Refused(Exception):
    def __init__(self, status: int, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry = retry


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class OtlpReceiver:
    """Receives OTLP/HTTP traces and hands their tracetui lines to `on_lines`.

    Args:
        host: address to listen on; loopback only unless `allow_remote` (OTLP has no auth here).
        port: TCP port (0 = any free port; see `port` after `start`).
        on_lines: called from one delivery thread with (complete lines, origin name such as
            `otlp:127.0.0.1:4318 peer 127.0.0.1:5555`); it may block to apply backpressure.
        max_body: request size cap in bytes (also applied after decompression).
        queue_bytes: bytes of lines waiting for `on_lines` before requests get 503.
        allow_remote: permit a non-loopback `host`.

    Raises:
        ValueError: `host` is not an IP address, or not loopback without `allow_remote`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        on_lines: OnLines | None = None,
        *,
        max_body: int = MAX_BODY,
        queue_bytes: int = QUEUE_BYTES,
        max_reading: int = MAX_READING,
        allow_remote: bool = False,
    ) -> None:
        host = {"localhost": "127.0.0.1"}.get(host, host)
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address") from None
        if not addr.is_loopback and not allow_remote:
            raise ValueError(
                f"refusing to listen on {host}, which is not a loopback address (the receiver "
                "has no authentication; run a Collector or an SSH tunnel to reach it)"
            )
        self.host = str(addr)
        self._port = port
        self.on_lines: OnLines = on_lines if on_lines is not None else (lambda lines, origin: None)
        self.max_body = max_body
        self.queue_bytes = queue_bytes
        self.max_reading = max_reading
        self.stats = ReceiverStats()
        self._reading = 0
        self._cond = threading.Condition()
        self._queue: deque[tuple[list[bytes], str, int]] = deque()
        self._queued = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._delivery: threading.Thread | None = None
        self._stopping = False
        self._started = False

    # ---- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port listened on (the real one once started, also when asked for port 0)."""
        return self._port

    @property
    def address(self) -> str:
        """`host:port` as shown in origin names (`[::1]:4318` for IPv6)."""
        return f"{_format_host(self.host)}:{self._port}"

    @property
    def endpoint(self) -> str:
        """The URL to give an OTLP/HTTP exporter as `OTEL_EXPORTER_OTLP_ENDPOINT`."""
        return f"http://{self.address}"

    @property
    def queued_bytes(self) -> int:
        """Bytes of lines waiting for `on_lines`."""
        with self._cond:
            return self._queued

    def start(self) -> None:
        """Bind and serve in a background thread; returns once listening.

        Raises:
            OSError: the address cannot be bound (port in use …).
        """
        if self._started:
            return
        self._started = True
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failure), name="tracetui-otlp", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]
        self._delivery = threading.Thread(
            target=self._deliver, name="tracetui-otlp-deliver", daemon=True
        )
        self._delivery.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, deliver what was already accepted, and end the threads; idempotent."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
            thread.join(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._delivery is not None:
            self._delivery.join(timeout)

    def __enter__(self) -> OtlpReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._bind())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _bind(self) -> None:
        app = web.Application(client_max_size=self.max_body + 1)
        app.router.add_post(TRACES_PATH, self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        if server is not None and isinstance(server, asyncio.base_events.Server):
            self._port = server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        asyncio.get_running_loop().call_soon(asyncio.get_running_loop().stop)

    # ---- requests ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ctype = request.content_type
        is_json = ctype == JSON
        self.stats.requests += 1
        try:
            if ctype not in (PROTOBUF, JSON):
                raise _Refused(
                    415, f"unsupported content type {ctype!r}: send {PROTOBUF} or {JSON}"
                )
            encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("gzip", "identity", ""):
                raise _Refused(415, f"unsupported content encoding {encoding!r}: use gzip or none")
            if self.queued_bytes >= self.queue_bytes:
                raise _Refused(503, "tracetui is behind: retry later", retry=True)
            if self._reading >= self.max_reading:
                raise _Refused(429, "too many requests at once: retry later", retry=True)
            self._reading += 1
            try:
                body = await self._read(request)
            finally:
                self._reading -= 1
            if encoding == "gzip":
                body = self._gunzip(body)
            result = self._convert(body, is_json)
        except _Refused as refused:
            if refused.retry:
                self.stats.refused += 1
            else:
                self.stats.bad_requests += 1
            return self._error(refused, is_json)
        self.stats.spans += result.spans
        self.stats.rejected_spans += result.rejected
        if result.lines:
            self._enqueue(result.lines, self._origin(request))
        answer = ExportTraceServiceResponse()
        if result.rejected:
            answer.partial_success.CopyFrom(
                ExportTracePartialSuccess(
                    rejected_spans=result.rejected, error_message=result.message
                )
            )
        return self._reply(200, answer, is_json)

    async def _read(self, request: web.Request) -> bytes:
        length = request.content_length
        if length is not None and length > self.max_body:
            raise _Refused(413, f"request body of {length} bytes is over {self.max_body}")
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_body:
                raise _Refused(413, f"request body is over {self.max_body} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def _gunzip(self, body: bytes) -> bytes:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(body, self.max_body + 1)
        except zlib.error as exc:
            raise _Refused(400, f"body is not valid gzip: {exc}") from None
        if len(data) > self.max_body or inflater.unconsumed_tail:
            raise _Refused(413, f"decompressed body is over {self.max_body} bytes")
        if not inflater.eof:
            raise _Refused(400, "gzip body is truncated")
        return data

    def _convert(self, body: bytes, is_json: bool) -> Conversion:
        try:
            if is_json:
                return convert_request(body)
            return convert_protobuf(parse_protobuf(body))
        except OtlpError as exc:
            raise _Refused(400, str(exc)) from None

    def _origin(self, request: web.Request) -> str:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        who = f"{_format_host(peer[0])}:{peer[1]}" if isinstance(peer, tuple) else "?"
        return f"otlp:{self.address} peer {who}"

    def _error(self, refused: _Refused, is_json: bool) -> web.Response:
        status = RpcStatus(code=_RPC_CODES.get(refused.status, 2), message=refused.message)
        response = self._reply(refused.status, status, is_json)
        if refused.retry:
            response.headers["Retry-After"] = RETRY_AFTER
        return response

    @staticmethod
    def _reply(code: int, message: Message, is_json: bool) -> web.Response:
        if is_json:
            body = json_format.MessageToJson(message, indent=None).encode()
            return web.Response(status=code, body=body, content_type=JSON)
        return web.Response(status=code, body=message.SerializeToString(), content_type=PROTOBUF)

    # ---- delivery ------------------------------------------------------------------------------

    def _enqueue(self, lines: list[bytes], origin: str) -> None:
        size = sum(map(len, lines))
        with self._cond:
            self._queue.append((lines, origin, size))
            self._queued += size
            self._cond.notify_all()

    def _deliver(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                lines, origin, size = self._queue.popleft()
            try:
                self.on_lines(lines, origin)
                self.stats.lines += len(lines)
            except Exception as exc:
                self.stats.delivery_errors += 1
                if self.stats.delivery_errors == 1:
                    print(f"tracetui otlp: delivering lines failed: {exc!r}", file=sys.stderr)
            finally:
                with self._cond:
                    self._queued -= size


_RPC_CODES: Final = {400: 3, 413: 8, 415: 3, 429: 8, 503: 14}
"""HTTP status → google.rpc code (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE)."""
