"""An append-only spool of raw lines in an anonymous temporary file.

A store holding a million events would spend half its memory on the lines themselves, which views
need only for the few spans they show in full. Spooled spans keep a small reference instead and
read their line back with one `pread` when asked (the operating system's page cache keeps recent
reads cheap). The file is unlinked from the start, so it disappears with the process.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Final

LENGTH_BITS: Final = 24
"""Bits of a reference that hold the line's length (lines are capped at 1 MiB)."""


class Spool:
    """Append lines, read them back by reference. Appends come from one thread; reads from any."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="tracetui-spool-")  # noqa: SIM115 (lives with us)
        self._fd = self._file.fileno()
        self._size = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Bytes spooled so far."""
        return self._size

    def append(self, lines: list[bytes]) -> list[int]:
        """Write lines; return one reference per line (offset and length packed in an int)."""
        data = b"".join(lines)
        with self._lock:
            base = self._size
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._size += len(data)
        refs: list[int] = []
        offset = base
        for line in lines:
            size = len(line)
            refs.append((offset << LENGTH_BITS) | size)
            offset += size
        return refs

    def read(self, ref: int) -> bytes:
        """The line behind a reference."""
        length = ref & ((1 << LENGTH_BITS) - 1)
        return os.pread(self._fd, length, ref >> LENGTH_BITS)

    def close(self) -> None:
        """Release the file."""
        self._file.close()


_shared: Spool | None = None
_shared_lock = threading.Lock()


def shared_spool() -> Spool:
    """The process-wide spool (created on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Spool()
        return _shared
