"""The screen process: local rules judged by a helper process give the checker's own findings.

Every test runs the real helper (`python -c … tracetui.contracts.remote`) over real pipes and
compares with the same checker judging everything in process: the same findings, in the same
order, whatever the chunking, and whatever goes wrong with the helper.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_contracts_helpers import T0, ev

from tracetui.contracts import Checker, ContractSet, load_contracts
from tracetui.contracts.bulk import load_checked
from tracetui.contracts.remote import ScreenProcess
from tracetui.decode import LineDecoder
from tracetui.load import StreamLoader, load_paths
from tracetui.sources.live import LiveIngest
from tracetui.store import TraceStore

PRESETS = ["dopejar", "baggage", "correlation"]
NOWHERE = Path("/nonexistent-dir-for-tests")


def _trace(n: int, rng: random.Random) -> list[bytes]:
    """A trace whose spans break every local rule of the presets here and there."""
    out: list[bytes] = []
    root = f"alt_{n}_{n:04x}"
    kids = [f"{p}_{n}_{i:04x}" for i, p in enumerate(("foc", "rsn", "mem", "lrn"), 1)]
    bag = {"run_id": f"r{n}", "project": "p"}
    for i, kid in enumerate(kids):
        e = ev(
            kid,
            root,
            {"foc": "focus.route", "rsn": "reasoning.route", "mem": "memory.read"}.get(
                kid[:3], "learning.pattern_match"
            ),
            ts=T0 + n + 0.5,
            agent={"name": "coder", "run_id": f"r{n}"},
            correlation_id=f"c{n}.{i}",
            parent_correlation_id=f"c{n}",
            baggage=dict(bag),
            signal_type="t",
            bundle="b",
            agents=[],
            strategy="s",
            reason="r",
            namespace="n",
            key="k",
            tier="t",
            pattern_code="P",
            confidence=0.5,
        )
        roll = rng.randrange(16)
        meta = e["metadata"]
        if roll == 0:
            meta.pop("strategy", None)
            meta.pop("namespace", None)
            meta.pop("signal_type", None)
            meta.pop("pattern_code", None)  # data.missing_key
        elif roll == 1:
            e["output_summary"] = "x" * rng.choice((100, 101, 300))
        elif roll == 2:
            e["trace_id"] = kid.replace("_", "-")  # id shape (and an orphaned id)
        elif roll == 3:
            e["hrm_layer"] = "stratosphere"
        elif roll == 4:
            e["metadata"] = "not an object"  # a type issue only the loader's decoder sees
        elif roll == 5:
            meta["agent"] = {"role": "no name"}  # agent context shape
        elif roll == 6:
            meta["agent_context"] = {"name": "x", "run_id": "y", "correlationId": "old"}
        elif roll == 7:
            meta["baggage"]["session_id"] = "s"  # leaked from the root
        elif roll == 8:
            del meta["parent_correlation_id"]
        elif roll == 9:
            e["duration_ms"] = rng.choice((-1, "slow"))
        elif roll == 10:
            del e["timestamp"]
        out.append(orjson.dumps(e))
    root_ev = ev(
        root,
        None,
        "altitude.transition",
        agent={"name": "coder", "run_id": f"r{n}"},
        correlation_id=f"c{n}",
        baggage={**bag, "session_id": "s"},
        from_level=1,
        to_level=2,
        reason="r",
    )
    out.append(orjson.dumps(root_ev))
    return out


HOSTILE = [
    b"not json at all",
    b"",
    b"   ",
    b'{"trace_id": "alt_1_1", "@tracetui:raw_ref": 3}',
    b'{"trace_id": "x"} {"trace_id": "y"}',
    b'{"trace_id": "alt_9_9", "metadata": {"baggage": {"session_id": "s"}}',
    b'{"hrm_layer": "memory", "operation": "memory.read", "status": "success"}',
    b"\xff\xfe broken utf-8",
    b'{"trace_id": "alt_1_7", "@tracetui:meta": 5}',  # a key only a decoder without identity reads
    b'{"trace_id": "alt_1_8", "\\u0040tracetui:meta": [1], "metadata": {}}',
]


def _file_lines(seed: int, traces: int = 40) -> list[bytes]:
    rng = random.Random(seed)
    lines: list[bytes] = []
    for n in range(traces):
        lines.extend(_trace(1_705_180_000 + n, rng))
        if rng.random() < 0.3:
            lines.append(rng.choice(HOSTILE))
    lines.append(lines[3])  # a duplicate id
    return lines


def _judge(data: bytes, cuts: list[int], contracts: ContractSet, screen: ScreenProcess | None):
    store = TraceStore()
    checker = Checker(contracts)
    checker.screen = screen

    def observe(change):  # type: ignore[no-untyped-def]
        checker.observe(store, change)

    loader = StreamLoader(store, "t.jsonl", screen=screen, on_change=observe)
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut > start:
            loader.feed(data[start:cut])
            start = cut
    loader.finish()
    checker.screen = None
    checker.finish(store)
    return [repr(f) for f in checker.all()], dict(checker.counts)


@pytest.fixture(scope="module")
def contracts() -> ContractSet:
    return load_contracts(PRESETS, NOWHERE)


@pytest.fixture(scope="module")
def shared_screen(contracts: ContractSet) -> Iterator[ScreenProcess]:
    screen = ScreenProcess(contracts)
    assert screen.wait_ready(), screen.reason
    yield screen
    screen.close()


def test_a_screened_load_finds_what_the_checker_finds_alone(
    contracts: ContractSet, shared_screen: ScreenProcess
) -> None:
    data = b"\n".join(_file_lines(1)) + b"\n"
    alone = _judge(data, [], contracts, None)
    before = shared_screen.judged
    screened = _judge(data, [len(data) // 3, len(data) // 2], contracts, shared_screen)
    assert shared_screen.working, shared_screen.reason
    assert shared_screen.judged == before + 3  # every batch was the helper's
    assert screened == alone
    rules = {line.split("rule='")[1].split("'")[0] for line in alone[0]}
    assert {
        "data.missing_key",
        "schema.summary_too_long",
        "schema.trace_id_shape",
        "schema.unknown_layer",
        "schema.wrong_type",
        "schema.missing_field",
        "schema.negative_duration",
        "schema.duplicate_id",
        "propagation.agent_context_shape",
        "propagation.deprecated_field",
        "propagation.missing_parent_correlation",
        "baggage.leaked",
    } <= rules


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10**6), cuts=st.lists(st.integers(0, 40_000), max_size=12))
def test_any_chunking_gives_the_same_findings(
    contracts: ContractSet, shared_screen: ScreenProcess, seed: int, cuts: list[int]
) -> None:
    data = b"\r\n".join(_file_lines(seed, 12)) if seed % 3 == 0 else b"\n".join(_file_lines(seed))
    before = shared_screen.judged
    assert _judge(data, cuts, contracts, shared_screen) == _judge(data, [], contracts, None)
    assert shared_screen.working, shared_screen.reason
    assert shared_screen.judged > before


def test_a_helper_killed_mid_load_leaves_the_checker_to_judge(contracts: ContractSet) -> None:
    data = b"\n".join(_file_lines(7)) + b"\n"
    screen = ScreenProcess(contracts)
    assert screen._proc is not None and screen.wait_ready()
    cuts = [len(data) // 3]
    pid = screen._proc.pid
    original = screen.feed

    def feed_then_kill(sid: int, chunk: bytes) -> None:
        original(sid, chunk)
        if screen.feed is not original:  # after the first chunk
            screen.feed = original  # type: ignore[method-assign]
            time.sleep(0.2)  # the helper answers for the first frame, then dies
            os.kill(pid, signal.SIGKILL)

    screen.feed = feed_then_kill  # type: ignore[method-assign]
    assert _judge(data, cuts, contracts, screen) == _judge(data, [], contracts, None)
    assert screen.reason is not None and "stopped" in screen.reason, screen.reason
    screen.close()


def test_a_helper_that_cannot_run_says_why_and_nothing_is_lost(
    contracts: ContractSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracetui.contracts.remote as remote

    monkeypatch.setattr(remote, "_BOOT", "import sys; print('no tracetui here', file=sys.stderr)")
    data = b"\n".join(_file_lines(3)) + b"\n"
    screen = ScreenProcess(contracts)
    assert _judge(data, [100], contracts, screen) == _judge(data, [], contracts, None)
    assert not screen.wait_ready()
    assert screen.reason is not None
    assert "exit status 0" in screen.reason and "no tracetui here" in screen.reason


def _direct(
    data: bytes, contracts: ContractSet, helper_sees: bytes | None = None, why: str = ""
) -> list[str]:
    """Decode and ingest `data` as one batch said to be the helper's frame 0 of `helper_sees`."""
    store = TraceStore()
    checker = Checker(contracts)
    origin = store.origin("t.jsonl")
    spans, rejected = LineDecoder().decode(data.split(b"\n")[:-1], 1, origin)
    screen = None
    if helper_sees is not None:
        screen = checker.screen = ScreenProcess(contracts)
        assert screen.wait_ready()
        sid = screen.open(origin)
        screen.feed(sid, helper_sees)
        screen.expect([(sid, 0, 0, len(spans), len(spans))])
    checker.observe(store, store.ingest(spans, rejected))
    checker.finish(store)
    if screen is not None:
        assert screen.reason is not None and why in screen.reason, screen.reason
        screen.close()
    return [repr(f) for f in checker.all()]


