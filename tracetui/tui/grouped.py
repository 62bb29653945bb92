"""The grouped view (`g`): layer → operation → spans, with counts, under the same filter.

Groups are kept incrementally (each batch appends its spans to their group); the flat rows are
rebuilt from the groups, which is cheap because operation groups start collapsed. It offers the
same row interface as `TreeView`, so the span tree widget renders either.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tracetui.model import LAYERS, Span
from tracetui.store import Change, TopEntry
from tracetui.tui.view import Group, NodeKey, Row, TreeView, key_of


class GroupedView:
    """Spans that match the filter, grouped by layer, then operation (arrival order inside)."""

    def __init__(self, tree: TreeView) -> None:
        self.tree = tree
        self.store = tree.store
        self.findings = tree.findings
        self.toggled: set[NodeKey] = set()
        self.version = 0
        self.findings_version = 0
        self._groups: dict[str, dict[str, list[Span]]] = {}
        self._rows: list[Row] = []
        self._index: dict[NodeKey, int] = {}
        self._stale = True
        self._dirty = True

    # ---- content -------------------------------------------------------------------------------

    def regroup(self) -> None:
        """Recompute every group from the store (filter change, retention)."""
        self._groups = {}
        for span in self.tree.matching_spans():
            self._add(span)
        self._stale = False
        self._dirty = True

    def _add(self, span: Span) -> None:
        layer = span.layer or "(none)"
        op = span.short_operation or "(no operation)"
        self._groups.setdefault(layer, {}).setdefault(op, []).append(span)

    def apply(self, change: Change) -> None:
        """Take in a batch the tree view has already seen."""
        if change.evicted or self._stale:
            self._stale = True
            self._dirty = True
            return
        is_match = self.tree.is_match
        for span in change.new:
            if is_match(span):
                self._add(span)
                self._dirty = True

    def invalidate(self) -> None:
        """Regroup on the next rebuild."""
        self._stale = True
        self._dirty = True

    def refresh_findings(self) -> None:
        self.findings_version += 1
        self.version += 1

    # ---- rows ----------------------------------------------------------------------------------

    def _layers(self) -> list[str]:
        known = [name for name in LAYERS if name in self._groups]
        return known + sorted(name for name in self._groups if name not in LAYERS)

    def rebuild(self) -> bool:
        """Bring the rows up to date; True when anything changed."""
        if self._stale:
            self.regroup()
        if not self._dirty:
            return False
        rows: list[Row] = []
        for layer in self._layers():
            ops = self._groups[layer]
            total = sum(len(spans) for spans in ops.values())
            group = Group(("layer", layer), layer, total, layer)
            rows.append((0, group))
            if not self.is_open(group):
                continue
            for op in sorted(ops, key=lambda name: (-len(ops[name]), name)):
                spans = ops[op]
                sub = Group(("op", layer, op), op, len(spans), layer)
                rows.append((1, sub))
                if self.is_open(sub):
                    rows.extend((2, span) for span in spans)
        self._rows = rows
        self._index = {key_of(node): i for i, (_, node) in enumerate(rows)}
        self._dirty = False
        self.version += 1
        return True

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, index: int) -> Row | None:
        return self._rows[index] if 0 <= index < len(self._rows) else None

    def rows(self, start: int, stop: int) -> Iterator[tuple[int, Row]]:
        for i in range(max(start, 0), min(stop, len(self._rows))):
            yield i, self._rows[i]

    def index_of(self, node: Any) -> int | None:
        return self._index.get(key_of(node))

    def is_open(self, node: Any) -> bool:
        if isinstance(node, Group):
            default = node.key[0] == "layer"
            return (node.key in self.toggled) != default
        return False

    def toggle(self, node: Any) -> None:
        if isinstance(node, Group):
            self.toggled ^= {node.key}
            self._dirty = True

    def set_open(self, node: Any, open_: bool) -> None:
        if self.is_open(node) != open_:
            self.toggle(node)

    def set_all(self, open_: bool) -> None:
        """Open or close every operation group (layers stay open)."""
        self.toggled = set()
        if open_:
            for layer, ops in self._groups.items():
                self.toggled.update(("op", layer, op) for op in ops)
        self._dirty = True

    @property
    def default_open(self) -> bool:
        return bool(self.toggled)

    def has_visible_children(self, node: Any) -> bool:
        return isinstance(node, Group) and node.count > 0

    def is_context(self, node: Any) -> bool:
        return False

    def parent_of(self, node: Any) -> TopEntry | Group | None:
        """The group a row sits in."""
        if isinstance(node, Group):
            if node.key[0] == "op":
                return Group(("layer", node.layer), node.layer, 0, node.layer)
            return None
        if isinstance(node, Span):
            layer = node.layer or "(none)"
            op = node.short_operation or "(no operation)"
            return Group(("op", layer, op), op, 0, layer)
        return None

    def reveal(self, span: Span) -> None:
        """Open the span's layer and operation groups."""
        op = self.parent_of(span)
        assert isinstance(op, Group)
        layer = self.parent_of(op)
        for group in (layer, op):
            if group is not None:
                self.set_open(group, True)

    def children_count(self, node: Any) -> int:
        return node.count if isinstance(node, Group) else 0
