"""Text shaping for the index: clean source markup, compact texts for the embedder, hashes."""

from __future__ import annotations

import hashlib
import re

_CITATION = re.compile(r"\s*\(Citation:[^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\((?:https?://|/)[^)\s]*\)")
_HTML_TAG = re.compile(r"</?(?:code|b|i|em|strong|p|br|ul|li|ol|a)(?:\s[^>]*)?>", re.I)
_WS = re.compile(r"\s+")
_FENCE = re.compile(r"```.*?```", re.S)


def clean(text: str | None) -> str:
    """Upstream description -> plain text: drop ATT&CK citations, keep link text, squash spaces."""
    if not text:
        return ""
    text = _CITATION.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    return _WS.sub(" ", text).strip()


def readable(text: str | None) -> str:
    """Like ``clean`` but keeps paragraphs (for display)."""
    if not text:
        return ""
    text = _MD_LINK.sub(r"\1", _CITATION.sub("", text))
    return re.sub(r"[ \t]+", " ", _HTML_TAG.sub("", text)).strip()


def compact(name: str, description: str, max_words: int = 60) -> str:
    """The short text a record is embedded as: its name, then the start of its description.

    The embedder truncates at ``max_seq_length`` tokens anyway; cutting words first keeps the
    tokenizer cheap and the batches short. Code fences are dropped (they embed as noise).
    """
    desc = clean(_FENCE.sub(" ", description or ""))
    words = desc.split()
    head = " ".join(words[:max_words])
    name = clean(name)
    if not head:
        return name
    return f"{name}: {head}" if name else head


def text_hash(text: str) -> str:
    """Stable key of an embedded text (the embedding cache is keyed by it)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()