def test_frames_out_of_step_close_the_screen(contracts: ContractSet) -> None:
    data = b"\n".join(line for line in _file_lines(5) if line.startswith(b"{")) + b"\n"
    half = data[: data.index(b"\n", len(data) // 2) + 1]  # the helper sees fewer lines
    assert _direct(data, contracts, half, "spans there") == _direct(data, contracts)
    other = data.replace(b'"alt_', b'"alx_')  # as many lines, other ids
    assert _direct(data, contracts, other, "disagrees") == _direct(data, contracts)


def test_contracts_that_need_every_line_decoded_get_no_screen() -> None:
    assert Checker(load_contracts(["context"], NOWHERE)).start_screen() is None


def test_turned_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACETUI_SCREEN", "0")
    assert Checker(load_contracts(PRESETS, NOWHERE)).start_screen() is None


def test_load_checked_with_and_without_a_screen(
    tmp_path: Path, contracts: ContractSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACETUI_SCREEN", "1")  # up before the load starts
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(_file_lines(11)) + b"\n")
    results = []
    for screen in (True, False):
        checker = load_checked(TraceStore(), [str(path)], contracts, screen=screen)
        results.append([repr(f) for f in checker.all()])
        assert checker.screen is None  # stopped once loaded
    assert results[0] == results[1] and results[0]


def test_live_ingest_screens_the_first_read_then_closes_the_helper(
    tmp_path: Path, contracts: ContractSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACETUI_SCREEN", "1")  # the file counts as big
    path = tmp_path / "live.jsonl"
    path.write_bytes(b"\n".join(_file_lines(13, 300)) + b"\n")
    expected = sorted(_judge(path.read_bytes(), [], contracts, None)[0])
    plain = TraceStore()
    load_paths(plain, [str(path)])
    store = TraceStore()
    checker = Checker(contracts)
    screen = checker.start_screen()
    assert screen is not None
    late = "alt_1705189999_0001"

    def drain_until(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not done():
            assert time.monotonic() < deadline, "the file was not read"
            feed.wait(0.2)
            change = feed.drain(max_spans=97)  # batches cut inside frames
            if change.new:
                checker.observe(store, change)

    with LiveIngest([str(path)], store, follow=True, screen=screen) as feed:
        drain_until(lambda: len(store) == len(plain) and not feed.backlog)
        drain_until(lambda: screen.reason is not None)
        with path.open("ab") as fh:  # appended after the first read: judged in process
            fh.write(orjson.dumps(ev(late, None, "altitude.plan")) + b"\n")
        drain_until(lambda: late in store.by_id)
    checker.finish(store)
    assert screen.reason == "every big read is over"
    assert screen.judged > 0
    got = [f for f in checker.all() if f.trace_id != late]
    assert sorted(map(repr, got)) == expected
    assert {f.rule for f in checker.all() if f.trace_id == late} == {"data.missing_key"}


def test_check_command_gives_the_same_report_with_and_without_the_screen(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\n".join(_file_lines(17)) + b"\n")
    outs = []
    for flag in ("1", "0"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tracetui",
                "check",
                str(path),
                "--format",
                "json",
                *(arg for p in PRESETS for arg in ("--contract", p)),
            ],
            capture_output=True,
            env={**os.environ, "TRACETUI_SCREEN": flag},
            cwd=tmp_path,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    assert outs[0].count(b"\n") > 20


def test_a_line_the_helper_frames_away_does_not_stall_the_view(
    tmp_path: Path, contracts: ContractSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line of exactly the default cap before CRLF: the file sink (OTLP-sized cap) keeps it,
    a framer with the default cap would skip it. The verdict must come at once, not after the
    helper's patience runs out."""
    monkeypatch.setenv("TRACETUI_SCREEN", "1")
    from tracetui.framing import DEFAULT_LINE_CAP

    head = b'{"trace_id": "alt_1_1", "hrm_layer": "altitude", "input_summary": "'
    line = head + b"x" * (DEFAULT_LINE_CAP - len(head) - 2) + b'"}'
    assert len(line) == DEFAULT_LINE_CAP
    path = tmp_path / "wide.jsonl"
    path.write_bytes(line + b"\r\n")
    store = TraceStore()
    checker = Checker(contracts)
    screen = checker.start_screen()
    assert screen is not None
    started = time.monotonic()
    with LiveIngest([str(path)], store, follow=False, screen=screen) as feed:
        while len(store) < 1:
            assert time.monotonic() - started < 20, "the line was not read"
            feed.wait(0.2)
            change = feed.drain()
            if change.new:
                checker.observe(store, change)
    assert time.monotonic() - started < 20
    assert {f.rule for f in checker.all()} >= {"schema.summary_too_long"}
    checker.stop_screen()


def test_the_helper_ignores_a_tracetui_package_in_the_working_directory(
    tmp_path: Path, contracts: ContractSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "tracetui"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('the wrong tracetui')\n")
    monkeypatch.chdir(tmp_path)
    data = b"\n".join(_file_lines(19)) + b"\n"
    screen = ScreenProcess(contracts)
    assert screen.wait_ready(), screen.reason
    assert _judge(data, [len(data) // 2], contracts, screen) == _judge(data, [], contracts, None)
    assert screen.working, screen.reason
    assert screen.judged == 2
    screen.close()


def test_a_drain_before_the_file_is_open_keeps_the_screen(
    tmp_path: Path, contracts: ContractSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACETUI_SCREEN", "1")
    path = tmp_path / "later.jsonl"  # appears after the first drains
    store = TraceStore()
    checker = Checker(contracts)
    screen = checker.start_screen()
    assert screen is not None
    with LiveIngest([str(path)], store, follow=True, screen=screen, recheck=0.05) as feed:
        for _ in range(3):
            feed.drain()
        assert screen.working, screen.reason
        path.write_bytes(b"\n".join(_file_lines(23, 5)) + b"\n")
        deadline = time.monotonic() + 20
        while screen.working:
            assert time.monotonic() < deadline, "the screen was not closed after the read"
            feed.wait(0.1)
            change = feed.drain()
            if change.new:
                checker.observe(store, change)
    checker.finish(store)
    assert screen.reason == "every big read is over"
    assert len(store) > 0


def _judge_file(
    path: Path, data: bytes, contracts: ContractSet, screen: ScreenProcess, ino_shift: int = 0
) -> list[str]:
    """Load `data` as if read from `path` (which the helper reads itself)."""
    st = path.stat()
    store = TraceStore()
    checker = Checker(contracts)
    checker.screen = screen

    def observe(change):  # type: ignore[no-untyped-def]
        checker.observe(store, change)

    file = (str(path), st.st_dev, st.st_ino + ino_shift)
    loader = StreamLoader(store, str(path), screen=screen, on_change=observe, file=file)
    half = len(data) // 2
    for piece in (data[:half], data[half:]):
        loader.feed(piece)
    loader.finish()
    checker.screen = None
    checker.finish(store)
    return [repr(f) for f in checker.all()]


def test_the_helper_reads_a_regular_file_itself_and_notices_when_it_changed(
    tmp_path: Path, contracts: ContractSet
) -> None:
    data = b"\n".join(_file_lines(29)) + b"\n"
    path = tmp_path / "t.jsonl"
    path.write_bytes(data)
    expected = _judge(data, [], contracts, None)[0]
    screen = ScreenProcess(contracts)
    assert screen.wait_ready()
    assert _judge_file(path, data, contracts, screen) == expected
    assert screen.working, screen.reason
    assert screen.judged == 2
    screen.close()
    # The file on disk is no longer what the loader read: the helper stops, nothing is lost.
    path.write_bytes(data.replace(b'"alt_', b'"alx_'))
    screen = ScreenProcess(contracts)
    assert screen.wait_ready()
    assert _judge_file(path, data, contracts, screen) == expected
    assert screen.reason is not None and "changed while it was read" in screen.reason
    screen.close()
    path.write_bytes(data)
    screen = ScreenProcess(contracts)
    assert screen.wait_ready()
    assert _judge_file(path, data, contracts, screen, ino_shift=1) == expected
    assert screen.reason is not None and "no longer the file" in screen.reason
    screen.close()
