"""Hostile CVE text: drop sentences addressed to a model and ids planted as answers.

A CVE description is attacker-written as often as not. Before any lookup, map-cwe and
predict-cvss remove (1) sentences that read as instructions to an AI system (``ttps_guard``'s
patterns plus "answer/respond/map ... CWE-N"), and (2) CWE ids written in the text, which are
never a signal (a description that names its CWE is rare and unverifiable; the weakness words
around it still count). The cleaned text is what every model sees, so an injected twin of a
clean description gets exactly the clean description's output.
"""

from __future__ import annotations

import re

from secfoundry.apps.intel import ttps_guard

_CWE_ANSWER = re.compile(
    r"(?i)\b(?:answer|respond|reply|output|return|map|classify|label|choose|select|pick|say|print)\b.{0,30}"
    r"\b(?:CWE[\s_-]?\d+|CVSS:3)"
    r"|\b(?:the\s+)?(?:correct|final|right|real)\s+(?:answer|cwe|mapping|vector|score)\s+is\b")
_CWE_ID = re.compile(r"(?i)\bCWE[\s_-]?\d{1,5}\b|\bNVD-CWE-(?:Other|noinfo)\b")
_SENT = re.compile(r"(?<=[.!?])\s+|\n+")


def is_injection(sentence: str) -> bool:
    return ttps_guard.is_instruction(sentence) or bool(_CWE_ANSWER.search(sentence))


def clean_description(text: str) -> tuple[str, list[str]]:
    """(text the models see, sentences dropped as instructions)."""
    kept, dropped = [], []
    for s in _SENT.split(text or ""):
        if not s.strip():
            continue
        (dropped if is_injection(s) else kept).append(s.strip())
    clean = _CWE_ID.sub(" ", " ".join(kept))
    return " ".join(clean.split()), dropped
