"""Shared pieces of the process steps: decisions, drop records, the step base class."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable

from secfoundry.core.documents import Document

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


@dataclass
class Decision:
    doc: Document | None  # None: dropped
    reason: str | None = None

    @property
    def kept(self) -> bool:
        return self.doc is not None


@dataclass
class Dropped:
    doc: Document
    step: str
    reason: str


class ProcessStep:
    """Base class: subclasses implement ``apply``; ``run_batch`` may be overridden to vectorise."""

    name: str = "step"

    def apply(self, doc: Document) -> Decision:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, doc: Document) -> Decision:
        return self.safe_apply(doc)

    def safe_apply(self, doc: Document) -> Decision:
        try:
            return self.apply(doc)
        except Exception as e:  # one bad document never stops the batch
            return Decision(None, f"error:{type(e).__name__}: {str(e)[:200]}")

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        kept: list[Document] = []
        dropped: list[Dropped] = []
        for doc in docs:
            d = self.safe_apply(doc)
            if d.doc is not None:
                kept.append(d.doc)
            else:
                dropped.append(Dropped(doc, self.name, d.reason or self.name))
        return kept, dropped


def run_steps(steps: list[ProcessStep], docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
    """Apply steps in order to a batch; returns survivors and every drop with its step."""
    all_dropped: list[Dropped] = []
    for step in steps:
        docs, dropped = step.run_batch(docs)
        all_dropped.extend(dropped)
    return docs, all_dropped
