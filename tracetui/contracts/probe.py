"""Targeted decoding: only the parts of a line the active rules read, in one pass per batch.

A contract set needs a handful of metadata keys (trace data, baggage, deprecated paths …) and maybe
the summaries. `ProbeLayout` builds, once per contract set, a msgspec Struct type holding exactly
those keys as `msgspec.Raw` (absent ones are `UNSET`), so a whole batch is parsed by one typed
`decode_lines` call that neither materialises the other keys nor the values it keeps: a value is
decoded only when a rule actually looks at it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec

UNSET: Final = msgspec.UNSET

Getter = Callable[[Any], Any]
"""Reads one metadata path from a probe's `metadata`; returns UNSET when absent."""

_decode = msgspec.json.decode


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


_HEAD: Final = dict[str, msgspec.Raw] | list[Any] | str | int | float | bool | None
"""How a "head" key (one whose inner keys rules test, e.g. `agent`) is kept: an object becomes
a dict of raw values, so its keys can be tested without decoding the values."""


def value_of(raw: Any) -> Any:
    """A kept value decoded: `Raw` parsed, a head's dict of `Raw` values parsed (UNSET stays)."""
    if raw is UNSET:
        return UNSET
    if isinstance(raw, dict):
        return {k: value_of(v) for k, v in raw.items()}
    if not isinstance(raw, msgspec.Raw):
        return raw
    try:
        return _decode(raw)
    except msgspec.MsgspecError:  # pragma: no cover - the line was valid JSON as a whole
        return UNSET


class ProbeLayout:
    """A Struct type with the metadata keys (and top-level fields) some rules need.

    Attributes:
        probe_type: the decoded type: `metadata` (a Struct of Raw keys) plus top-level fields.
        meta_type: the Struct type of `metadata`.
        attr: metadata key → attribute name on `meta_type`.
    """

    def __init__(
        self, paths: Iterable[str], top_fields: Iterable[str], dict_heads: Iterable[str] = ()
    ) -> None:
        keys: list[str] = []
        for path in paths:
            for key in self._keys_for(path):
                if key not in keys:
                    keys.append(key)
        self.attr = {key: f"k{i}" for i, key in enumerate(keys)}
        self.dict_heads = frozenset(k for k in dict_heads if k in self.attr)
        self.meta_type: type[msgspec.Struct] = msgspec.defstruct(
            "MetaProbe",
            [
                (name, _HEAD if key in self.dict_heads else msgspec.Raw, UNSET)
                for key, name in self.attr.items()
            ],
            rename={name: key for key, name in self.attr.items()},
            gc=False,
        )
        top = list(dict.fromkeys(top_fields))
        fields: list[tuple[str, Any, Any]] = [("metadata", self.meta_type | None, None)]
        fields.extend((name, Any, None) for name in top)
        self.probe_type: type[msgspec.Struct] = msgspec.defstruct("Probe", fields, gc=False)
        self.decoder = msgspec.json.Decoder(self.probe_type)
        generic = [("metadata", Any, None), *((n, Any, None) for n in top)]
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
        """A function reading `path` (decoded) from a probe's `metadata` (flat key first)."""
        flat = self.attr[path]
        splits: list[tuple[str, str]] = []
        dot = path.find(".")
        while dot >= 0:
            splits.append((self.attr[path[:dot]], path[dot + 1 :]))
            dot = path.find(".", dot + 1)

        def get(meta: Any) -> Any:
            value = getattr(meta, flat)
            if value is not UNSET:
                return value_of(value)
            for head, rest in splits:
                inner = getattr(meta, head)
                if inner is not UNSET:
                    found = lookup(value_of(inner), rest)
                    if found is not UNSET:
                        return found
            return UNSET

        return get

    def decode_batch(self, raws: list[bytes]) -> list[Any]:
        """Decode a batch of lines in one call (line by line if one of them does not fit)."""
        try:
            probes: list[Any] = self.decoder.decode_lines(b"\n".join(raws))
        except msgspec.MsgspecError:
            return [self.decode(raw) for raw in raws]
        if len(probes) != len(raws):  # pragma: no cover - a line held a raw newline
            return [self.decode(raw) for raw in raws]
        empty = self.empty_meta
        for probe in probes:
            if probe.metadata is None:
                probe.metadata = empty
        return probes

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

    def _keep(self, key: str, value: Any) -> Any:
        encode = msgspec.json.encode
        if key not in self.dict_heads:
            return msgspec.Raw(encode(value))
        if isinstance(value, dict):
            return {str(k): msgspec.Raw(encode(v)) for k, v in value.items()}
        return value

    def _lenient(self, raw: bytes) -> Any:
        try:
            loose: Any = self._generic.decode(raw)
        except msgspec.MsgspecError:
            return self.empty
        values = {f: getattr(loose, f) for f in loose.__struct_fields__ if f != "metadata"}
        meta = self.empty_meta
        if isinstance(loose.metadata, dict):
            kept = {
                key: self._keep(key, loose.metadata[key])
                for key in self.attr
                if key in loose.metadata
            }
            meta = self.meta_type(**{self.attr[k]: v for k, v in kept.items()})
        return self.probe_type(metadata=meta, **values)
