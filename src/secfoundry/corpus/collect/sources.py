"""Documents from the high-value connectors in ``corpus/sources`` (their ``documents()``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from secfoundry.sources.base import Quarantine, registry
from secfoundry.core.documents import Document


def source_names(names: list[str], exclude: list[str] | None = None) -> list[str]:
    """Expand ``["all"]`` to every registered connector; unknown names raise (recipe typo)."""
    reg = registry()
    wanted = sorted(reg) if not names or "all" in names else list(names)
    unknown = [n for n in wanted if n not in reg]
    if unknown:
        raise KeyError(f"unknown source(s) {unknown}; registered: {sorted(reg)}")
    return [n for n in wanted if n not in set(exclude or [])]


def iter_source_documents(name: str, *, mirror: str | Path | None = None, max_docs: int | None = None,
                          quarantine: Quarantine | None = None) -> Iterator[Document]:
    """Fetch (mirror or live) one connector's snapshot and render its documents with provenance."""
    src = registry()[name]()
    snap = src.fetch(Path(mirror) if mirror else None)
    for n, doc in enumerate(src.documents(snap, quarantine)):
        if max_docs is not None and n >= max_docs:
            return
        doc.license = doc.license or src.license
        doc.version = doc.version or snap.version
        doc.metadata.setdefault("collect", "sources")
        doc.metadata.setdefault("origin", snap.origin)
        doc.metadata.setdefault("fetched_at", snap.fetched_at)
        yield doc
