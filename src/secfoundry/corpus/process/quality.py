"""Security-aware quality filters: degenerate and boilerplate text out, security records in.

Generic web filters (Gopher, C4, FineWeb) drop CVE records (short, full of ids and versions),
Sigma rules (symbol-heavy YAML), IOC lists (90% bullet lines, repeated structure) and logs
(repeated lines). Here each check runs on what it can judge:

* every check reads the *prose part* of a document (code blocks and tables removed), so code,
  rules and IOC tables never count as "symbols" or "repetition";
* documents are **protected** — no check can drop them — when they come from a high-value
  connector, are routed as ``record``/``rule``/``log``, or carry security identifiers (CVE,
  CWE, ATT&CK, GHSA ...); only a document with no text at all is dropped then;
* ``code`` documents get only the degenerate-repetition and emptiness checks.

``QualityStep.audit(doc)`` runs every check regardless of protection, which is what
``secfoundry corpus audit-filters`` reports.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import repeat
from dataclasses import dataclass, field

from secfoundry.corpus.step import Decision, Step
from secfoundry.corpus.process.high_value import is_high_value
from secfoundry.corpus.process.contenttype import ID_RE, route, strip_non_prose
from secfoundry.core.documents import Document

WORD_RE = re.compile(r"\w+", re.U)
SYMBOL_RE = re.compile(r"[^\w\s#*|\->`\[\]()]")
LOREM_RE = re.compile(r"\blorem ipsum\b|\bdolor sit amet\b|\bconsectetur adipiscing\b", re.I)
SPAM_RE = re.compile(
    r"\b(?:buy now|order now|click here|limited time offer|best price|cheap (?:viagra|cialis|pills)|"
    r"viagra|cialis|casino|online betting|payday loans?|weight loss pills|make money fast|work from home and earn|"
    r"100% free|act now|hot singles|porn|porno|escort service|replica watches)\b", re.I)
BOILERPLATE_LINE_RE = re.compile(
    r"(?:all rights reserved|cookie(?:s| policy| settings)|privacy policy|terms of (?:use|service)|"
    r"subscribe to (?:our|the) newsletter|sign up for|follow us on|share (?:on|this)|"
    r"javascript (?:is )?(?:disabled|required)|enable javascript|log ?in to (?:reply|comment)|"
    r"powered by \w+|skip to (?:main )?content|back to top|read more|leave a (?:reply|comment))", re.I)

# Literal gates for the three phrase regexes above: every match of a regex contains one of its
# literals (lower-cased), and ``literal in text.lower()`` runs at memchr speed, while the
# case-insensitive alternations cost a regex attempt at every position. Most documents contain
# none, so the regex runs only on the few that might match (tests/corpus/process keep the
# literal lists and the regexes in step).
LOREM_LITERALS = ("lorem ipsum", "dolor sit amet", "consectetur adipiscing")
SPAM_LITERALS = ("buy now", "order now", "click here", "limited time offer", "best price", "viagra", "cialis",
                 "cheap pills", "casino", "online betting", "payday loan", "weight loss pills", "make money fast",
                 "work from home and earn", "100% free", "act now", "hot singles", "porn", "escort service",
                 "replica watches")
BOILERPLATE_LITERALS = ("all rights reserved", "cookie", "privacy policy", "terms of use", "terms of service",
                        "subscribe to", "sign up for", "follow us on", "share on", "share this", "javascript",
                        "log in to", "login to", "powered by", "skip to", "back to top", "read more", "leave a")


def mentions_any(low: str, literals: tuple[str, ...]) -> bool:
    return any(lit in low for lit in literals)


@dataclass
class QualityConfig:
    min_words: int = 30  # prose documents with fewer words are dropped ...
    min_words_security: int = 8  # ... unless they show security evidence (classifier/keywords)
    max_dup_line_frac: float = 0.35  # share of lines that repeat an earlier line
    max_dup_line_char_frac: float = 0.35
    max_top_ngram_frac: float = 0.25  # chars covered by the most frequent word 3-gram
    max_symbol_ratio: float = 0.25  # non-alphanumeric, non-space chars in the prose part
    min_alpha_word_frac: float = 0.6  # words containing a letter
    min_mean_word_len: float = 2.5
    max_mean_word_len: float = 12.0
    max_boilerplate_line_frac: float = 0.4
    max_spam_hits: int = 4  # distinct spam phrases (a casino article names "casino" often)
    code_max_dup_line_frac: float = 0.6
    protect_high_value: bool = True
    protect_structured: bool = True  # record / rule / log content types
    protect_ids: bool = True  # documents with CVE/CWE/ATT&CK/GHSA ids
    extra_high_value: list[str] = field(default_factory=list)


@dataclass
class QualityReport:
    content_type: str
    protected: str  # why no check may drop it ("" when unprotected)
    failed: list[str]  # names of the checks that fire (before protection)

    @property
    def drop_reason(self) -> str | None:
        if not self.failed:
            return None
        if "empty" in self.failed:
            return "quality:empty"
        if self.protected:
            return None
        return f"quality:{self.failed[0]}"


def _dup_lines(lines: list[str]) -> tuple[float, float]:
    if not lines:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_n = dup_chars = 0
    total_chars = sum(len(x) for x in lines) or 1
    for ln in lines:
        if ln in seen:
            dup_n += 1
            dup_chars += len(ln)
        seen.add(ln)
    return dup_n / len(lines), dup_chars / total_chars


def _top_ngram_frac(words: list[str], n: int = 3) -> float:
    if len(words) < n + 10:
        return 0.0
    grams = Counter(zip(*(words[k:] for k in range(n))))  # the n-grams, in order
    gram, count = grams.most_common(1)[0]
    if count < 3:
        return 0.0
    total = sum(map(len, words)) or 1
    return count * sum(len(w) for w in gram) / total


class QualityStep(Step):
    name = "quality"

    CHECKS = ("empty", "too_short", "repetition_lines", "repetition_ngrams", "symbol_ratio",
              "alpha_words", "word_length", "lorem_ipsum", "spam", "boilerplate")

    def __init__(self, config: QualityConfig | None = None):
        self.config = config or QualityConfig()

    def protection(self, doc: Document, ctype: str) -> str:
        c = self.config
        if c.protect_high_value and is_high_value(doc.source, c.extra_high_value):
            return "high-value-source"
        if c.protect_structured and ctype in ("record", "rule", "log"):
            return f"content-type:{ctype}"
        if c.protect_ids and ID_RE.search(doc.text[:50000]):
            return "security-ids"
        return ""

    @staticmethod
    def _security_evidence(doc: Document) -> bool:
        """A short text is worth keeping when it is about security (as earlier steps measured)."""
        rel = doc.metadata.get("relevance")
        if isinstance(rel, (int, float)) and rel >= 0.5:
            return True
        kw = doc.metadata.get("keywords")
        if not isinstance(kw, dict):
            from secfoundry.corpus.process.keywords import score_text

            kw = {"score": score_text(doc.text).weighted}
        return kw.get("score", 0.0) >= 1.0

    def audit(self, doc: Document) -> QualityReport:
        """Every check that fires on ``doc``, and whether the document is protected."""
        c = self.config
        ctype = doc.metadata.get("content_type") or route(doc.text, doc.source, doc.metadata).content_type
        failed: list[str] = []
        text = doc.text
        if not text.strip():
            return QualityReport(ctype, self.protection(doc, ctype), ["empty"])
        prose, _ = strip_non_prose(text)
        lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
        words = WORD_RE.findall(prose)
        if ctype == "code":
            if _dup_lines(lines)[0] > c.code_max_dup_line_frac and len(lines) >= 10:
                failed.append("repetition_lines")
            return QualityReport(ctype, self.protection(doc, ctype), failed)

        n_words = len(WORD_RE.findall(text))
        if n_words < c.min_words and (n_words < c.min_words_security or not self._security_evidence(doc)):
            failed.append("too_short")
        plines = [ln.strip() for ln in prose.split("\n") if ln.strip()]
        dl, dc = _dup_lines(plines)
        if len(plines) >= 5 and (dl > c.max_dup_line_frac or dc > c.max_dup_line_char_frac):
            failed.append("repetition_lines")
        lw = list(map(str.lower, words))
        if _top_ngram_frac(lw) > c.max_top_ngram_frac:
            failed.append("repetition_ngrams")
        n_chars = len("".join(prose.split()))  # non-space characters
        if n_chars >= 100:
            # Markdown markup (#, *, |, -, >, `, brackets) is not degenerate text
            sym = len(SYMBOL_RE.findall(prose)) / n_chars
            if sym > c.max_symbol_ratio:
                failed.append("symbol_ratio")
        if len(words) >= 20:
            alpha = sum(map(bool, map(str.strip, words, repeat("0123456789_")))) / len(words)
            if alpha < c.min_alpha_word_frac:
                failed.append("alpha_words")
            mean = sum(map(len, words)) / len(words)
            if not (c.min_mean_word_len <= mean <= c.max_mean_word_len):
                failed.append("word_length")
        low, plow = text.lower(), prose.lower()
        if mentions_any(low, LOREM_LITERALS) and LOREM_RE.search(text):
            failed.append("lorem_ipsum")
        if mentions_any(plow, SPAM_LITERALS) and len({h.lower() for h in SPAM_RE.findall(prose)}) >= c.max_spam_hits:
            failed.append("spam")
        if len(plines) >= 5 and mentions_any(plow, BOILERPLATE_LITERALS):
            bp = sum(1 for ln in plines if len(ln) < 200 and BOILERPLATE_LINE_RE.search(ln)) / len(plines)
            if bp > c.max_boilerplate_line_frac:
                failed.append("boilerplate")
        return QualityReport(ctype, self.protection(doc, ctype), failed)

    def apply(self, doc: Document) -> Decision:
        rep = self.audit(doc)
        doc.metadata["quality"] = {"failed": rep.failed, "protected": rep.protected}
        reason = rep.drop_reason
        return Decision(None, reason) if reason else Decision(doc)
