"""Content-type routing: prose / code / log / rule / record, decided before language and quality.

Generic pipelines run language ID and Gopher-style quality rules on every document; a Sigma
rule, a CVE JSON record or a PowerShell listing then looks like "non-English, symbol-heavy
junk". Here every document first gets a content type and its *prose part* (the text with
code blocks, tables, identifiers, hashes, URLs and paths masked out); the later steps decide on
that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from secfoundry.corpus.step import Decision, Step
from secfoundry.core.documents import Document

CONTENT_TYPES = ("prose", "code", "log", "rule", "record")

FENCE_RE = re.compile(r"^(`{3,}|~{3,})[^\n]*\n.*?^\1[ \t]*$", re.M | re.S)
LETTER_RE = re.compile(r"[^\W\d_]")
INLINE_CODE_RE = re.compile(r"`[^`\n]+`")
TABLE_LINE_RE = re.compile(r"^\s*\|.*\|\s*$", re.M)
URL_RE = re.compile(r"\b(?:h[tx]{2}ps?|ftp|s3|file)(?:\[?:\]?)//\S+|\bwww\.\S+", re.I)
# identifiers that confuse character-n-gram language ID: ids, versions, hashes, paths, vectors
NOISE_RE = re.compile(
    r"\b(?:CVE|GHSA|CWE|CAPEC|RUSTSEC|PYSEC|OSV|GO|TA?|DS|M|S|G|C)[-_]?\d[\w.-]*"  # ids
    r"|\b[0-9a-f]{16,}\b"  # hashes/hex
    r"|\bv?\d+(?:\.\d+)+[\w.+-]*"  # versions, IPs
    r"|(?:[A-Za-z]:)?(?:[\\/][\w.$%{}-]+){2,}[\\/]?"  # paths
    r"|\bCVSS:\d\.\d/\S+|\bAV:[NALP]/\S+"  # CVSS vectors
    r"|\b\w+(?:[._]\w+){2,}\b"  # dotted/underscored identifiers (java.lang.Foo, a_b_c)
    r"|\b[a-z]+[A-Z]\w*\b"  # camelCase
)

try:  # RE2 (a DFA engine) runs the two masks above ~6x faster than `re`; used on ASCII text only,
    # where its ASCII \b and \w agree with `re`'s Unicode ones, so the matches are the same
    import re2 as _re2

    _URL_RE2 = _re2.compile("(?i)" + URL_RE.pattern)
    _NOISE_RE2 = _re2.compile(NOISE_RE.pattern)
except Exception:  # noqa: BLE001 - not installed / pattern not supported: `re` everywhere
    _URL_RE2 = _NOISE_RE2 = None

SIGMA_KEYS = ("title:", "logsource:", "detection:", "condition:")
YARA_RE = re.compile(r"^\s*(?:(?:private|global)\s+)*rule\s+\w+(?:\s*:\s*[\w ]+)?\s*\{.*?\bcondition\s*:", re.M | re.S)
SNORT_RE = re.compile(r"^\s*(?:alert|drop|reject|pass|log)\s+(?:tcp|udp|icmp|ip|http|dns|tls|smb)\s+\S+\s+\S+\s+(?:->|<>)\s+\S+\s+\S+\s*\(.*\bsid\s*:\s*\d+", re.M)
KQL_SPL_RE = re.compile(r"^\s*(?:index=\w+|\|\s*where\s|\|\s*stats\s|DeviceProcessEvents|SecurityEvent\s*\|)", re.M)
LOG_LINE_RE = re.compile(
    r"^\s*(?:"
    r"\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"  # ISO timestamps
    r"|[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}"  # syslog
    r"|\d{1,3}(?:\.\d{1,3}){3}\s+\S+\s+\S+\s+\[\d{2}/\w{3}/\d{4}"  # access log
    r"|\d{2}/\d{2}/\d{4}\s+\d{2}:\d{2}"
    r"|<\d{1,3}>\d?\s*\w"  # RFC 5424 priority
    r"|\{\s*\"(?:timestamp|time|@timestamp|EventID|event_id|ts)\""  # JSON logs
    r"|(?:\w+=\S+\s+){3,}"  # key=value logs
    r"|type=\w+\s+msg=audit\("  # auditd
    r")"
)
CODE_LINE_RE = re.compile(
    r"(?:[;{}]\s*$|^\s*(?:def|class|import|from|return|if|elif|else|for|while|try|except|function|"
    r"var|let|const|public|private|static|void|int|char|#include|#define|using|namespace|package|"
    r"func|fn|struct|impl|echo|sudo|cd|curl|wget|chmod|\$\w+\s*=|\w+\s*=\s*[\w\"'\[{(]|<\?php|"
    r"SELECT|INSERT|UPDATE|DELETE|CREATE)\b|^\s*(?:\$|PS [A-Z]:\\.*>|>>>|#!)\s?)"
)
RECORD_START_RE = re.compile(r"^\s*[{\[]\s*\"|^---\s*\n\w[\w-]*:|^\w[\w-]*:\s*\S.*\n\w[\w-]*:", re.S)
ID_RE = re.compile(r"\b(?:CVE-\d{4}-\d{4,}|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}|CWE-\d+|CAPEC-\d+|"
                   r"T\d{4}(?:\.\d{3})?|TA\d{4}|RUSTSEC-\d{4}-\d{4}|PYSEC-\d{4}-\d+|GO-\d{4}-\d+|"
                   r"D3-[A-Z]+|[A-Z]{2}-\d{1,2}(?:\(\d+\))?)\b")

# sources whose documents are rendered structured records / rules by construction
RULE_SOURCES = {"sigma", "atomic-red-team", "atomic", "complianceascode"}
RECORD_SOURCES = {"cve", "nvd", "kev", "osv", "advisories", "advisory", "ghsa", "rustsec", "pypa", "cwe",
                  "capec", "attack", "mitre-attack", "d3fend", "nist-800-53", "nist", "epss",
                  "ctid-mappings", "ctid"}


@dataclass
class Routing:
    content_type: str  # one of CONTENT_TYPES
    prose: str  # the prose part, masked, for language ID
    prose_fraction: float  # share of the text's characters that are prose
    code_fraction: float
    has_security_ids: bool


def strip_non_prose(text: str) -> tuple[str, int]:
    """Remove fenced code and tables; returns (remaining text, chars of fenced code)."""
    hit = _STRIP_CACHE.get(text)
    if hit is not None:
        return hit
    code_chars = sum(len(m.group(0)) for m in FENCE_RE.finditer(text))
    rest = FENCE_RE.sub("\n", text)
    rest = TABLE_LINE_RE.sub("", rest)
    if len(_STRIP_CACHE) >= _PROSE_CACHE_MAX:
        del _STRIP_CACHE[next(iter(_STRIP_CACHE))]  # oldest first
    _STRIP_CACHE[text] = (rest, code_chars)
    return rest, code_chars


# contenttype computes the prose part and langid (the next step) needs it again; a small cache
# keyed by the text itself (str caches its hash, so a hit costs no rehash) saves doing it twice.
_PROSE_CACHE: dict[str, str] = {}
_PROSE_CACHE_MAX = 4096
# strip_non_prose is wanted by contenttype (twice: the prose part and the code share) and by
# quality: the same kind of cache
_STRIP_CACHE: dict[str, tuple[str, int]] = {}
_ASCII_LETTERS = bytes(range(65, 91)) + bytes(range(97, 123))


def prose_part(text: str) -> str:
    """Text for language ID: no code, tables, URLs, ids, versions, hashes or paths."""
    hit = _PROSE_CACHE.get(text)
    if hit is not None:
        return hit
    prose = _prose_part(text)
    if len(_PROSE_CACHE) >= _PROSE_CACHE_MAX:
        del _PROSE_CACHE[next(iter(_PROSE_CACHE))]  # oldest first
    _PROSE_CACHE[text] = prose
    return prose


def _prose_part(text: str) -> str:
    rest, _ = strip_non_prose(text)
    rest = INLINE_CODE_RE.sub(" ", rest)
    rest = _mask_ids(rest)
    rest = re.sub(r"[#*_>|`\[\]()]+", " ", rest)  # Markdown markup
    lines = []
    for ln in rest.split("\n"):
        s = ln.strip()
        # keep lines that read as natural language: enough letters, several words
        if len(s.split()) >= 3 and _letters(s) >= 0.6 * len(s):
            lines.append(s)
    return re.sub(r"\s+", " ", " ".join(lines)).strip()


def _letters(s: str) -> int:
    """Letters in ``s`` (``LETTER_RE`` matches), counted in C for ASCII lines."""
    if s.isascii():
        b = s.encode("ascii")
        return len(b) - len(b.translate(None, _ASCII_LETTERS))
    return len(LETTER_RE.findall(s))


def _mask_ids(text: str) -> str:
    """URL_RE and NOISE_RE matches replaced by a space. Neither pattern can match a newline and
    their only assertion, ``\b``, sees a newline as it sees the end of the text, so the text can
    be masked line by line: RE2 on ASCII lines, ``re`` on the others (same matches)."""
    if _NOISE_RE2 is None:
        return NOISE_RE.sub(" ", URL_RE.sub(" ", text))
    if text.isascii():
        return _NOISE_RE2.sub(" ", _URL_RE2.sub(" ", text))
    return "\n".join(_NOISE_RE2.sub(" ", _URL_RE2.sub(" ", ln)) if ln.isascii() else NOISE_RE.sub(" ", URL_RE.sub(" ", ln))
                     for ln in text.split("\n"))


def _line_share(lines: list[str], pattern: re.Pattern) -> float:
    if not lines:
        return 0.0
    return sum(1 for ln in lines if pattern.search(ln)) / len(lines)


def detect_rule(text: str) -> str:
    """'sigma', 'yara', 'snort', 'query' or ''."""
    low = text.lower()
    if sum(k in low for k in SIGMA_KEYS) >= 3 and "detection:" in low:
        return "sigma"
    if YARA_RE.search(text):
        return "yara"
    if SNORT_RE.search(text):
        return "snort"
    if len(KQL_SPL_RE.findall(text)) >= 2:
        return "query"
    return ""


def route(text: str, source: str = "", metadata: dict | None = None) -> Routing:
    metadata = metadata or {}
    base = source.split(":", 1)[0].lower()
    prose = prose_part(text)
    total = max(len(text), 1)
    _, code_chars = strip_non_prose(text)
    code_fraction = code_chars / total
    prose_fraction = min(len(prose) / total, 1.0)
    has_ids = bool(ID_RE.search(text[:20000]))
    lines = [ln for ln in text.split("\n") if ln.strip()]
    sample = lines[:400]

    if base in RULE_SOURCES or detect_rule(text[:50000]):
        ctype = "rule"
    elif base in RECORD_SOURCES or metadata.get("record_type") or RECORD_START_RE.match(text[:2000]):
        ctype = "record"
    elif len(sample) >= 3 and _line_share(sample, LOG_LINE_RE) >= 0.5:
        ctype = "log"
    elif code_fraction >= 0.5 or (len(sample) >= 3 and _line_share(sample, CODE_LINE_RE) >= 0.5
                                  and prose_fraction < 0.5):
        ctype = "code"
    else:
        ctype = "prose"
    return Routing(ctype, prose, round(prose_fraction, 3), round(code_fraction, 3), has_ids)


def describe(text: str, source: str = "") -> dict:
    """Routing, language and keyword score of one document (``secfoundry corpus route``)."""
    from secfoundry.corpus.process.keywords import score_text
    from secfoundry.corpus.process.langid import detect

    r = route(text, source)
    k = score_text(text)
    return {"content_type": r.content_type, "prose_fraction": r.prose_fraction, "code_fraction": r.code_fraction,
            "has_ids": r.has_security_ids, "lang": detect(r.prose, k=3) if r.prose else {},
            "keywords": {"score": k.weighted, "density": k.density, "hits": k.hits}, "prose": r.prose[:500]}


@dataclass
class ContentTypeConfig:
    pass_through: bool = True  # routing never drops; it annotates doc.metadata


class ContentTypeStep(Step):
    """Annotates ``metadata['content_type']``, ``prose_fraction``, ``code_fraction``, ``has_ids``."""

    name = "contenttype"

    def __init__(self, config: ContentTypeConfig | None = None):
        self.config = config or ContentTypeConfig()

    def apply(self, doc: Document) -> Decision:
        r = route(doc.text, doc.source, doc.metadata)
        doc.metadata.update(content_type=r.content_type, prose_fraction=r.prose_fraction,
                            code_fraction=r.code_fraction, has_ids=r.has_security_ids)
        return Decision(doc)
