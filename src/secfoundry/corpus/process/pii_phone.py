"""Phone numbers for the PII step: shape candidates, checked with Google's libphonenumber.

A cheap pattern finds digit groups that could be a phone number (7–15 digits with separators,
``+``/``00`` international prefixes, ``(0)`` trunk notation, ``x123`` extensions); the
``phonenumbers`` package (the maintained Python port of libphonenumber, which Presidio's phone
recogniser uses too) then decides whether it is a *possible* number: international numbers by
their country code, numbers with a national trunk ``0`` in one of the common numbering plans,
the rest as North American numbers. Bare digit runs without separators or a ``+`` count only
when a phone cue (call, phone, text, message, reach ...) stands in the 40 characters before
them: in security text they are ids, counters and timestamps far more often than phone numbers. Indicators (IPs, versions, dates) are
protected by the caller.
"""

from __future__ import annotations

import re

CAND_RE = re.compile(
    r"(?:(?<=\\[nrt])|(?<![\w.+/@:-]))(?:\+|00)?(?:\(\+?\d{1,4}\)|\d)[\d .()-]{4,24}\d"
    r"(?:\s?(?:x|ext\.?|extension)\s?\d{1,6})?(?![\w/@]|-\d|\.\d)")
_EXT_RE = re.compile(r"\s?(?:x|ext\.?|extension)\s?\d{1,6}$")
CUE_RE = re.compile(r"\b(?:call|phone|tel|mobile|cell|fax|text|sms|whatsapp|message[sd]?|reach|dial|number)\b", re.I)
HEX_BYTE_RE = re.compile(r"(?<![\w])(?=\d?[a-f])[0-9a-f]{2}(?![\w])|<[0-9a-f]{2}>")
TRUNK_REGIONS = ("GB", "DE", "FR", "NL", "IT", "ES", "AU", "BE", "CH", "AT", "SE", "IN", "JP")


def _possible(num: str, regions: tuple[str | None, ...]) -> bool:
    import phonenumbers

    for region in regions:
        try:
            p = phonenumbers.parse(num, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(p):
            return True
    return False


def phone_spans(text: str) -> list[tuple[int, int]]:
    out = []
    for m in CAND_RE.finditer(text):
        s = m.group(0).rstrip(" .-(")
        core = _EXT_RE.sub("", s)
        digits = re.sub(r"\D", "", core)
        intl = core.startswith(("+", "00", "(+"))
        if not 7 <= len(digits) <= 15:
            continue
        groups = re.findall(r"\d+", core)
        if len(groups) == 1 and not intl and not (len(digits) in (10, 11) and CUE_RE.search(text, max(0, m.start() - 40), m.start())):
            continue  # a bare digit run: ids and counters unless a phone cue precedes it (module docstring)
        if not intl and len(groups) > 1 and (max(map(len, groups)) > 8 or sum(len(g) == 1 for g in groups[1:]) > 0):
            continue
        if sum(len(g) <= 1 for g in groups) > 2:
            continue
        if intl:
            num = "+" + core[2:] if core.startswith("00") else core
            if num.startswith("(+"):
                num = "+" + num[2:].replace(")", " ", 1)
            ok = _possible(num, (None,))
        elif digits.startswith("0"):
            ok = len(groups[0]) >= 2 and _possible(core, TRUNK_REGIONS)
        else:
            lens = [len(g) for g in groups]
            ok = ((lens in ([3, 3, 4], [1, 3, 3, 4]) and (lens[0] == 3 or groups[0] == "1") or len(groups) == 1)
                  and _possible(core, ("US",)))
        if ok and not (HEX_BYTE_RE.search(text, max(0, m.start() - 15), m.start())
                       or HEX_BYTE_RE.search(text, m.start() + len(s), m.start() + len(s) + 15)):
            out.append((m.start(), m.start() + len(s)))  # (hex dumps: kernel "Code:" lines are not numbers)
    return out
