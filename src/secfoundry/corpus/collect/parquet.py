"""Parquet reader: our own stage outputs (Document columns) or any table with a text column."""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

from secfoundry.core.errors import Quarantine
from secfoundry.core.documents import Document, doc_id


def iter_parquet_documents(path: str, *, text_field: str = "text", id_field: str | None = "id",
                           url_field: str | None = "url", title_field: str | None = "title",
                           source: str = "parquet", license: str = "", max_docs: int | None = None,
                           quarantine: Quarantine | None = None) -> Iterator[Document]:
    """Documents from one Parquet file, read row group by row group: a row that fails (a field of
    the wrong type, metadata JSON nested too deeply to parse, ...) is quarantined with its row
    number, a row group that cannot be decoded is quarantined with its range, and reading goes on."""
    import pyarrow.parquet as pq

    name = os.path.basename(path)
    pf = pq.ParquetFile(path)
    if text_field not in pf.schema_arrow.names:
        raise ValueError(f"{path}: no column {text_field!r} (columns: {pf.schema_arrow.names})")
    n = 0
    rowno = 0
    for rg in range(pf.num_row_groups):
        size = pf.metadata.row_group(rg).num_rows
        try:
            rows = pf.read_row_group(rg).to_pylist()
        except Exception as e:  # noqa: BLE001 - a corrupt row group: skip it, keep the others
            if quarantine is not None:
                quarantine.add(source, path, f"rows {rowno + 1}-{rowno + size} (row group {rg})",
                               f"{type(e).__name__}: {str(e)[:300]}")
            rowno += size
            continue
        for row in rows:
            rowno += 1
            if max_docs is not None and n >= max_docs:
                return
            try:
                doc = _row_document(row, rowno, name, text_field=text_field, id_field=id_field, url_field=url_field,
                                    title_field=title_field, source=source, license=license)
            except Exception as e:  # noqa: BLE001 - one bad row never stops the file
                if quarantine is not None:
                    quarantine.add(source, path, rowno, f"{type(e).__name__}: {str(e)[:300]}")
                continue
            if doc is not None:
                yield doc
                n += 1


def _row_document(row: dict[str, Any], rowno: int, name: str, *, text_field: str, id_field: str | None,
                  url_field: str | None, title_field: str | None, source: str, license: str) -> Document | None:
    text = row.get(text_field)
    if text is not None and not isinstance(text, str):
        raise ValueError(f"field {text_field!r} is not a string")
    if not text or not text.strip():
        return None
    meta: dict[str, Any] = {}
    raw_meta = row.get("metadata")
    if isinstance(raw_meta, str) and raw_meta:
        try:
            meta = json.loads(raw_meta)
        except json.JSONDecodeError:
            meta = {"metadata_raw": raw_meta}
        if not isinstance(meta, dict):
            meta = {"metadata_raw": raw_meta}
    elif isinstance(raw_meta, dict):
        meta = dict(raw_meta)
    src = row.get("source") or source
    native = row.get(id_field) if id_field else None
    did = str(native) if native not in (None, "") else f"{src}:{doc_id(name, str(rowno))}"
    return Document(id=did, text=text, source=str(src), url=str(row.get(url_field) or "") if url_field else "",
                    license=str(row.get("license") or license),
                    title=str(row.get(title_field) or "") if title_field else "",
                    version=str(row.get("version") or ""), metadata=meta)
