"""Bulk loading: chunks read ahead by a helper thread, errors raised where the caller reads."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tracetui.decode import LineDecoder
from tracetui.framing import BOM, LineFramer
from tracetui.load import StreamLoader, load_paths, read_ahead
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


# ---- the fast paths against the line-by-line reference -----------------------------------------

TYPED = [
    b'{"trace_id":"a1","parent_id":null,"status":"ok"}',
    b'{"trace_id":"a2","parent_id":"a1","metadata":{"agent":{"name":"n","labels":{"k":"v"}}}}',
    b'{"trace_id":"a3"} {"trace_id":"a4"}',  # two values on a line
    b'{"trace_id":"a5",',  # an object broken over two lines ...
    b'"x":1}',  # ... its end
    b"   ",
    b'{"trace_id":"a7","\\u0040tracetui:agent":"evil"}',
    b'{"trace_id":"a8","operation":"caf\xc3\xa9"}',
    b'{"trace_id":"b2"}\r',
    b'{"trace_id":"b4","input_summary":"mail@example.com"}',
    b'{"trace_id":"c1","m":',  # right at one end only ...
    b'{"k":1}} {"trace_id":"c2"}',
    b'{"trace_id":"c3"} {"trace_id":"c4","m":{}',
    b"}",
]
"""Lines a batch decode of several lines may take whole (each decodes with the typed decoder)."""
HOSTILE = [
    b"",
    b'{"trace_id":"a6","@tracetui:flags":1}',
    b'{"trace_id":"a9","operation":"\xff"}',
    b'{"trace_id":"b1","duration_ms":"12ms"}',
    b"[1,2]",
    b'\x00\x00{"trace_id":"b3"}',
]
"""Lines that send the batch they are in down the line-by-line path."""


def _seen(store: TraceStore) -> list[tuple[object, ...]]:
    spans = [
        (s.line_no, s.trace_id, s.raw, s.flags, s.agent, s.labels, s.issues) for s in store.events()
    ]
    rejected = [(r.line_no, r.reason, r.preview) for r in store.rejected]
    return sorted(spans + rejected, key=lambda t: t[0])  # type: ignore[arg-type, return-value]


@settings(max_examples=150, deadline=None)
@example(lines=[TYPED[0]] * 3, hostile=[(2, HOSTILE[1])], cuts=[], bom=False)  # a key like ours
@example(lines=[TYPED[0], *TYPED[-4:-2], TYPED[0]], hostile=[], cuts=[], bom=False)  # `{` … `,`
@example(lines=[TYPED[0], *TYPED[-2:], TYPED[0]], hostile=[], cuts=[], bom=False)  # … `}` alone
@example(lines=[TYPED[0], TYPED[2], TYPED[5], TYPED[0]], hostile=[], cuts=[], bom=False)  # cancel
@given(
    lines=st.lists(st.sampled_from(TYPED), min_size=1, max_size=60),
    hostile=st.lists(st.tuples(st.integers(0, 60), st.sampled_from(HOSTILE)), max_size=2),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
    bom=st.booleans(),
)
def test_any_chunking_loads_what_the_lines_give_one_by_one(
    lines: list[bytes], hostile: list[tuple[int, bytes]], cuts: list[int], bom: bool
) -> None:
    """Whatever the lines and wherever the chunks are cut, the batch decodes (whole chunks of
    lines taken as they stand, the first line of each chunk apart) give exactly the spans, line
    numbers, raw bytes and rejections that decoding each framed line alone gives."""
    for at, line in hostile:
        lines.insert(at, line)
    data = (BOM if bom else b"") + b"\n".join(lines) + b"\n"
    reference = TraceStore()
    framer = LineFramer()
    framed = framer.feed(data).lines + framer.finish().lines
    decoder = LineDecoder()
    for number, line in enumerate(framed, 1):
        spans, rejected = decoder.decode([line], number)
        reference.ingest(spans, rejected)
    store = TraceStore()
    loader = StreamLoader(store, "t")
    bounds = sorted({c % (len(data) + 1) for c in cuts})
    for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True):
        loader.feed(data[a:b])
    loader.finish()
    assert _seen(store) == _seen(reference)
