"""High-value sources: documents that are security content by construction (connectors)."""

from __future__ import annotations

import functools
from typing import Iterable

# Connector names (and aliases) whose documents are security content by construction.
# Any source registered in ``corpus.sources`` counts too (see ``is_high_value``).
HIGH_VALUE_SOURCES: frozenset[str] = frozenset({
    "attack", "mitre-attack", "cwe", "capec", "kev", "cve", "nvd", "osv", "advisories",
    "advisory", "ghsa", "rustsec", "pypa", "epss", "sigma", "atomic-red-team", "atomic",
    "owasp-cheatsheets", "owasp", "d3fend", "nist-800-53", "nist", "complianceascode",
    "ctid-mappings", "ctid", "nist80053", "epss",
})


@functools.lru_cache(maxsize=1)
def _registered_sources() -> frozenset[str]:
    try:
        from secfoundry.sources.base import registry

        return frozenset(registry())
    except Exception:  # connectors are written concurrently; a broken one must not break us
        return frozenset()


def is_high_value(source: str, extra: Iterable[str] = ()) -> bool:
    """True for documents of a high-value connector (``"cve"``, ``"attack:enterprise"``, ...)."""
    base = source.split(":", 1)[0].strip().lower()
    if not base:
        return False
    return base in HIGH_VALUE_SOURCES or base in set(extra) or base in _registered_sources()
