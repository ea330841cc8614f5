"""Secrets for the PII step: detect-secrets' token plugins, plus the shapes they leave to context.

`detect-secrets <https://github.com/Yelp/detect-secrets>`_ (Yelp, maintained) ships one plugin
per credential format (AWS key ids, GitHub/GitLab/Slack/Stripe/Twilio/SendGrid/npm/PyPI/OpenAI
tokens, JWTs, Azure storage keys, basic-auth passwords in URLs ...). Its plugins work line by
line; :class:`DetectSecrets` runs them only on lines that hold a long token-like run or a URL
with credentials (a cheap prefilter every plugin's pattern implies), and widens each finding to
the whole token (some plugins report only the prefix, ``ghp``). Plugins that would remove
indicators are not used: ``IPPublicDetector`` (IPs are IOCs), ``HexHighEntropyString`` (hashes
are IOCs), ``Base64HighEntropyString`` (base64 payloads in malware write-ups are indicators);
``KeywordDetector`` is replaced by the pipeline's own key/value rule, which keeps short human
defaults (``admin/admin``: security knowledge) and decides passwords by :func:`password_is_secret`.

Hand-written, because no plugin finds them without quotes or a file type:

* a **bare AWS secret access key** (40 base64 characters mixing upper, lower and digits, high
  entropy, not hex) anywhere in text;
* **password values** in prose and configs (``password: Hunter2Secret!``, ``the password is
  ...``): a value of ≥ 8 characters with ≥ 3 of the 4 character classes, at least one digit,
  that is not a placeholder, code (``HASH(x)``, ``New-Object``), a query string, nor one of the
  well-known default/example passwords.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

# token plugins only (see the module docstring for the ones left out and why)
PLUGINS = ("AWSKeyDetector", "ArtifactoryDetector", "AzureStorageKeyDetector", "BasicAuthDetector",
           "CloudantDetector", "DiscordBotTokenDetector", "GitHubTokenDetector", "GitLabTokenDetector",
           "IbmCloudIamDetector", "IbmCosHmacDetector", "JwtTokenDetector", "MailchimpDetector", "NpmDetector",
           "OpenAIDetector", "PypiTokenDetector", "SendGridDetector", "SlackDetector", "SoftlayerDetector",
           "SquareOAuthDetector", "StripeDetector", "TelegramBotTokenDetector", "TwilioKeyDetector")
# a line is given to the plugins only if it has a long token-like run or credentials in a URL
GATE_RE = re.compile(r"[A-Za-z0-9_+=-]{16,}")  # one literal-free class run: SRE scans it fast
GATE_EXTRA_RE = re.compile(r"://[^\s/@]+:[^\s/@]+@|hooks\.slack|[Cc]loudant|[Ss]oftlayer")
_GATE_LITERALS = ("://", "hooks.slack", "loudant", "oftlayer")
_HAS_DIGIT, _HAS_ALPHA = re.compile(r"\d"), re.compile(r"[A-Za-z]")
_SERVICE_HEADS = {"hook", "clou", "soft"}
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-+/=.~]")

AWS_SECRET_RE = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
PASSWORD_KEY_RE = re.compile(r"pass(?:word|wd|phrase|code)?|pwd|secret", re.I)
# password-named keys: any non-space value (generated passwords use ( ) , ; & | too)
PASSWORD_KV_RE = re.compile(  # starts at the keyword (a literal-led pattern SRE scans fast), not at the key's start
    r"(?:pass(?:word|wd|phrase|code)?|pwd)[\w.-]*[\"']?[ \t]*(?:=|:|=>|:=)[ \t]*[\"'`]?"
    r"(?P<val>[^\s\"'`]{8,64})", re.I)
PASSWORD_PROSE_RE = re.compile(
    r"\b(?:password|passphrase|passcode|pwd)\s+(?:is|was|set to|changed to|reset to)\s*:?\s*"
    r"[\"'`]?(?P<val>[^\s\"'`]{8,64})", re.I)
# default/example passwords written about as security knowledge (vendor defaults, spray lists)
KNOWN_PASSWORDS = {p.lower() for p in (
    "P@ssw0rd", "P@$$w0rd", "Pa$$w0rd", "Passw0rd", "Passw0rd!", "Password1", "Password1!", "Password123",
    "Password123!", "Welcome1", "Welcome1!", "Welcome123", "Admin123!", "Admin@123", "Changeme1", "Changeme123",
    "Qwerty123!", "Letmein1!", "Summer2024!", "Winter2024!", "Spring2024!", "Autumn2024!")}
PLACEHOLDER_RE = re.compile(r"^(?:<[^>]*>|\$\{?[\w.]+\}?|%\(?\w+\)?s?|\{\{.*\}\}|\[[^\]]*\]|x+|\*+|\.+|"
                            r"your[_-]?\w+|example\w*|redacted|changeme|\w+_here)$", re.I)


def entropy(s: str) -> float:
    if not s:
        return 0.0
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def char_classes(s: str) -> int:
    return (any(c.islower() for c in s) + any(c.isupper() for c in s) + any(c.isdigit() for c in s)
            + any(not c.isalnum() for c in s))


def password_is_secret(val: str) -> bool:
    """A password value worth hiding: long enough, mixed like a chosen password, not a default."""
    val = val.strip("\"'`")
    if len(val) < 8 or len(val) > 64 or PLACEHOLDER_RE.match(val) or val.lower() in KNOWN_PASSWORDS:
        return False
    if val.startswith(("/", "./", "../", "~/", "\\", "http", "[", "(")) or re.fullmatch(r"[\d.:/-]+", val) \
            or "](" in val or "://" in val or re.match(r"[A-Za-z_][\w.]*\(", val) or re.search(r"&\w+=", val):
        return False
    if re.search(r"[a-z_]{3,}=", val):
        return False  # key=value pairs run together (a config dump), not one value
    return char_classes(val) >= 3 and any(c.isdigit() for c in val)  # chosen passwords carry a digit


def aws_secret_spans(text: str) -> list[tuple[int, int]]:
    out = []
    if len(text) < 40:
        return out
    for m in AWS_SECRET_RE.finditer(text):
        v = m.group(0)
        if (re.fullmatch(r"[0-9a-fA-F]+", v) or not re.search(r"[a-z]", v) or not re.search(r"[A-Z]", v)
                or not re.search(r"\d", v) or entropy(v) < 4.0 or v.count("/") >= 3):  # >= 3 slashes: a path
            continue
        if _decodes_to_text(v):
            continue  # base64 of text (an XSS payload, a command): an indicator, not a key
        out.append(m.span())
    return out


def _decodes_to_text(v: str) -> bool:
    import base64
    import binascii

    try:
        raw = base64.b64decode(v + "=" * (-len(v) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(raw) and sum(32 <= b < 127 or b in (9, 10, 13) for b in raw) / len(raw) > 0.9


def password_prose_spans(text: str) -> list[tuple[int, int]]:
    """Password values after ``password is`` in prose and after password-named keys."""
    out = []
    low = text.lower()
    if "pass" not in low and "pwd" not in low:
        return out
    for m in (*PASSWORD_PROSE_RE.finditer(text), *PASSWORD_KV_RE.finditer(text)):
        s, e = m.span("val")
        while e > s and text[e - 1] in ".,;:)":  # the sentence's punctuation, not the password's
            e -= 1
        if password_is_secret(text[s:e]):
            out.append((s, e))
    return out


@lru_cache(maxsize=1)
def _plugins() -> tuple:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    return tuple(cls() for cls in get_mapping_from_secret_type_to_class().values() if cls.__name__ in PLUGINS)


_KEYWORDS = re.compile(r"key|pwd|pw|pass|token|secret", re.I)
# per-plugin literal pre-checks for the keyword-driven plugins, whose regexes are slow per line
_PLUGIN_GATES = {
    "IbmCloudIamDetector": lambda line, low: "iam" in low and _KEYWORDS.search(line) is not None,
    "IbmCosHmacDetector": lambda line, low: ("cos" in low or "hmac" in low) and _KEYWORDS.search(line) is not None,
    "CloudantDetector": lambda line, low: "cl" in low and (_KEYWORDS.search(line) is not None or "cloudant" in low),
    "SoftlayerDetector": lambda line, low: ("sl" in low or "softlayer" in low) and _KEYWORDS.search(line) is not None,
    "ArtifactoryDetector": lambda line, low: "AKC" in line or re.search(r"AP[\dA-F]", line) is not None,
    "AWSKeyDetector": lambda line, low: "aws" in low or re.search(r"A[KSGIRN][A-Z]{2}[0-9A-Z]{16}", line) is not None,
}


def _widen(line: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and _TOKEN_CHARS.match(line[start - 1]):
        start -= 1
    while end < len(line) and _TOKEN_CHARS.match(line[end]):
        end += 1
    while end > start and line[end - 1] == ".":  # the sentence's full stop
        end -= 1
    return start, end


def _gated_lines(text: str) -> set[int]:
    """Start offsets of the lines worth giving to the plugins: a token-like run of ≥ 16 characters
    mixing letters and digits, credentials in a URL, or a plugin's service name."""
    starts = set()
    matches = list(GATE_RE.finditer(text))
    if any(x in text for x in _GATE_LITERALS):
        matches += GATE_EXTRA_RE.finditer(text)
    for m in matches:
        tok = m.group(0)
        if not tok[0].isalnum() or tok[:4].lower() in _SERVICE_HEADS or (_HAS_DIGIT.search(tok) and _HAS_ALPHA.search(tok)):
            starts.add(text.rfind("\n", 0, m.start()) + 1)
    return starts


def detect_secrets_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, plugin) of every secret detect-secrets' token plugins find in ``text``."""
    out: list[tuple[int, int, str]] = []
    for pos in sorted(_gated_lines(text)):
        end = text.find("\n", pos)
        line = text[pos:len(text) if end == -1 else end]
        low = line.lower()
        for p in _plugins():
            gate = _PLUGIN_GATES.get(type(p).__name__)
            if gate is not None and not gate(line, low):
                continue
            for s in p.analyze_line(filename="document.txt", line=line, line_number=0):
                val = s.secret_value or ""
                if not val:
                    continue
                i = line.find(val)
                while i != -1:
                    a, b = _widen(line, i, i + len(val)) if len(val) < 20 or "." in val else (i, i + len(val))
                    if not (re.fullmatch(r"[A-Za-z]{1,15}", line[a:b]) or PLACEHOLDER_RE.match(line[a:b])):
                        out.append((pos + a, pos + b, type(p).__name__))
                    i = line.find(val, i + len(val))
    return out
