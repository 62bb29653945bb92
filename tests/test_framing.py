"""The line framer all sources share: BOM, CRLF, blank lines, line cap, NUL runs, partial tails."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tracetui.framing import BOM, LineFramer


def frame_all(chunks: list[bytes], line_cap: int = 1 << 20) -> tuple[list[bytes], list[tuple]]:
    """Feed chunks then finish; all lines (numbered from 1) and issues as tuples."""
    framer = LineFramer(line_cap=line_cap)
    lines: list[bytes] = []
    issues: list[tuple] = []
    for chunk in [*chunks, None]:
        frame = framer.feed(chunk) if chunk is not None else framer.finish()
        assert frame.first_line_no == len(lines) + 1
        if frame.rest is not None:  # a decoder may read lines[1:] straight from the chunk
            data, start, end = frame.rest
            assert data[start:end] == b"\n".join(frame.lines[1:])
        lines.extend(frame.lines)
        issues.extend((i.kind, i.line_no, i.size) for i in frame.issues)
    return lines, issues


def test_partial_last_line_is_held_until_its_newline() -> None:
    framer = LineFramer()
    assert framer.feed(b'{"a":1}\n{"b"').lines == [b'{"a":1}']
    assert framer.pending_bytes == 4
    assert framer.feed(b":2").lines == []
    frame = framer.feed(b"}\n")
    assert (frame.first_line_no, frame.lines) == (2, [b'{"b":2}'])
    assert framer.finish().lines == []


def test_unfinished_last_line_counts_at_end_of_stream() -> None:
    assert frame_all([b"one\ntw", b"o"]) == ([b"one", b"two"], [])


def test_bom_only_at_stream_start_even_when_split() -> None:
    lines, _ = frame_all([BOM[:1], BOM[1:] + b"x\n" + BOM + b"y\n"])
    assert lines == [b"x", BOM + b"y"]


def test_crlf_and_blank_lines_keep_editor_line_numbers() -> None:
    lines, _ = frame_all([b"a\r\n\r\n\nb\r", b"\nc"])
    assert lines == [b"a", b"", b"", b"b", b"c"]


def test_oversize_line_is_skipped_to_its_end_and_reported_without_buffering() -> None:
    framer = LineFramer(line_cap=10)
    framer.feed(b"ok\n" + b"x" * 8)
    for _ in range(100):
        assert framer.feed(b"y" * 1000).lines == []
        assert framer.pending_bytes == 0  # never buffered whole
    frame = framer.feed(b"zz\nfine\n")
    assert frame.lines == [b"", b"fine"]
    assert [(i.kind, i.line_no) for i in frame.issues] == [("oversize", 2)]
    assert frame.issues[0].size >= 100_000


def test_nul_run_after_truncation_is_skipped_once_and_reported_once() -> None:
    lines, issues = frame_all([b"\0" * 5000, b"\0" * 3000 + b'{"a":1}\n{"b":2}\n'])
    assert lines == [b'{"a":1}', b'{"b":2}']
    assert issues == [("nul", 1, 8000)]


def test_whole_lines_of_a_chunk_are_handed_over_as_they_stand() -> None:
    framer = LineFramer()
    framer.feed(b'{"a"')
    chunk = b':1}\n{"b":2}\n{"c":3}\n{"d"'
    frame = framer.feed(chunk)
    assert frame.lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    assert frame.rest is not None and frame.rest[0] is chunk
    assert chunk[frame.rest[1] : frame.rest[2]] == b'{"b":2}\n{"c":3}'
    assert framer.feed(b'\r\n{"e":5}\r\n{"f":6}\n').rest is None  # CRs were removed


def test_numbering_can_start_mid_stream() -> None:
    framer = LineFramer(first_line_no=41, stream_start=False)
    frame = framer.feed(BOM + b"x\n")
    assert frame.first_line_no == 41
    assert frame.lines == [BOM + b"x"]  # a BOM is only special at the very start of a stream


TOKENS = st.sampled_from(
    [b'{"a":1}', b"\n", b"\r\n", b"\r", b"\0", b"\0\0\0", BOM, b"x" * 7, b"y" * 20, b" "]
)


@st.composite
def stream_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = b"".join(draw(st.lists(TOKENS, max_size=40)))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return data, chunks


@settings(max_examples=400, deadline=None)
@given(stream_and_cuts())
def test_any_split_into_chunks_yields_the_same_lines(case: tuple[bytes, list[bytes]]) -> None:
    data, chunks = case
    assert frame_all(chunks, line_cap=16) == frame_all([data], line_cap=16)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=20))
def test_lines_without_special_bytes_come_back_exactly(lines: list[bytes]) -> None:
    plain = [ln.replace(b"\r", b"").replace(b"\0", b"") for ln in lines]
    plain = [ln for ln in plain if not ln.startswith(BOM)]
    data = b"".join(ln + b"\n" for ln in plain)
    assert frame_all([data[i : i + 3] for i in range(0, len(data), 3)])[0] == plain


def test_oversized_lines_keep_their_head_for_the_preview() -> None:
    from tracetui.framing import HEAD_BYTES

    big = b'{"trace_id":"big","x":"' + b"y" * 3000 + b'"}'
    for chunks in ([big + b"\nok\n"], [big[:100], big[100:2000], big[2000:] + b"\nok\n"]):
        framer = LineFramer(line_cap=1024)
        issues = [i for c in chunks for i in framer.feed(c).issues]
        assert [(i.kind, i.line_no) for i in issues] == [("oversize", 1)]
        assert issues[0].head == big[:HEAD_BYTES]
