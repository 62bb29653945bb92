"""Foundation benchmark: load + filter + JSON output of a large trace, against jq in the same run.

    python tests/perf/bench_foundation.py [--events 1000000] [--repeat 3]

Figures printed:
- `tracetui tree --status error FILE --format json > /dev/null` vs
  `jq -c 'select(.status=="error")' FILE > /dev/null`: wall and CPU seconds (best of --repeat), and
  the ratio tracetui/jq (target ≤ 0.5).
- Store memory: resident bytes per event after loading FILE into a TraceStore (target ≤ 1,000),
  measured in a fresh subprocess as RSS after load minus RSS after import.
- Load throughput (events/s) in that subprocess.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_trace import generate  # noqa: E402

MEMORY_PROBE = r"""
import sys, time, gc
def rss():
    with open('/proc/self/statm') as fh:
        return int(fh.read().split()[1]) * 4096
from tracetui.store import TraceStore
from tracetui.load import load_paths
gc.collect()
before = rss()
t = time.perf_counter()
store = TraceStore(spool=True)
load_paths(store, [sys.argv[1]])
elapsed = time.perf_counter() - t
after = rss()
print(len(store), after - before, elapsed)
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run a command with stdout to /dev/null; (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run(cmd, stdout=sink, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--file", type=Path, default=None)
    args = parser.parse_args()

    path = args.file or HERE / "data" / f"bench_{args.events}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} …", flush=True)
        generate(path, args.events)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        lines = sum(1 for _ in fh)
    print(f"file: {path} — {lines:,} events, {size / lines:.0f} bytes/line")

    tracetui = [sys.executable, "-m", "tracetui"]
    ours_cmd = [*tracetui, "tree", "--status", "error", str(path), "--format", "json"]
    jq = shutil.which("jq")
    jq_cmd = [jq, "-c", 'select(.status=="error")', str(path)] if jq else None
    # Alternate the two commands so that a change in the machine's load hits both alike.
    ours_runs: list[tuple[float, float]] = []
    jq_runs: list[tuple[float, float]] = []
    for _ in range(args.repeat):
        ours_runs.append(timed(ours_cmd))
        if jq_cmd:
            jq_runs.append(timed(jq_cmd))
    ours = best(ours_runs)
    print(f"tracetui tree --status error --format json: wall {ours[0]:.2f}s  cpu {ours[1]:.2f}s")
    print(f"    runs (wall): {', '.join(f'{r[0]:.2f}' for r in ours_runs)}")
    if jq_runs:
        base = best(jq_runs)
        print(
            f"jq -c 'select(.status==\"error\")':          wall {base[0]:.2f}s  cpu {base[1]:.2f}s"
        )
        print(f"    runs (wall): {', '.join(f'{r[0]:.2f}' for r in jq_runs)}")
        print(
            f"ratio tracetui/jq (best of each): wall {ours[0] / base[0]:.2f}  "
            f"cpu {ours[1] / base[1]:.2f}  (target ≤ 0.50)"
        )
        mid_ours = statistics.median(r[0] for r in ours_runs)
        mid_jq = statistics.median(r[0] for r in jq_runs)
        print(f"ratio tracetui/jq (median of each, wall): {mid_ours / mid_jq:.2f}")
    else:
        print("jq not installed: no baseline (apt-get install jq)")

    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    events, grown, elapsed = int(out[0]), int(out[1]), float(out[2])
    print(
        f"store: {events:,} events resident, {grown / events:.0f} bytes/event (target ≤ 1,000); "
        f"load {elapsed:.2f}s = {events / elapsed:,.0f} events/s"
    )


if __name__ == "__main__":
    main()
