"""Hostile CVE text: drop sentences addressed to a model and ids planted as answers.

A CVE description is attacker-written as often as not. Before any lookup, map-cwe and
predict-cvss remove (1) sentences that read as instructions to an AI system ("ignore previous
instructions", "SYSTEM:", chat-template tokens, fake delimiters, "answer/respond/map ... CWE-N"),
and (2) CWE ids written in the text, which are
never a signal (a description that names its CWE is rare and unverifiable; the weakness words
around it still count). The cleaned text is what every model sees, so an injected twin of a
clean description gets exactly the clean description's output.
"""

from __future__ import annotations

import re

# Narrower than ttps_guard's report patterns: CVE prose says "bypass authentication on the system"
# and "a new task" (56 of 38,881 shared descriptions tripped the report patterns; none trip these).
_INSTRUCTION = re.compile(
    r"(?i)"
    r"\b(?:ignore|disregard|forget)\s+(?:(?:all|any|the|your|my|of|these|those)\s+)*(?:(?:previous|prior|above|"
    r"earlier|preceding|system|following|original)\s+)?(?:instructions?|prompts?|rules|guidelines|context|directions)\b"
    r"|\b(?:ignore|disregard|forget)\s+(?:(?:all|everything)\s+)?(?:above|before|previous(?:ly)?|prior|everything)\b"
    r"|\b(?:new|updated|real|actual|hidden)\s+(?:instructions|system\s+prompt)\b"
    r"|\byou\s+(?:are|must|should|will)\s+(?:now\s+)?(?:an?\s+)?(?:ai|assistant|language\s+model|answer|respond|"
    r"output|classify|say|print|return|only)\b"
    r"|\bas\s+an?\s+(?:ai|language\s+model|assistant)\b"
    r"|^\s*(?:system|assistant|user|developer)\s*[:>]"
    r"|<\|?/?(?:im_start|im_end|system|endoftext|eot_id|start_header_id|end_header_id)\|?>"
    r"|\b(?:end|begin|start)\s+of\s+(?:the\s+)?(?:report|document|input|untrusted|description)\b"
    r"|(?:-{3,}|={3,}|#{3,}|<{3,}|>{3,})\s*(?:end|begin|report|system|instructions?)\b"
    r"|</?\s*(?:report|document|untrusted|instructions?|system|description)\s*>")
_CWE_ANSWER = re.compile(
    r"(?i)\b(?:answer|respond|reply|output|return|classify|label|choose|select|pick|say|print|map\s+(?:this|it))"
    r"(?:\s+(?:with|only|as|this|it|is|the|correct|final|answer|cwe|id|vector|to|just|exactly))*\s*[:=]?\s*"
    r"(?:CWE[\s_-]?\d+|CVSS:3)"
    r"|\b(?:the\s+)?(?:correct|final|right|real)\s+(?:answer|cwe|mapping|vector|score)\s+is\b")
_CWE_ID = re.compile(r"(?i)\bCWE[\s_-]?\d{1,5}\b|\bNVD-CWE-(?:Other|noinfo)\b")
_SENT = re.compile(r"(?<=[.!?])\s+|\n+")


def is_injection(sentence: str) -> bool:
    return bool(_INSTRUCTION.search(sentence) or _CWE_ANSWER.search(sentence))


def clean_description(text: str) -> tuple[str, list[str]]:
    """(text the models see, sentences dropped as instructions)."""
    kept, dropped = [], []
    for s in _SENT.split(text or ""):
        if not s.strip():
            continue
        (dropped if is_injection(s) else kept).append(s.strip())
    clean = _CWE_ID.sub(" ", " ".join(kept))
    return " ".join(clean.split()), dropped
