"""The one sanitizer for untrusted text: every string from a trace passes through here before it is
shown, so escape sequences, bidi overrides and other invisible characters appear as visible escapes
(`\\x1b`, `\\u202e`) instead of acting on the terminal.
"""

from __future__ import annotations

import functools

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


@functools.lru_cache(maxsize=8192)
def _sanitize_cached(text: str) -> str:
    return "".join(map(_escape_char, text))


def sanitize(text: str) -> str:
    """Return `text` with every non-printable character replaced by a visible escape.

    Printable text (the common case) is returned unchanged; a backslash is only doubled when the
    text also holds something that had to be escaped, so ordinary paths stay readable.
    """
    if text.isprintable():
        return text
    if len(text) > 4096:
        return "".join(map(_escape_char, text))
    return _sanitize_cached(text)


def preview_bytes(data: bytes, limit: int = 120) -> str:
    """An escaped, length-limited preview of raw bytes (invalid UTF-8 shown as `\\xNN`)."""
    head = data[: limit * 4].decode("utf-8", errors="surrogateescape")
    text = sanitize(head)
    if len(text) > limit or len(data) > limit * 4:
        text = text[:limit] + "…"
    return text
