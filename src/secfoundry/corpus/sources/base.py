"""The connector interface: one module per high-value source implements ``Source``.

A connector resolves its upstream files (a mirror directory laid out like
``../shared/data/mirror/<name>/`` or a live download into the cache), parses them into typed
KB records, and renders corpus documents. Bad entries are reported to a ``Quarantine`` and
skipped; they never stop a sync.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from secfoundry.documents import Document
from secfoundry.kb.records import Record


@dataclass
class Snapshot:
    """The local files of one source at one version."""

    source: str
    files: list[Path]
    version: str = ""  # upstream version or date, as the source states it
    origin: str = ""  # "mirror:<dir>" or the URL(s) fetched
    fetched_at: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)


class Quarantine:
    """Collects bad input (file, entry, error) and optionally appends it to a JSONL file."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.items: list[dict[str, Any]] = []

    def add(self, source: str, file: str, entry: str | int | None, error: str | BaseException) -> None:
        item = {"source": source, "file": str(file), "entry": entry, "error": str(error), "time": time.time()}
        self.items.append(item)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(item) + "\n")

    def __len__(self) -> int:
        return len(self.items)


class Source(ABC):
    name: str = ""  # registry key: "attack", "cwe", ...
    title: str = ""
    license: str = ""  # SPDX-ish id or short name, carried into every record and document
    homepage: str = ""

    @abstractmethod
    def fetch(self, mirror: Path | None = None, *, fetcher: Any = None) -> Snapshot:
        """Resolve the upstream files: from ``mirror/<name>/`` when given, else download."""

    @abstractmethod
    def records(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Record]:
        """Parse the snapshot into typed KB records."""

    def documents(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Document]:
        """Render corpus documents (clean Markdown with provenance). Default: one per record."""
        for rec in self.records(snapshot, quarantine):
            yield record_document(rec)


_REGISTRY: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Source]]:
    """All connectors, importing their modules on first use."""
    from secfoundry.corpus import sources  # noqa: F401  (modules register themselves)

    sources.load_all()
    return dict(_REGISTRY)


def record_document(rec: Record) -> Document:
    """Generic Markdown rendering of a record; connectors override for richer layouts."""
    lines = [f"# {rec.id}: {rec.name}".rstrip(": "), ""]
    if rec.description:
        lines += [rec.description.strip(), ""]
    for key, val in rec.attributes.items():
        if isinstance(val, (str, int, float)) and str(val).strip():
            lines.append(f"- **{key}**: {val}")
    rels = [f"- {r.type}: {r.target}" for r in rec.relations]
    if rels:
        lines += ["", "## Related", *rels]
    return Document(
        id=f"{rec.source}:{rec.id}",
        text="\n".join(lines).strip() + "\n",
        source=rec.source,
        url=rec.url,
        license=rec.license,
        title=rec.name,
        version=rec.version,
        metadata={"record_type": rec.type, "record_id": rec.id},
    )
