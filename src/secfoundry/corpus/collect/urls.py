"""URL normalisation for crawl dedup: one spelling per resource.

Lowercases scheme and host (IDNA-encoded), drops default ports, fragments, empty queries and
tracking parameters, resolves ``.``/``..`` segments, sorts query parameters, and percent-encodes
consistently. Only http(s) URLs survive.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

TRACKING_PARAMS = frozenset({
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id", "utm_name",
    "gclid", "dclid", "gbraid", "wbraid", "fbclid", "msclkid", "yclid", "mc_cid", "mc_eid", "_hsenc",
    "_hsmi", "mkt_tok", "igshid", "ref_src", "spm", "_ga", "_gl", "oly_anon_id", "oly_enc_id", "vero_id",
    "phpsessid", "jsessionid", "sid", "sessionid",
})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SAFE_PATH = "/:@!$&'()*+,;=-._~%"


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Canonical form of ``url`` (resolved against ``base``), or None if not crawlable http(s)."""
    url = (url or "").strip()
    if not url:
        return None
    if base:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.rstrip(".").lower()
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if ":" in host and not host.startswith("["):  # IPv6 literal
        netloc = f"[{host}]" + ("" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}")
    path = parts.path or "/"
    trailing = path.endswith("/")
    path = posixpath.normpath(unquote(path))
    if path in (".", "//"):
        path = "/"
    path = re.sub(r"/{2,}", "/", path)
    if trailing and not path.endswith("/"):
        path += "/"
    path = quote(path, safe=_SAFE_PATH)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k.lower() not in TRACKING_PARAMS and not k.lower().startswith("utm_")]
    query.sort()
    return urlunsplit((scheme, netloc, path, urlencode(query, doseq=True), ""))


def host_of(url: str) -> str:
    return urlsplit(url).netloc


def looks_like_trap(url: str, max_repeats: int = 3, max_length: int = 2048) -> bool:
    """Crawler-trap heuristics: very long URLs or a path segment repeated many times
    (``/a/b/a/b/a/b``, endless calendars produced by relative links)."""
    if len(url) > max_length:
        return True
    segs = [s for s in urlsplit(url).path.split("/") if s]
    if not segs:
        return False
    counts: dict[str, int] = {}
    for s in segs:
        counts[s] = counts.get(s, 0) + 1
    return max(counts.values()) > max_repeats or len(segs) > 32
