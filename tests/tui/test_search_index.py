"""The search index finds exactly what `query.text_matcher` finds, without decoding lines."""

from __future__ import annotations

import random

import orjson
import pytest
from tui_helpers import BatchFeed, event, trace_tree

from tracetui.query import text_matcher
from tracetui.store import TraceStore
from tracetui.tui import search
from tracetui.tui.search import SearchIndex, indexable

TRICKY = [
    "Straße nach Köln",
    "STRASSE",
    "İstanbul ıi",
    "line one\nline two",
    "nul\x00inside",
    "tab\there",
    "ΣΊΣΥΦΟΣ σίσυφος",
    "[@click=app.quit] \x1b]52;c;AAAA\x07",
    "café",
    "",
]


def tricky_lines() -> list[bytes]:
    out = [line for n in range(6) for line in trace_tree(n, start=1000.0 + n)]
    for i, text in enumerate(TRICKY):
        out.append(event(f"t{i}", None, inp=text, out=TRICKY[-1 - i], op=f"op{i}"))
    out.append(  # JSON escapes in the line: a raw-bytes test would miss "été" and "quoted"
        b'{"trace_id":"escaped","parent_id":null,"timestamp":1.0,"hrm_layer":"system",'
        b'"operation":"sys.Caf\xc3\x89","input_summary":"\\u00e9t\\u00e9 \\"quoted\\""}'
    )
    odd = {"trace_id": "odd", "timestamp": 2.0, "input_summary": 42, "output_summary": ["refactor"]}
    out.append(orjson.dumps(odd | {"component": None, "operation": None}))
    return out


def needles(rng: random.Random, texts: list[str], count: int) -> list[str]:
    found = ["ss", "ß", "STRASSE", "i̇", "σ", "ς", "é", "É", '"quoted"', "refactor", "42", "#3"]
    for _ in range(count):
        text = rng.choice(texts)
        if text:
            a = rng.randrange(len(text))
            found.append(text[a : a + rng.randint(1, 6)])
    return [n for n in found if indexable(n)]


@pytest.mark.parametrize("chunk", [3, 1000])
def test_search_finds_exactly_what_the_matcher_finds(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "CHUNK", chunk)  # spans split over many chunks, or one
    store = TraceStore()
    feed = BatchFeed(store)
    index = SearchIndex()
    lines = tricky_lines()
    for i in range(0, len(lines), 5):  # batches, as ticks add them
        feed.push(lines[i : i + 5])
        change = feed.drain()
        index.catch_up(store, change.new[-1].seq + 1)
    spans = list(store.events())
    assert len(index) == len(spans)
    texts = [s.operation or "" for s in spans] + [s.component or "" for s in spans] + TRICKY
    for needle in needles(random.Random(7), texts, 300):
        match = text_matcher(needle)
        expected = [s.seq for s in spans if match(s)]
        assert sorted(index.search(needle)) == expected, needle


def test_separators_are_not_indexable() -> None:
    assert not indexable("a\nb")
    assert not indexable("a\x00b")
    assert not indexable("")
    assert indexable("refactor")


def test_catch_up_is_bounded_and_resumes_where_it_stopped() -> None:
    store = TraceStore()
    feed = BatchFeed(store)
    feed.push([line for n in range(10) for line in trace_tree(n, start=1000.0 + n)])
    change = feed.drain()
    end = change.new[-1].seq + 1
    index = SearchIndex()
    assert index.catch_up(store, end, limit=15) == 15
    assert index.next_seq == 15
    assert sorted(index.search("#9")) == []  # tree 9 not reached yet
    while index.next_seq < end:
        index.catch_up(store, end, limit=15)
    root9 = store.by_id["alt_9"].seq
    assert sorted(index.search("#9")) == [root9]


def test_prune_forgets_chunks_of_evicted_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "CHUNK", 8)
    store = TraceStore(max_events=12)
    feed = BatchFeed(store)
    index = SearchIndex()
    for n in range(10):
        feed.push(trace_tree(n, start=1000.0 + n))
        change = feed.drain()
        index.catch_up(store, change.new[-1].seq + 1)
        first = next(iter(store.events()))
        index.prune(first.seq)
    assert len(index) < 20
    assert store.by_id["alt_9"].seq in set(index.search("#9"))
