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
    import pyarrow.parquet as pq

    name = os.path.basename(path)
    pf = pq.ParquetFile(path)
    if text_field not in pf.schema_arrow.names:
        raise ValueError(f"{path}: no column {text_field!r} (columns: {pf.schema_arrow.names})")
    n = 0
    rowno = 0
    for batch in pf.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            rowno += 1
            if max_docs is not None and n >= max_docs:
                return
            text = row.get(text_field)
            if not isinstance(text, str) or not text.strip():
                if text is not None and not isinstance(text, str) and quarantine is not None:
                    quarantine.add(source, path, rowno, f"field {text_field!r} is not a string")
                continue
            meta: dict[str, Any] = {}
            raw_meta = row.get("metadata")
            if isinstance(raw_meta, str) and raw_meta:
                try:
                    meta = json.loads(raw_meta)
                except json.JSONDecodeError:
                    meta = {"metadata_raw": raw_meta}
            elif isinstance(raw_meta, dict):
                meta = dict(raw_meta)
            src = row.get("source") or source
            native = row.get(id_field) if id_field else None
            did = str(native) if native not in (None, "") else f"{src}:{doc_id(name, str(rowno))}"
            yield Document(id=did, text=text, source=str(src), url=str(row.get(url_field) or "") if url_field else "",
                           license=str(row.get("license") or license),
                           title=str(row.get(title_field) or "") if title_field else "",
                           version=str(row.get("version") or ""), metadata=meta)
            n += 1
