"""Bulk loading: chunks read ahead by a helper thread, errors raised where the caller reads."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from tracetui.load import load_paths, read_ahead
from tracetui.store import TraceStore


class FailingStream(io.RawIOBase):
    """Gives `good` chunks of data, then fails like a disk that went away."""

    def __init__(self, good: int) -> None:
        self.good = good

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.good == 0:
            raise OSError(5, "Input/output error")
        self.good -= 1
        return b'{"trace_id":"x"}\n' * 4


def test_chunks_arrive_in_order_and_whole(tmp_path: Path) -> None:
    data = b"".join(b'{"trace_id":"s%d"}\n' % i for i in range(20_000))
    path = tmp_path / "t.jsonl"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        assert b"".join(read_ahead(fh, size=1000)) == data


def test_a_read_error_reaches_the_caller_after_the_good_chunks() -> None:
    got: list[bytes] = []
    with pytest.raises(OSError, match="Input/output error"):
        for chunk in read_ahead(FailingStream(good=3), size=64):  # type: ignore[arg-type]
            got.append(chunk)
    assert len(got) == 3


def test_leaving_early_lets_the_reader_thread_end() -> None:
    stream = io.BytesIO(b"x" * 10_000)
    for _ in read_ahead(stream, size=10, depth=1):
        break
    for thread in threading.enumerate():
        if thread.name == "tracetui-read-ahead":
            thread.join(timeout=5)
            assert not thread.is_alive()


def test_load_paths_reads_every_line_of_a_multi_chunk_file(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    n = 60_000  # about 9 MB: more than two chunks
    with open(path, "wb") as out:
        for i in range(n):
            out.write(b'{"trace_id":"s%d","input_summary":"%s"}\n' % (i, b"p" * 120))
    store = TraceStore()
    load_paths(store, [str(path)])
    assert len(store) == n
    assert [store.get(0).line_no, store.get(n - 1).line_no] == [1, n]  # type: ignore[union-attr]
