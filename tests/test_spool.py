"""The spool: a store that spools keeps only the index in memory and still gives every line back."""

from __future__ import annotations

from pathlib import Path

import orjson

from tracetui.load import load_paths
from tracetui.spool import Spool
from tracetui.store import TraceStore


def _line(i: int, parent: int | None) -> bytes:
    return orjson.dumps(
        {
            "trace_id": f"s{i}",
            "parent_id": None if parent is None else f"s{parent}",
            "input_summary": "é" * (i % 7) + f" #{i}",
            "metadata": {"agent": {"name": "planner", "labels": {"env": "dev"}}},
        }
    )


def test_spool_round_trips_lines_of_any_content(tmp_path: Path) -> None:
    spool = Spool()
    lines = [b"", b"{}", "ünïcödé".encode(), b"\x00\xff" * 1000]
    refs = spool.append(lines)
    refs += spool.append([b"later"])
    assert [spool.read(r) for r in refs] == [*lines, b"later"]
    spool.close()


def test_spooling_store_gives_back_every_line_exactly(tmp_path: Path) -> None:
    lines = [_line(i, None if i % 5 == 0 else i - 1) for i in range(3000)]
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    store = TraceStore(spool=True)
    load_paths(store, [str(path)])
    store.spool_lines()
    spans = list(store.events())
    assert all(s.raw_bytes == b"" and s.raw_ref >= 0 for s in spans)
    assert [s.raw for s in spans] == lines
    assert spans[7].fields()["input_summary"] == " #7"
    assert spans[9].fields()["input_summary"] == "éé #9"
    assert spans[8].agent == "planner" and spans[8].labels == ("env=dev",)


def test_new_lines_stay_in_memory_for_whoever_reads_the_change() -> None:
    from tracetui.decode import LineDecoder

    decoder = LineDecoder()
    store = TraceStore(spool=True)
    first, _ = decoder.decode([_line(1, None)], 1)
    change = store.ingest(first)
    assert change.new[0].raw_bytes == _line(1, None)
    second, _ = decoder.decode([_line(2, 1)], 2)
    store.ingest(second)
    assert first[0].raw_bytes == b"" and first[0].raw == _line(1, None)
    assert second[0].raw_bytes == _line(2, 1)
