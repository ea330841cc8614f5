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
    """Documents from one JSONL file. Any failure on a line (bad JSON, a missing field, a line
    nested 200,000 levels deep that raises ``RecursionError``, ...) quarantines that line with
    its number and reading goes on; a file that becomes unreadable part way (a truncated gzip)
    quarantines the rest with the last good line, keeping every document before it."""
    name = os.path.basename(path)
    n = 0
    lines = json_lines(path)
    last = 0
    while True:
        try:
            lineno, line = next(lines)
        except StopIteration:
            return
        except Exception as e:  # noqa: BLE001 - truncated gzip, I/O error: nothing more to read
            if last == 0:  # nothing read at all (missing file, not gzip): the input failed, retryable
                raise
            if quarantine is not None:
                quarantine.add(source, path, f"after line {last}", f"unreadable from here on: {type(e).__name__}: {e}")
            return
        last = lineno
        if max_docs is not None and n >= max_docs:
            return
        try:
            doc = _row_document(line, lineno, name, text_field=text_field, id_field=id_field, url_field=url_field,
                                title_field=title_field, source_field=source_field, source=source, license=license,
                                metadata_fields=metadata_fields)
        except Exception as e:  # noqa: BLE001 - one bad row never stops the file
            if quarantine is not None:
                quarantine.add(source, path, lineno, f"{type(e).__name__}: {str(e)[:300]}")
            continue
        if doc is None:
            continue
        yield doc
        n += 1


def _row_document(line: str, lineno: int, name: str, *, text_field: str, id_field: str | None,
                  url_field: str | None, title_field: str | None, source_field: str | None, source: str,
                  license: str, metadata_fields: list[str] | None) -> Document | None:
    row = json.loads(line)
    if not isinstance(row, dict):
        raise ValueError("line is not a JSON object")
    text = get_field(row, text_field)
    if not isinstance(text, str):
        raise ValueError(f"field {text_field!r} missing or not a string")
    if not text.strip():
        return None
    src = str(get_field(row, source_field) or source) if source_field else source
    native = get_field(row, id_field)
    did = f"{src}:{native}" if native not in (None, "") else f"{src}:{doc_id(name, str(lineno))}"
    meta: dict[str, Any] = {"collect": "jsonl", "file": name, "line": lineno}
    for k in metadata_fields or []:
        v = get_field(row, k)
        if v is not None:
            meta[k] = v
    return Document(id=did, text=text, source=src, url=str(get_field(row, url_field) or ""),
                    license=license, title=str(get_field(row, title_field) or ""), metadata=meta)
