"""Source specs: the one spelling of "where events come from", shared by the CLI, TUI and docs.

- `PATH` — a file, read from the start (or the end) and optionally followed like `tail -F`;
- `-` — standard input;
- `unix:PATH` — listen on a Unix domain socket;
- `tcp:PORT`, `tcp:127.0.0.1:PORT`, `tcp:[::1]:PORT` — listen on TCP loopback (never elsewhere:
  the protocol has no authentication).
"""

from __future__ import annotations

import ipaddress
from typing import Final, Literal

import msgspec

Kind = Literal["file", "stdin", "unix", "tcp", "otlp"]

LOOPBACK_NAMES: Final = {"localhost": "127.0.0.1", "ip6-localhost": "::1"}


class SourceError(Exception):
    """A source that cannot be used, with a message in the user's words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SourceSpec(msgspec.Struct, frozen=True):
    """A parsed source.

    Attributes:
        kind: `file`, `stdin`, `unix` or `tcp`.
        text: the spec as the user wrote it (used as the origin name of files and listeners).
        path: the file or socket path (empty for stdin and tcp).
        host: the loopback address to listen on (tcp only).
        port: the TCP port (0 = any free port; tcp only).
    """

    kind: Kind
    text: str
    path: str = ""
    host: str = ""
    port: int = 0


def parse_source(spec: str) -> SourceSpec:
    """Parse `PATH`, `-`, `unix:PATH`, `tcp:PORT`, `tcp:127.0.0.1:PORT` or `tcp:[::1]:PORT`.

    Raises:
        SourceError: for an empty spec, a bad port, or a TCP address that is not loopback.
    """
    if not spec:
        raise SourceError("empty source: give a file path, -, unix:PATH or tcp:PORT")
    if spec == "-":
        return SourceSpec("stdin", spec)
    if spec.startswith("unix:"):
        path = spec[len("unix:") :]
        if not path:
            raise SourceError(f"{spec}: missing socket path (e.g. unix:/run/user/1000/app.sock)")
        return SourceSpec("unix", spec, path=path)
    if spec.startswith("tcp:"):
        return _parse_tcp(spec)
    if spec == "otlp" or spec.startswith("otlp:"):
        from tracetui.otel.source import parse_otlp

        host, port = parse_otlp(spec)
        return SourceSpec("otlp", spec, host=host, port=port)
    return SourceSpec("file", spec, path=spec)


def _parse_tcp(spec: str) -> SourceSpec:
    host, port = loopback_address(
        spec,
        spec[len("tcp:") :],
        "tcp",
        "tracetui has no authentication, so it only listens on 127.0.0.1 or [::1] (use an SSH "
        "tunnel to watch a remote app)",
    )
    return SourceSpec("tcp", spec, host=host, port=port)


def loopback_address(spec: str, rest: str, scheme: str, why_local: str) -> tuple[str, int]:
    """(host, port) from the `PORT`, `HOST:PORT` or `[HOST]:PORT` after `scheme:`, loopback only.

    Raises:
        SourceError: a bad port, a host that is not an IP address, or one that is not loopback
            (`why_local` says why, in the message).
    """
    if rest.startswith("["):
        host, sep, port_text = rest[1:].partition("]:")
        if not sep:
            raise SourceError(f"{spec}: expected {scheme}:[::1]:PORT")
    elif ":" in rest:
        host, _, port_text = rest.rpartition(":")
    else:
        host, port_text = "127.0.0.1", rest
    try:
        port = int(port_text)
    except ValueError:
        raise SourceError(f"{spec}: {port_text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise SourceError(f"{spec}: port {port} is out of range (0–65535)")
    host = LOOPBACK_NAMES.get(host.lower(), host)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise SourceError(
            f"{spec}: {host!r} is not an IP address; use {scheme}:PORT, {scheme}:127.0.0.1:PORT "
            f"or {scheme}:[::1]:PORT"
        ) from None
    if not addr.is_loopback:
        raise SourceError(
            f"{spec}: refusing to listen on {host}, which is not a loopback address. {why_local}"
        )
    return str(addr), port
