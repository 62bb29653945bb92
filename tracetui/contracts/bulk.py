"""Loading files and checking them: in one pass with a screen process for big inputs."""

from __future__ import annotations

from tracetui.contracts.checker import Checker
from tracetui.contracts.loader import ContractSet
from tracetui.contracts.remote import screen_wanted
from tracetui.load import RejectHook, input_bytes, load_paths
from tracetui.store import Change, TraceStore


def worth_screening(paths: list[str]) -> bool:
    """Whether the files are big enough to be checked as they load, with a screen process
    (see `screen_wanted`). Smaller ones load first and are judged after. Stdin (`-`) counts by
    its size when it is a file; a pipe, of unknown size, counts as small (a helper would make
    a short input slower)."""
    return screen_wanted(input_bytes(paths))


def load_checked(
    store: TraceStore,
    paths: list[str],
    contracts: ContractSet,
    on_reject: RejectHook | None = None,
    identity: bool = True,
    screen: bool | None = None,
) -> Checker:
    """Load files into the store and judge them against the contracts, then `finish`.

    `screen`: judge each batch as it lands with a screen process beside the load (None: when
    `worth_screening`, and the contracts allow it). Either way the findings are the same.

    Raises:
        OSError: when a file cannot be opened or read.
    """
    if screen is None:
        screen = worth_screening(paths)
    checker = Checker(contracts)
    helper = checker.start_screen() if screen else None
    if helper is None:
        load_paths(store, paths, on_reject, identity)
        checker.judge_loaded(store)
        return checker

    def observe(change: Change) -> None:
        checker.observe(store, change)

    try:
        load_paths(store, paths, on_reject, identity, screen=helper, on_change=observe)
    finally:
        checker.stop_screen()
    checker.finish(store)
    return checker
