"""General-domain replay text (the report mixes some back in to limit forgetting).

Reads a folder like ``../shared/data/datasets/general-text``: JSON Lines files (``text`` field)
and plain ``.txt`` files, which are cut at blank lines into documents of about ``chunk_chars``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from secfoundry.corpus.collect.jsonl import iter_jsonl_documents
from secfoundry.core.errors import Quarantine
from secfoundry.core.documents import Document, doc_id

# (file-name prefix, source name, license) for the known files; others get "general:<stem>".
KNOWN = [
    ("us-presidential-speeches", "general:speeches", "public-domain"),
    ("movie-reviews", "general:movie-reviews", "CC-BY-4.0"),
    ("wikitext2", "general:wikitext", "CC-BY-SA-3.0"),
    ("tinyshakespeare", "general:shakespeare", "public-domain"),
    ("python-3.11-docs", "general:python-docs", "PSF-2.0"),
]


def general_files(path: str, files: list[str] | None = None) -> list[str]:
    root = Path(path)
    if files:
        return [str(root / f) for f in files]
    out = []
    for p in sorted(root.iterdir()):
        n = p.name
        if n.startswith(("README", "COPYRIGHT", "LICENSE", ".")):
            continue
        if n.endswith((".jsonl", ".jsonl.gz", ".txt")):
            out.append(str(p))
    return out


def source_for(file: str) -> tuple[str, str]:
    name = os.path.basename(file)
    for prefix, source, lic in KNOWN:
        if name.startswith(prefix):
            return source, lic
    stem = name.split(".", 1)[0]
    return f"general:{stem}", ""


def iter_general_documents(file: str, *, max_docs: int | None = None, chunk_chars: int = 4000,
                           quarantine: Quarantine | None = None) -> Iterator[Document]:
    source, lic = source_for(file)
    if file.endswith((".jsonl", ".jsonl.gz")):
        for doc in iter_jsonl_documents(file, source=source, license=lic, url_field=None, title_field="title",
                                        max_docs=max_docs, quarantine=quarantine,
                                        metadata_fields=["split", "path", "sentiment"]):
            doc.metadata["collect"] = "general"
            yield doc
        return
    name = os.path.basename(file)
    text = Path(file).read_text(encoding="utf-8", errors="replace")
    n = 0
    for i, chunk in enumerate(_chunks(text, chunk_chars)):
        if max_docs is not None and n >= max_docs:
            return
        yield Document(id=f"{source}:{doc_id(name, str(i))}", text=chunk, source=source, license=lic,
                       title=f"{name} part {i}", metadata={"collect": "general", "file": name, "chunk": i})
        n += 1


def _chunks(text: str, size: int) -> Iterator[str]:
    buf: list[str] = []
    n = 0
    for para in text.split("\n\n"):
        buf.append(para)
        n += len(para) + 2
        if n >= size:
            yield "\n\n".join(buf).strip() + "\n"
            buf, n = [], 0
    if "".join(buf).strip():
        yield "\n\n".join(buf).strip() + "\n"
