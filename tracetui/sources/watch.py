"""Wake a file follower when its directory changes (watchfiles: inotify, or polling).

The follower watches the file's parent directory rather than the file, so that creation,
rename, replacement and deletion are all seen. When the directory itself is missing, the nearest
existing ancestor is watched until it appears. Events only *wake* the follower, which then looks
with `stat`; it also looks on a slow timer of its own, because inotify can coalesce or drop events.
"""

from __future__ import annotations

import logging
import os
import threading

import watchfiles

DEBOUNCE_MS = 50
POLL_DELAY_MS = 100

log = logging.getLogger(__name__)


def polling_forced(poll: bool) -> bool:
    """`--poll`, or `WATCHFILES_FORCE_POLLING` set as watchfiles reads it (not false/disable[d])."""
    env = os.environ.get("WATCHFILES_FORCE_POLLING", "")
    return poll or (bool(env) and env.lower() not in {"false", "disable", "disabled"})


def nearest_existing_dir(path: str) -> str:
    """`path` itself when it is a directory, else its nearest existing ancestor."""
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


class DirWatcher(threading.Thread):
    """Sets `wake` whenever something changes in `directory` (or, while it is missing, above it)."""

    def __init__(
        self, directory: str, wake: threading.Event, stop: threading.Event, *, poll: bool
    ) -> None:
        super().__init__(name=f"tracetui-watch:{directory}", daemon=True)
        self.directory = os.path.abspath(directory)
        self.wake = wake
        self.stop = stop
        self.poll = poll
        self.failures = 0

    def run(self) -> None:
        while not self.stop.is_set():
            target = nearest_existing_dir(self.directory)
            try:
                self._watch(target)
            except Exception as exc:  # a vanished directory, too many watches …: fall back to stat
                self.failures += 1
                log.debug("watching %s failed: %r", target, exc)
                self.stop.wait(min(30.0, 0.25 * 2 ** min(self.failures, 8)))

    def _watch(self, target: str) -> None:
        changes = watchfiles.watch(
            target,
            watch_filter=None,
            debounce=DEBOUNCE_MS,
            step=10,
            stop_event=self.stop,
            rust_timeout=1000,
            yield_on_timeout=True,
            raise_interrupt=False,
            force_polling=self.poll,
            poll_delay_ms=POLL_DELAY_MS,
            recursive=False,
        )
        self.wake.set()  # the watch starts now: anything that happened before must be looked at
        try:
            for batch in changes:
                self.failures = 0
                if batch:
                    self.wake.set()
                if self.stop.is_set():
                    return
                if not os.path.isdir(target) or (
                    target != self.directory and nearest_existing_dir(self.directory) != target
                ):
                    return  # the watched directory went away, or a nearer one appeared
        finally:
            changes.close()  # releases the inotify descriptors now rather than at the next GC
