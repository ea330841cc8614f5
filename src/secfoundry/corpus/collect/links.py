"""What a fetched page gives the crawler's frontier: its visible text and links, and whether
those links are followed (the relevance predicate: keyword score, a corpus step, or a plugin).
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable

from secfoundry.corpus.collect.urls import normalize_url

RelevanceFn = Callable[[str, str], bool]  # (page text, url) -> follow its links?


# ------------------------------------------------------------------------------ relevance
def make_relevance(spec: str) -> RelevanceFn:
    if spec == "all":
        return lambda text, url: True
    if spec == "keywords":
        try:
            # Used alone here, the prefilter must judge short pages too (in the pipeline it defers
            # them to the classifier).
            return _step_relevance("keywords", {"trust_high_value": False, "defer_below_words": 0})
        except Exception:
            return _fallback_keywords
    if spec.startswith("step:"):
        return _step_relevance(spec[5:], {})
    if ":" in spec:
        mod, _, attr = spec.partition(":")
        return getattr(importlib.import_module(mod), attr)
    raise ValueError(f"unknown relevance predicate {spec!r}")


def _step_relevance(name: str, options: dict[str, Any]) -> RelevanceFn:
    """Any registered corpus step used as a predicate: a page is relevant if the step keeps it."""
    from secfoundry.corpus.engine.registry import build_step, config_class, resolve_step_class
    from secfoundry.core.documents import Document

    cls = resolve_step_class(name)
    cfg = config_class(cls)
    opts = {k: v for k, v in options.items() if cfg is None or k in {f for f in cfg.__dataclass_fields__}}
    step = build_step(name, opts)
    if callable(getattr(step, "setup", None)):
        step.setup()

    def relevant(text: str, url: str) -> bool:
        kept, _ = step.run_batch([Document(id=url, text=text, source="crawl", url=url)])
        return bool(kept)

    return relevant


_FALLBACK_TERMS = ("vulnerability", "exploit", "malware", "cve-", "attack", "ransomware", "phishing",
                   "mitre", "att&ck", "cwe-", "threat", "payload", "privilege escalation", "xss",
                   "sql injection", "backdoor", "botnet", "ioc", "firewall", "intrusion", "patch")


def _fallback_keywords(text: str, url: str) -> bool:
    low = text.lower()
    return sum(1 for t in _FALLBACK_TERMS if t in low) >= 3


# ------------------------------------------------------------------------------ html
def html_text_and_links(html: str, base_url: str) -> tuple[str, list[str], bool]:
    """Visible text, href targets (``rel=nofollow`` skipped) and whether meta robots says nofollow."""
    import lxml.html

    try:
        root = lxml.html.document_fromstring(re.sub(r"^\s*<\?xml[^>]*>", "", html) or "<html></html>")
    except Exception:
        return "", [], False
    nofollow = any("nofollow" in (m.get("content") or "").lower()
                   for m in root.xpath("//meta[translate(@name,'ROBTS','robts')='robots']"))
    base = root.xpath("//base/@href")
    base_url = base[0] if base else base_url
    links = []
    for a in root.xpath("//a[@href]|//area[@href]"):
        if "nofollow" in (a.get("rel") or "").lower():
            continue
        links.append(normalize_url(a.get("href"), base_url))
    for bad in root.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    text = " ".join(root.text_content().split())
    return text, [u for u in links if u], nofollow
