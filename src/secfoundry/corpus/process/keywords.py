"""Security keyword prefilter: the cheap, high-recall first stage of the relevance filter.

Terms come from ``secfoundry/data/security_keywords.txt`` (format documented at its top):
word-boundary matching on tokens (so "rat" never matches "pirate" and "XSS" never matches
"xss.js" only by accident of case), acronyms case-sensitive, multi-word phrases with hyphen or
space, weights per term, regexes for identifiers (CVE, CWE, ATT&CK, GHSA ...).

Score: weighted hits per 100 words, with a floor of 100 words so that one keyword in a
one-line snippet is not a 100% density. A document passes when it has ``min_score`` weighted
hits *and* a density of at least ``min_density`` (long general pages mention "password" once;
security pages keep mentioning their subject), or when it contains an identifier regex hit of
weight ≥ 3 (CVE, CWE, GHSA ...). Thresholds were chosen on whole documents (OWASP cheat sheets
vs Python docs, Wikipedia, speeches; see BENCHMARKS.md) for recall first.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from secfoundry.corpus.step import Decision, Step
from secfoundry.corpus.process.high_value import is_high_value
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError

TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9&+#]*")


def _tokens(term: str) -> tuple[str, ...]:
    return tuple(TOKEN_RE.findall(term))


class _BoundaryPattern:
    """``\\bCVE-...`` compiled as ``CVE-...`` with the leading word boundary checked per match.

    Python's ``re`` scans for a literal prefix with a fast search, but only when the pattern
    *starts* with it; a leading ``\\b`` disables that and the engine tries every position
    (measured: 0.11 s vs 0.005 s for the CVE pattern over 2,000 documents). A match found
    without the ``\\b`` is kept when the preceding character is not a word character, which is
    exactly what ``\\b`` before a word character means."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.inner = re.compile(pattern[2:])

    def findall(self, text: str) -> list[str]:
        out = []
        for m in self.inner.finditer(text):
            s = m.start()
            if s == 0 or not (text[s - 1].isalnum() or text[s - 1] == "_"):
                out.append(m.group(0))
        return out


