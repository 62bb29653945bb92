"""Targeted decoding: only the parts of a line the active rules read.

A contract set needs a handful of metadata keys (trace data, baggage, deprecated paths …) and maybe
the summaries. `ProbeLayout` builds, once per contract set, a msgspec Struct type holding exactly
those keys (absent ones are `UNSET`), so each line is decoded by one typed decoder that skips
everything else without materialising it — several times cheaper than decoding the metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec

UNSET: Final = msgspec.UNSET

Getter = Callable[[Any], Any]
"""Reads one metadata path from a decoded probe's `metadata`; returns UNSET when absent."""


def lookup(obj: Any, path: str) -> Any:
    """The value at a dotted path in a metadata dict; a flat dotted key (`flujo.step.id`) wins.

    Returns UNSET when absent.
    """
    if not isinstance(obj, dict):
        return UNSET
    if path in obj:
        return obj[path]
    start = 0
    while True:
        dot = path.find(".", start)
        if dot < 0:
            return UNSET
        inner = obj.get(path[:dot])
        if isinstance(inner, dict):
            found = lookup(inner, path[dot + 1 :])
            if found is not UNSET:
                return found
        start = dot + 1


class ProbeLayout:
    """A Struct type with the metadata keys (and top-level fields) some rules need.

    Attributes:
        probe_type: the decoded type: `metadata` (a Struct of the keys) plus top-level fields.
        meta_type: the Struct type of `metadata`.
        attr: metadata key → attribute name on `meta_type`.
    """

    def __init__(self, paths: Iterable[str], top_fields: Iterable[str]) -> None:
        keys: list[str] = []
        for path in paths:
            for key in self._keys_for(path):
                if key not in keys:
                    keys.append(key)
        self.attr = {key: f"k{i}" for i, key in enumerate(keys)}
        self.meta_type: type[msgspec.Struct] = msgspec.defstruct(
            "MetaProbe",
            [(name, Any, UNSET) for name in self.attr.values()],
            rename={name: key for key, name in self.attr.items()},
            gc=False,
        )
        fields: list[tuple[str, Any, Any]] = [("metadata", self.meta_type | None, None)]
        fields.extend((name, Any, None) for name in dict.fromkeys(top_fields))
        self.probe_type: type[msgspec.Struct] = msgspec.defstruct("Probe", fields, gc=False)
        self.decoder = msgspec.json.Decoder(self.probe_type)
        generic = [("metadata", Any, None), *((n, Any, None) for n in dict.fromkeys(top_fields))]
        self._generic = msgspec.json.Decoder(msgspec.defstruct("AnyProbe", generic, gc=False))
        self.empty_meta = self.meta_type()
        self.empty = self.probe_type(metadata=self.empty_meta)

    @staticmethod
    def _keys_for(path: str) -> list[str]:
        keys = [path]
        dot = path.find(".")
        while dot >= 0:
            keys.append(path[:dot])
            dot = path.find(".", dot + 1)
        return keys

    def getter(self, path: str) -> Getter:
        """A function reading `path` from a decoded `metadata` Struct (flat key first)."""
        flat = self.attr[path]
        splits = []
        dot = path.find(".")
        while dot >= 0:
            splits.append((self.attr[path[:dot]], path[dot + 1 :]))
            dot = path.find(".", dot + 1)
        if not splits:

            def get_flat(meta: Any) -> Any:
                return getattr(meta, flat)

            return get_flat

        def get(meta: Any) -> Any:
            value = getattr(meta, flat)
            if value is not UNSET:
                return value
            for head, rest in splits:
                found = lookup(getattr(meta, head), rest)
                if found is not UNSET:
                    return found
            return UNSET

        return get

    def decode(self, raw: bytes) -> Any:
        """Decode one line; metadata that is not an object reads as empty."""
        try:
            probe: Any = self.decoder.decode(raw)
        except msgspec.ValidationError:
            return self._lenient(raw)
        except msgspec.DecodeError:
            return self.empty
        if probe.metadata is None:
            probe.metadata = self.empty_meta
        return probe

    def _lenient(self, raw: bytes) -> Any:
        try:
            loose: Any = self._generic.decode(raw)
        except msgspec.MsgspecError:
            return self.empty
        values = {f: getattr(loose, f) for f in loose.__struct_fields__ if f != "metadata"}
        meta = self.empty_meta
        if isinstance(loose.metadata, dict):
            try:
                meta = msgspec.convert(loose.metadata, self.meta_type, from_attributes=False)
            except msgspec.ValidationError:
                meta = self.empty_meta
        return self.probe_type(metadata=meta, **values)
