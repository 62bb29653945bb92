"""Snapshot files: the current view as `.jsonl` (exact lines), `.txt` (console tree), `.svg`.

Every file is written atomically (a temporary file in the same folder, fsync, `os.replace`), so a
reader never sees half a snapshot. This module imports no Textual; the SVG text comes from the
caller.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tracetui.formatting import tree_lines
from tracetui.model import Span
from tracetui.query import Selection
from tracetui.store import TraceStore


def atomic_write(path: Path, chunks: Iterable[bytes]) -> None:
    """Write `chunks` to `path` so that the file appears complete or not at all."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def snapshot_prefix(folder: Path, now: float | None = None, taken: Iterable[Path] = ()) -> Path:
    """`folder/tracetui-YYYYmmdd-HHMMSS`, with `-2`, `-3` … when that name is taken (by files,
    or by `taken`: snapshots still being written)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = folder / f"tracetui-{stamp}"
    busy = set(taken)
    candidate = base
    n = 1
    while candidate in busy or any(
        candidate.with_name(candidate.name + ext).exists() for ext in (".jsonl", ".txt")
    ):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def snapshot_paths(prefix: Path, svg: bool = True) -> list[Path]:
    """The files a snapshot with this prefix writes, in order."""
    exts = (".jsonl", ".txt", ".svg") if svg else (".jsonl", ".txt")
    return [prefix.with_name(prefix.name + ext) for ext in exts]


def text_lines(store: TraceStore, selection: Selection) -> Iterator[bytes]:
    """The `.txt` file's lines (the console tree of `tracetui tree`), encoded."""
    for line in tree_lines(store, selection):
        yield line.encode("utf-8", "surrogateescape") + b"\n"


def write_files(
    prefix: Path, jsonl: Iterable[bytes], txt: Iterable[bytes], svg: str | None = None
) -> list[Path]:
    """Write the snapshot files from their contents, each atomically; return the paths.

    Reads nothing from a store, so a worker thread can run it over contents gathered on the
    thread that owns the store.
    """
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = snapshot_paths(prefix, svg is not None)
    atomic_write(paths[0], jsonl)
    atomic_write(paths[1], txt)
    if svg is not None:
        atomic_write(paths[2], [svg.encode("utf-8")])
    return paths


def write_snapshot(
    prefix: Path,
    store: TraceStore,
    selection: Selection,
    spans: Iterable[Span],
    svg: str | None = None,
) -> list[Path]:
    """Write `prefix.jsonl`, `prefix.txt` and (when given) `prefix.svg`; return the paths.

    Args:
        prefix: path without extension.
        store: the store the selection reads.
        selection: what the view shows (for the `.txt` tree).
        spans: the events of the view, in arrival order (their raw lines go to `.jsonl`).
        svg: a screenshot, or None.
    """
    return write_files(
        prefix, (span.raw + b"\n" for span in spans), text_lines(store, selection), svg
    )
