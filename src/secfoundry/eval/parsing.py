"""Answer extraction from model outputs.

Two families of rules live here:

* the *official* rules each benchmark's authors published (CTIBench's last-line letter and last
  ``CWE-\\d+``, CyberMetric's ``ANSWER: X``, SecEval's sorted letter set), re-implemented from
  their description so that scores match theirs;
* the *faith* rules (Foundation-Sec protocol): a *proper* extraction that only accepts the
  requested ``Answer: X`` format, and a *lenient* one that also accepts the common ways models
  state an answer anyway ("The correct answer is (B)", "**B**", a bare letter line, the exact
  option text).

All functions are pure and never raise on odd input (None/empty/garbage -> None).
"""

from __future__ import annotations

import re

LETTERS = "ABCD"

# --- multiple choice -----------------------------------------------------------------------

# "Answer: C", "answer:C", "ANSWER: **C**", "Answer: (C)", "Answer: [C]". Optional markdown
# around "Answer" itself ("**Answer:** C").
_PROPER = re.compile(r"(?i)\banswer\s*\**\s*[:：]\s*\**\s*[(\[]?\s*([A-Z])\b(?![-'’/])")


def _clean(text: str | None) -> str:
    return text if isinstance(text, str) else ""


def letter_proper(text: str | None, letters: str = LETTERS) -> str | None:
    """The letter of the last ``Answer: X`` statement (FAITH "proper" extraction)."""
    found = [m.group(1).upper() for m in _PROPER.finditer(_clean(text))]
    found = [f for f in found if f in letters]
    return found[-1] if found else None


_LENIENT_PATTERNS = [
    # "the correct answer is (B)", "the answer would be B", "correct option: B"
    re.compile(r"(?i)\b(?:correct|right|best|final)?\s*(?:answer|option|choice)\s+(?:is|would be|should be|=)\s*"
               r"[:：]?\s*\**\s*(?:option\s+|letter\s+)?[(\[]?\s*([A-Z])\b(?![-'’/])"),
    re.compile(r"(?i)\b(?:correct|right|best|final)\s+(?:answer|option|choice)\s*[:：]\s*\**\s*[(\[]?\s*([A-Z])\b(?![-'’/])"),
    # "I choose B", "I would select option C"
    re.compile(r"(?i)\b(?:choose|chose|select|pick)\s+(?:option\s+)?[(\[]?([A-Z])\b(?![-'’/])"),
]
# A line that is only a letter, maybe decorated: "B", "(B)", "B)", "B.", "**B**", "B) text", "Option B"
_LINE_LETTER = re.compile(r"^\s*(?:option\s+|choice\s+)?[*_`#>\s]*[(\[]?([A-Z])(?:[)\].:]|\*\*|\s*$)", re.I)


def letter_lenient(text: str | None, options: dict[str, str] | None = None,
                   letters: str = LETTERS) -> str | None:
    """FAITH "lenient" extraction: proper first, then common free-form ways of answering."""
    text = _clean(text)
    got = letter_proper(text, letters)
    if got:
        return got
    for pat in _LENIENT_PATTERNS:
        found = [m.group(1).upper() for m in pat.finditer(text)]
        found = [f for f in found if f in letters]
        if found:
            return found[-1]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # A decorated letter at the start of the first or the last line ("B) Process ...", "**C**").
    for line in (lines[:1] + lines[-1:]) if lines else []:
        m = _LINE_LETTER.match(line)
        if m and m.group(1).upper() in letters and (m.group(1).isupper() or len(line.strip()) <= 4):
            return m.group(1).upper()
    # The exact text of exactly one option.
    if options:
        low = text.lower()
        hits = [k for k, v in options.items() if v and len(v) > 3 and v.strip().lower() in low]
        if len(hits) == 1 and hits[0] in letters:
            return hits[0]
    # Last resort: the response is a single token that is a letter.
    stripped = text.strip().strip("*_.()[]` ")
    if len(stripped) == 1 and stripped.upper() in letters:
        return stripped.upper()
    return None


def first_letter(text: str | None, letters: str = LETTERS) -> str | None:
    """Base-model continuation after "Answer:": the first letter token (" B\\n\\nQuestion...")."""
    m = re.match(r"\s*[(\[]?([A-Z])\b", _clean(text))
    if m and m.group(1) in letters:
        return m.group(1)
    return None


