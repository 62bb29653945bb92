"""The details pane shows any span, whatever its time says."""

from __future__ import annotations

import pytest

from tracetui.decode import LineDecoder
from tracetui.store import TraceStore
from tracetui.tui.details import details_text


@pytest.mark.parametrize(
    "ts", [1e300, -1e300, 253_402_300_799, -62_135_596_800, "9999-12-31T23:59"]
)
def test_details_of_a_span_with_an_extreme_timestamp(ts: float | str) -> None:
    line = f'{{"trace_id":"f","hrm_layer":"rsn","operation":"x","timestamp":{ts!r}}}'
    spans, _ = LineDecoder().decode([line.replace("'", '"').encode()], 1)
    store = TraceStore()
    store.ingest(spans)
    text = details_text(spans[0], store).plain
    assert "timestamp" in text and "operation" in text


def test_details_survive_a_time_the_platform_cannot_show() -> None:
    spans, _ = LineDecoder().decode([b'{"trace_id":"f","operation":"x"}'], 1)
    spans[0].ts = 1e300  # as if a decoder had let it through
    store = TraceStore()
    store.ingest(spans)
    assert "timestamp" in details_text(spans[0], store).plain