def _top_level_alternation(pattern: str) -> bool:
    depth, i = 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":  # skip a character class (a "]" right after "[" or "[^" is literal)
            j = i + 1 + (pattern[i + 1:i + 2] == "^")
            j += pattern[j:j + 1] == "]"
            i = pattern.find("]", j) + 1 or len(pattern)
            continue
        depth += ch == "("
        depth -= ch == ")"
        if ch == "|" and depth == 0:
            return True
        i += 1
    return False


def _compile_fast(pattern: str):
    if (pattern.startswith("\\b") and len(pattern) > 2 and (pattern[2].isalnum() or pattern[2] == "_")
            and not _top_level_alternation(pattern)):
        re.compile(pattern)  # validate the pattern as written
        return _BoundaryPattern(pattern)
    return re.compile(pattern)


@dataclass
class KeywordList:
    # first token -> list of (token tuple, weight, term) ; two tables: case-sensitive / folded
    exact: dict[str, list[tuple[tuple[str, ...], float, str]]]
    folded: dict[str, list[tuple[tuple[str, ...], float, str]]]
    patterns: list[tuple[Any, float, str]]  # re.Pattern or _BoundaryPattern (both .findall)

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.exact.values()) + sum(len(v) for v in self.folded.values()) \
            + len(self.patterns)

    @classmethod
    def parse(cls, text: str, origin: str = "<keywords>") -> "KeywordList":
        exact: dict[str, list] = {}
        folded: dict[str, list] = {}
        patterns: list = []
        seen: set[str] = set()
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            term, _, w = line.partition("\t")
            term = term.strip()
            try:
                weight = float(w) if w.strip() else 1.0
            except ValueError as e:
                raise InputError(f"bad weight {w!r}", file=origin, row=n, field="weight") from e
            if term in seen:
                continue
            seen.add(term)
            if term.startswith("re:"):
                try:
                    patterns.append((_compile_fast(term[3:]), weight, term[3:]))
                except re.error as e:
                    raise InputError(f"bad regex: {e}", file=origin, row=n, field="term") from e
                continue
            toks = _tokens(term)
            if not toks:
                continue
            if any(c.isupper() for c in term):
                exact.setdefault(toks[0], []).append((toks, weight, term))
            else:
                low = tuple(t.lower() for t in toks)
                folded.setdefault(low[0], []).append((low, weight, term))
        for table in (exact, folded):  # longest phrase first, so it wins over its prefix
            for v in table.values():
                v.sort(key=lambda x: -len(x[0]))
        return cls(exact, folded, patterns)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "KeywordList":
        if path is None:
            return default_keywords()
        p = Path(path)
        return cls.parse(p.read_text(encoding="utf-8"), str(p))


@functools.lru_cache(maxsize=1)
def default_keywords() -> KeywordList:
    text = resources.files("secfoundry.data").joinpath("security_keywords.txt").read_text(encoding="utf-8")
    return KeywordList.parse(text, "secfoundry/data/security_keywords.txt")


@dataclass
class KeywordScore:
    words: int
    hits: dict[str, int]  # term -> count
    weighted: float
    density: float  # weighted hits per 100 words (floor 100 words)
    id_hit: bool  # a strong identifier (weight >= 3) matched

    @property
    def distinct(self) -> int:
        return len(self.hits)


def score_text(text: str, kw: KeywordList | None = None, max_chars: int = 200_000) -> KeywordScore:
    kw = kw or default_keywords()
    text = text[:max_chars]
    toks = TOKEN_RE.findall(text)
    low = list(map(str.lower, toks))
    hits: dict[str, int] = {}
    weighted = 0.0
    n = len(toks)
    # Only positions whose token starts some term can match: find those with set look-ups, then
    # walk them in order, skipping the tokens a matched phrase covered (as a token-by-token scan would).
    first_e = kw.exact.keys() & set(toks)
    first_f = kw.folded.keys() & set(low)
    starts = [i for i, (t, lt) in enumerate(zip(toks, low)) if t in first_e or lt in first_f] \
        if first_e or first_f else []
    nxt = 0
    for i in starts:
        if i < nxt:
            continue
        matched = 0
        for table, seq in ((kw.exact, toks), (kw.folded, low)):
            for phrase, w, term in table.get(seq[i], ()):
                k = len(phrase)
                if tuple(seq[i:i + k]) == phrase:
                    hits[term] = hits.get(term, 0) + 1
                    weighted += w
                    matched = max(matched, k)
                    break
        nxt = i + max(matched, 1)
    id_hit = False
    for pat, w, term in kw.patterns:
        c = len(pat.findall(text))
        if c:
            hits[term] = c
            weighted += w * min(c, 5)  # a list of 500 hashes is not 500x more relevant
            id_hit = id_hit or w >= 3
    density = 100.0 * weighted / max(n, 100)
    return KeywordScore(n, hits, round(weighted, 3), round(density, 3), id_hit)


@dataclass
class KeywordConfig:
    keywords_file: str | None = None  # default: the shipped list
    min_score: float = 1.0
    min_density: float = 1.0
    # Short documents carry too few words for density to mean much; the classifier is cheap on
    # them, so the prefilter lets them through and the classifier decides.
    defer_below_words: int = 80
    trust_high_value: bool = True  # high-value connector documents always pass
    extra_high_value: list[str] = field(default_factory=list)


class KeywordStep(Step):
    """Drops documents with (almost) no security vocabulary; annotates ``metadata['keywords']``."""

    name = "keywords"

    def __init__(self, config: KeywordConfig | None = None):
        self.config = config or KeywordConfig()
        self.kw = KeywordList.load(self.config.keywords_file)

    def passes(self, s: KeywordScore) -> bool:
        c = self.config
        return s.id_hit or (s.weighted >= c.min_score and s.density >= c.min_density)

    def apply(self, doc: Document) -> Decision:
        s = score_text(doc.text, self.kw)
        top = sorted(s.hits.items(), key=lambda kv: -kv[1])[:10]
        doc.metadata["keywords"] = {"score": s.weighted, "density": s.density, "distinct": s.distinct,
                                    "top": [t for t, _ in top]}
        if self.config.trust_high_value and is_high_value(doc.source, self.config.extra_high_value):
            return Decision(doc)
        if s.words < self.config.defer_below_words:
            doc.metadata["keywords"]["deferred"] = True
            return Decision(doc)
        if not self.passes(s):
            return Decision(None, f"keywords:{s.weighted:.1f}")
        return Decision(doc)