def ctibench_mcq_letter(text: str | None) -> str | None:
    """CTIBench's own rule: the answer is on the last (non-empty) line of the response.

    The authors' formatter read the last line and took a leading "A)".."D)", a trailing letter,
    or the letter inside a trailing ``**X**``; everything else was collected by hand. We accept
    exactly those shapes (and "X" for an explicit refusal), otherwise None.
    """
    lines = [ln.rstrip() for ln in _clean(text).split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return None
    last = lines[-1].strip().strip("`").strip()
    m = re.match(r"^\**\s*([A-D])\)", last)
    if m:
        return m.group(1)
    core = last.rstrip(".").rstrip()
    if core.endswith("**"):
        core = core.rstrip("*").rstrip(".").rstrip()
    m = re.search(r"(?:^|[\s:*(\[])([A-DX])[)\]]?$", core)
    if m:
        return m.group(1)
    return None


def cybermetric_letter(text: str | None) -> str | None:
    """CyberMetric's rule: the first ``ANSWER: X`` (colon optional, any case)."""
    text = _clean(text)
    if not text.strip():
        return None
    m = re.search(r"ANSWER:?\s*([A-D])", text, re.IGNORECASE)
    return m.group(1).upper() if m else None


def seceval_letters(text: str | None) -> str:
    """SecEval's rule: drop "Answer:", then the sorted set of every A-D capital in the output."""
    text = _clean(text).replace("Answer:", "")
    return "".join(sorted(set(re.findall(r"[A-D]", text))))


def letter_set(text: str | None, letters: str = LETTERS) -> str | None:
    """Multi-answer FAITH extraction: the letters after the last "Answer:" ("A, C" -> "AC")."""
    text = _clean(text)
    ms = list(re.finditer(r"\b(?i:answers?)\s*\**\s*[:：]\s*\**\s*([A-Z](?:\s*(?:,|and|&)?\s*[A-Z])*)\b", text))
    if not ms:
        return None
    return _letters_of(ms[-1].group(1), letters)


def _letters_of(group: str, letters: str) -> str | None:
    """"A, C" / "B and D" / "CA" -> sorted letters ("AC", "BD", "AC")."""
    group = re.sub(r"(?i)\band\b", " ", group)
    got = sorted({c.upper() for c in group if c.isalpha() and c.upper() in letters})
    return "".join(got) or None


def leading_letter_set(text: str | None, letters: str = LETTERS) -> str | None:
    """Base-model continuation after "Answer:" for multi-answer questions: " AC\n..." -> "AC"."""
    m = re.match(r"\s*([A-Z](?:\s*(?:,|and|&)?\s*[A-Z])*)\b", _clean(text))
    return _letters_of(m.group(1), letters) if m else None


def letter_set_lenient(text: str | None, letters: str = LETTERS) -> str | None:
    got = letter_set(text, letters)
    if got:
        return got
    lines = [ln.strip() for ln in _clean(text).splitlines() if ln.strip()]
    if not lines:
        return None
    # A last line made only of letters and separators: "A, C", "**BD**", "A and D".
    last = re.sub(r"[*_`.()\[\]]", "", lines[-1])
    if re.fullmatch(r"\s*[A-Z](?:\s*(?:,|and|&|\s)?\s*[A-Z])*\s*", last):
        return _letters_of(last, letters)
    return None


# --- CWE, CVSS, ATT&CK, actors ------------------------------------------------------------

_CWE = re.compile(r"CWE-\d+")
_CWE_I = re.compile(r"(?i)\bCWE[-‐‑–\s]?(\d+)\b")


def last_cwe(text: str | None) -> str | None:
    """CTIBench RCM rule: the last ``CWE-\\d+`` in the response (case-sensitive, like theirs)."""
    found = _CWE.findall(_clean(text))
    return found[-1] if found else None


def all_cwes(text: str | None) -> list[str]:
    """Every CWE id mentioned (tolerant spelling: "cwe 79", "CWE–79"), in order, normalised."""
    return [f"CWE-{int(n)}" for n in _CWE_I.findall(_clean(text))]


_CVSS = re.compile(r"(?:CVSS:3\.[01]/)?AV:[A-Za-z]+/AC:[A-Za-z]+/PR:[A-Za-z]+/UI:[A-Za-z]+/S:[A-Za-z]+/"
                   r"C:[A-Za-z]+/I:[A-Za-z]+/A:[A-Za-z]+")


def cvss_vector(text: str | None) -> str | None:
    """The last CVSS v3 base vector in the text (CTIBench's rule), prefix kept when present."""
    found = _CVSS.findall(_clean(text))
    return found[-1] if found else None


_TECH = re.compile(r"\bT\d{4}(?:\.\d{3})?\b")


def attack_ids(text: str | None, *, main_only: bool = True, last_line: bool = True) -> set[str]:
    """ATT&CK technique ids. CTIBench-ATE asks for the main ids on the final line; sub-technique
    ids are folded into their parent when ``main_only``. Falls back to the whole text when the
    last line has none."""
    text = _clean(text)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    ids = _TECH.findall(lines[-1]) if (last_line and lines) else []
    if not ids:
        ids = _TECH.findall(text)
    if main_only:
        ids = [i.split(".")[0] for i in ids]
    return set(ids)


def gold_attack_ids(cell: str) -> set[str]:
    return {i.split(".")[0] for i in _TECH.findall(cell or "")}


_ACTOR_PREFIX = re.compile(r"(?i)^\s*(?:\*\*)?\s*(?:final\s+)?(?:answer|threat\s+actor|attribution|actor|"
                           r"apt\s+group|group|placeholder)\s*(?:name)?\s*(?:\*\*)?\s*[:：-]\s*")


def actor_name(text: str | None) -> str | None:
    """A threat-actor name from a free-form answer: the last non-empty line, stripped of
    "Threat actor:"-style labels, markdown and trailing punctuation. CTIBench collected these by
    hand; this is the automatic equivalent for generated answers."""
    lines = [ln.strip() for ln in _clean(text).splitlines() if ln.strip()]
    if not lines:
        return None
    name = _ACTOR_PREFIX.sub("", lines[-1])
    name = name.strip().strip("*_`\"'“”.").strip()
    return name or None
