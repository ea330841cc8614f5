"""Inputs of map-cwe / predict-cvss: JSONL(.gz) rows, CVE JSON 5 files, CVE ids, free text.

Shared helper (engineer I2): ``read_cve_jsonl`` returns the good rows and one ``InputError``
per bad row (file + row named) so a batch command processes the rest; ``cve_json5`` reads a
CVE Record Format 5.x file; ``resolve_cve_id`` finds a CVE's description (labelled records,
then the knowledge base).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from secfoundry.apps.intel.cve_index import is_cve_id, iter_jsonl, records_path
from secfoundry.apps.intel.schemas import MAX_TEXT_CHARS, CveInput
from secfoundry.core.errors import InputError

MAX_INPUT_BYTES = 2 << 30  # 2 GiB of JSONL per run
MAX_JSON5_BYTES = 16 << 20


def _check_size(p: Path, limit: int) -> None:
    if not p.is_file():
        raise InputError("no such file", file=str(p))
    size = p.stat().st_size
    if size > limit:
        raise InputError(f"file is {size:,} bytes; the limit is {limit:,}", file=str(p))
    if size == 0:
        raise InputError("file is empty", file=str(p))


def read_cve_jsonl(path: str | os.PathLike[str]) -> tuple[list[tuple[int, CveInput]], list[InputError]]:
    """Rows with ``description`` (and optional ``id``); other fields are ignored."""
    p = Path(path)
    _check_size(p, MAX_INPUT_BYTES)
    errors: list[InputError] = []
    good: list[tuple[int, CveInput]] = []
    for row, obj in iter_jsonl(p, errors):
        desc, cid = obj.get("description"), obj.get("id")
        if not isinstance(desc, str) or not desc.strip():
            errors.append(InputError("missing or empty string", file=str(p), row=row, field="description"))
            continue
        if len(desc) > MAX_TEXT_CHARS:
            errors.append(InputError(f"{len(desc):,} characters; the limit is {MAX_TEXT_CHARS:,}",
                                     file=str(p), row=row, field="description"))
            continue
        if cid is not None and not isinstance(cid, str):
            errors.append(InputError("must be a string", file=str(p), row=row, field="id"))
            continue
        good.append((row, CveInput(id=cid.strip() if cid else None, description=desc)))
    return good, errors


def cve_json5(path: str | os.PathLike[str]) -> CveInput:
    """The id and English CNA description of a CVE JSON 5 record."""
    p = Path(path)
    _check_size(p, MAX_JSON5_BYTES)
    try:
        doc = json.loads(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 ({e.reason} at byte {e.start})", file=str(p)) from e
    except json.JSONDecodeError as e:
        raise InputError(f"not JSON ({e.msg} at line {e.lineno})", file=str(p)) from e
    if not isinstance(doc, dict):
        raise InputError("not a CVE JSON 5 record (expected an object)", file=str(p))
    cid = (doc.get("cveMetadata") or {}).get("cveId")
    descs: list[Any] = ((doc.get("containers") or {}).get("cna") or {}).get("descriptions") or []
    text = next((d.get("value") for d in descs if isinstance(d, dict) and str(d.get("lang", "")).startswith("en")),
                None) or next((d.get("value") for d in descs if isinstance(d, dict)), None)
    if not isinstance(text, str) or not text.strip():
        raise InputError("no description", file=str(p), field="containers.cna.descriptions")
    return CveInput(id=cid, description=text[:MAX_TEXT_CHARS])


def resolve_cve_id(cve_id: str, records: str | None = None, kb_path: str | None = None) -> tuple[CveInput, list[str]]:
    """(input, CWE ids the record carries) for a CVE id: the labelled records file first, then
    the knowledge base's CVE/NVD records. Unknown ids raise InputError."""
    cid = cve_id.strip().upper()
    if not is_cve_id(cid):
        raise InputError(f"{cve_id!r} is not a CVE id (CVE-YYYY-NNNN)", field="CVE-ID")
    try:
        p = records_path(records)
    except InputError:
        p = None
    if p is not None:
        needle = f'"id": "{cid}"'.encode()
        import gzip

        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rb") as fh:
            for line in fh:
                if needle in line:
                    obj = json.loads(line)
                    if obj.get("id") == cid and obj.get("description"):
                        labels = [c for c in (obj.get("cwe_cna") or obj.get("cwe_adp") or []) if isinstance(c, str)]
                        return CveInput(id=cid, description=obj["description"][:MAX_TEXT_CHARS]), labels
    try:
        from secfoundry.kb import KnowledgeBase

        kb = KnowledgeBase.open(kb_path)
        if Path(kb.paths.db).is_file():
            from secfoundry.kb.store import Store

            st = Store(kb.paths.db, readonly=True)
            try:
                recs = st.records_by_id(cid)
                rels = [r.dst for r in st.relations_from(cid) if r.dst.startswith("CWE-")]
            finally:
                st.close()
            desc = next((r.description for r in recs if r.description), None)
            if desc:
                return CveInput(id=cid, description=desc[:MAX_TEXT_CHARS]), sorted(set(rels))
    except InputError:
        pass
    raise InputError(f"unknown CVE id {cid}: not in the labelled records or the knowledge base", field="CVE-ID")
