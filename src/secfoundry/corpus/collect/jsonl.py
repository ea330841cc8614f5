"""JSON Lines reader with a field mapping onto Document fields (.jsonl or .jsonl.gz)."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any, Iterator

from secfoundry.core.errors import Quarantine
from secfoundry.core.documents import Document, doc_id


def get_field(row: dict[str, Any], name: str | None) -> Any:
    """``a.b`` reaches into nested objects; missing -> None."""
    if not name:
        return None
    cur: Any = row
    for part in name.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def json_lines(path: str | os.PathLike, errors: str = "replace") -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for the non-blank lines of a ``.jsonl`` or ``.jsonl.gz`` file."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors=errors) as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                yield lineno, line


def iter_jsonl_documents(path: str, *, text_field: str = "text", id_field: str | None = None,
                         url_field: str | None = "url", title_field: str | None = "title",
                         source_field: str | None = None, source: str = "jsonl", license: str = "",
                         metadata_fields: list[str] | None = None, max_docs: int | None = None,
                         quarantine: Quarantine | None = None) -> Iterator[Document]:
    name = os.path.basename(path)
    n = 0
    for lineno, line in json_lines(path):
        if max_docs is not None and n >= max_docs:
            return
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("line is not a JSON object")
            text = get_field(row, text_field)
            if not isinstance(text, str):
                raise ValueError(f"field {text_field!r} missing or not a string")
        except ValueError as e:
            if quarantine is not None:
                quarantine.add(source, path, lineno, e)
            continue
        if not text.strip():
            continue
        src = str(get_field(row, source_field) or source) if source_field else source
        native = get_field(row, id_field)
        did = f"{src}:{native}" if native not in (None, "") else f"{src}:{doc_id(name, str(lineno))}"
        meta: dict[str, Any] = {"collect": "jsonl", "file": name, "line": lineno}
        for k in metadata_fields or []:
            v = get_field(row, k)
            if v is not None:
                meta[k] = v
        yield Document(id=did, text=text, source=src, url=str(get_field(row, url_field) or ""),
                       license=license, title=str(get_field(row, title_field) or ""), metadata=meta)
        n += 1
