"""Contracts: declarative rules about traces, checked as events land.

Contract files (YAML, TOML or JSON) and built-in presets compile into a `ContractSet`; a `Checker`
applies it to a `TraceStore` batch by batch and keeps `Finding`s by span. The same engine serves
the TUI, `tracetui check` and `tracetui diff`. No Textual or Rich here.
"""

from tracetui.contracts.catalog import RULES
from tracetui.contracts.checker import Checker, check_all
from tracetui.contracts.findings import RANK, SEVERITIES, Finding, FindingDelta
from tracetui.contracts.loader import PRESETS, PROJECT_FILE, ContractSet, load_contracts
from tracetui.contracts.spec import ContractError

__all__ = [
    "PRESETS",
    "PROJECT_FILE",
    "RANK",
    "RULES",
    "SEVERITIES",
    "Checker",
    "ContractError",
    "ContractSet",
    "Finding",
    "FindingDelta",
    "check_all",
    "load_contracts",
]
