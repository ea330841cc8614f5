"""Untrusted log text: how it may reach a model or a note.

Log fields (command lines, user agents, file names, messages) are written by whoever produced the
activity. They never reach a model as free text: a model only sees :func:`token` values
(executable names, host names reduced to a safe alphabet and length) and ids/names from the KB.
Notes quote untrusted values only inside code spans, with backticks and newlines removed.
"""

from __future__ import annotations

import re

_SAFE = re.compile(r"[^A-Za-z0-9._\-\\$@]")


def token(value: str, limit: int = 48) -> str:
    """A short identifier-like rendering of an untrusted value (spaces and punctuation dropped)."""
    return _SAFE.sub("", value or "")[:limit]


def quote(value: str, limit: int = 160) -> str:
    """Inline code span for Markdown; the content cannot close the span or start a new line."""
    v = (value or "").replace("`", "'").replace("\r", " ").replace("\n", " ").replace("|", "/")
    if len(v) > limit:
        v = v[:limit] + "…"
    return f"`{v}`"
