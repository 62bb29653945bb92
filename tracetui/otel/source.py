"""The OTLP receiver as a live source: `otlp`, `otlp:PORT`, `otlp:HOST:PORT`, `otlp:[::1]:PORT`.

`OtlpSource` has the shape `LiveIngest` expects of a reader (a thread with `status`, `bind`,
`wake`, `close`): the receiver's lines go through one `LineSink` per peer, so they are framed,
decoded and handed over through the channel like socket lines, and a full channel slows the
receiver down, which then answers 503 + Retry-After until the consumer catches up.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

from tracetui.sources.channel import Channel, Status
from tracetui.sources.sink import LineSink
from tracetui.sources.spec import SourceError, SourceSpec, loopback_address

__all__ = ["DEFAULT_PORT", "OtlpSource", "parse_otlp"]

DEFAULT_PORT: Final = 4318
_MAX_PEERS: Final = 1024


def parse_otlp(spec: str) -> tuple[str, int]:
    """(loopback host, port) of `otlp`, `otlp:PORT`, `otlp:HOST:PORT` or `otlp:[::1]:PORT`.

    Raises:
        SourceError: a bad port, or an address that is not loopback.
    """
    rest = spec[len("otlp:") :] if spec.startswith("otlp:") else ""
    if spec != "otlp" and not spec.startswith("otlp:"):
        raise SourceError(f"{spec}: expected otlp, otlp:PORT or otlp:127.0.0.1:PORT")
    return loopback_address(
        spec,
        rest or str(DEFAULT_PORT),
        "otlp",
        "The OTLP receiver has no authentication: run an OpenTelemetry Collector next to "
        "tracetui, or an SSH tunnel, to bring remote traces in",
    )


class OtlpSource(threading.Thread):
    """An OTLP/HTTP receiver feeding a `LiveIngest` channel (needs `tracetui[otel]`).

    Raises:
        SourceError: from `bind`, when the extra is missing or the port cannot be bound.
    """

    def __init__(self, spec: SourceSpec, channel: Channel, stop: threading.Event) -> None:
        super().__init__(name=f"tracetui-otlp:{spec.text}", daemon=True)
        self.spec = spec
        self.channel = channel
        self.stop = stop
        self.status = Status(spec.text, "otlp", "listening")
        self._sinks: OrderedDict[str, LineSink] = OrderedDict()
        self._receiver: object | None = None

    def bind(self) -> None:
        """Start the receiver (on the caller's thread, so errors reach the user at once)."""
        if self._receiver is not None:
            return
        try:
            from tracetui.otel.receiver import OtlpReceiver
        except ImportError as exc:
            raise SourceError(f"{self.spec.text}: {exc}") from None
        receiver = OtlpReceiver(self.spec.host, self.spec.port, self._on_lines)
        try:
            receiver.start()
        except OSError as exc:
            raise SourceError(f"{self.spec.text}: cannot listen: {exc.strerror or exc}") from None
        self._receiver = receiver
        self.status.set("listening", "", address=receiver.address)

    def start(self) -> None:
        """Bind if not done yet, then run until the stop flag is set."""
        self.bind()
        super().start()

    def run(self) -> None:
        self.stop.wait()
        self.close()

    def wake(self) -> None:
        """Nothing to wake: `run` waits on the stop flag."""

    def close(self) -> None:
        """Stop the receiver (what it accepted is still delivered); idempotent."""
        receiver = self._receiver
        if receiver is not None:
            from tracetui.otel.receiver import OtlpReceiver

            assert isinstance(receiver, OtlpReceiver)
            receiver.stop()
        self.status.set("closed")
        self.channel.poke()

    @property
    def receiver(self) -> object | None:
        """The running `OtlpReceiver` (None before `bind`)."""
        return self._receiver

    def _on_lines(self, lines: list[bytes], origin: str) -> None:
        sink = self._sinks.get(origin)
        if sink is None:
            sink = self._sinks[origin] = LineSink(origin, self.channel, self.status, self.stop)
            self.status.add(producers=1)
            if len(self._sinks) > _MAX_PEERS:
                self._sinks.popitem(last=False)
                self.status.add(producers=-1)
        else:
            self._sinks.move_to_end(origin)
        sink.feed(b"".join(lines))
