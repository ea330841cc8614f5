"""The corpus document: what every connector renders and every corpus stage passes on.

Stages store documents as Parquet rows with at least these columns; ``metadata`` is a JSON
string there so that any source can add fields without a schema change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Document:
    id: str  # stable: "<source>:<native id>" for connectors, sha1 of URL/text otherwise
    text: str  # clean Markdown
    source: str  # registry name, e.g. "attack", "cwe", "crawl", "general:wikitext"
    url: str = ""
    license: str = ""
    title: str = ""
    version: str = ""  # source version/date the document was rendered from
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["metadata"] = json.dumps(self.metadata, sort_keys=True, default=str)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Document":
        meta = row.get("metadata") or "{}"
        return cls(
            id=row["id"],
            text=row["text"],
            source=row.get("source", ""),
            url=row.get("url", "") or "",
            license=row.get("license", "") or "",
            title=row.get("title", "") or "",
            version=row.get("version", "") or "",
            metadata=json.loads(meta) if isinstance(meta, str) else dict(meta),
        )


def doc_id(*parts: str) -> str:
    """Deterministic id from content parts (sha1, 20 hex chars)."""
    h = hashlib.sha1("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return h[:20]
