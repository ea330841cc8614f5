"""The labelled CVE records the intel models learn from, and the leakage rules.

Records are lines of ``../shared/data/datasets/cve-records.jsonl.gz`` (cisagov/vulnrichment:
``id``, ``published``, ``description``, ``cwe_cna``, ``cwe_adp``, ``cvss_cna``, ``cvss_adp``,
``ssvc``, ``kev_date_added``; other fields ignored).

Labels:
* CWE: the CNA's CWE ids when it gave any, else CISA-ADP's (vulnrichment); ``NVD-CWE-Other`` /
  ``NVD-CWE-noinfo`` are "no label"; deprecated ids follow their replacement; ids the catalog
  does not know are dropped (counted).
* CVSS v3: the CNA's v3.1 vector, else its v3.0 vector, else ADP's (all scored as v3.1 metrics).

Leakage (``Exclusion``): the index never holds the item being scored: records with the item's
CVE id and records whose normalized description equals the item's are excluded, and counted.

Shared helpers (engineer I2): ``load_records``, ``records_path``, ``norm_description``,
``cvss_v3_vector``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from secfoundry.core.errors import InputError

RECORDS_ENV = "SECFOUNDRY_CVE_RECORDS"
MAX_DESCRIPTION_CHARS = 20_000  # longer inputs are cut (CVE descriptions are ~300 chars)
_CVE = re.compile(r"^CVE-\d{4}-\d{4,7}$")


def records_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit`` > ``SECFOUNDRY_CVE_RECORDS`` > ``../shared/data/datasets/cve-records.jsonl.gz``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(RECORDS_ENV)
    if env:
        return Path(env)
    from secfoundry.core.paths import shared_data

    sd = shared_data()
    p = (sd / "datasets" / "cve-records.jsonl.gz") if sd else None
    if p is None or not p.is_file():
        raise InputError(f"no labelled CVE records found; pass --records or set {RECORDS_ENV}",
                         file=str(p) if p else "cve-records.jsonl.gz")
    return p


def norm_description(text: str) -> str:
    """Lower-case, punctuation-free, single-spaced text: the key of the leakage rule."""
    return " ".join(re.sub(r"[^\w]+", " ", (text or "").lower()).split())


def desc_key(text: str) -> str:
    return hashlib.sha1(norm_description(text).encode()).hexdigest()[:16]


def is_cve_id(value: str) -> bool:
    return bool(_CVE.match(value or ""))


@dataclass
class CveRecord:
    id: str
    description: str
    published: str = ""
    cwe: list[str] = field(default_factory=list)  # normalized labels (see module doc)
    cwe_source: str = ""  # "cna" | "adp" | ""
    cvss3: str = ""  # "CVSS:3.1/AV:..." or ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def cvss_v3_vector(rec: dict[str, Any]) -> str:
    """The record's CVSS v3 vector (CNA 3.1 > CNA 3.0 > ADP 3.1 > ADP 3.0), as a 3.1 vector."""
    for part in ("cvss_cna", "cvss_adp"):
        d = rec.get(part) or {}
        if not isinstance(d, dict):
            continue
        for key in ("cvssV3_1", "cvssV3_0"):
            v = (d.get(key) or {}).get("vector") if isinstance(d.get(key), dict) else None
            if isinstance(v, str) and v.startswith("CVSS:3."):
                return "CVSS:3.1/" + v.split("/", 1)[1]
    return ""


def _labels(rec: dict[str, Any], validate: Any) -> tuple[list[str], str, int]:
    """(normalized CWE labels, which side they came from, ids dropped as unknown)."""
    dropped = 0
    for side in ("cna", "adp"):
        raw = rec.get(f"cwe_{side}") or []
        if not isinstance(raw, list):
            continue
        out: list[str] = []
        for v in raw:
            if not isinstance(v, str) or v.startswith("NVD-CWE"):
                continue
            c = validate(v) if validate else v
            if c is None:
                dropped += 1
            elif c not in out:
                out.append(c)
        if out:
            return out, side, dropped
    return [], "", dropped


def iter_jsonl(path: str | os.PathLike[str], errors: list[InputError] | None = None,
               max_line_bytes: int = 1 << 20) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, object) for each line of a JSONL or JSONL.gz file. Bad rows (not JSON, not an
    object, not UTF-8, too long) are appended to ``errors`` as InputError naming file and row;
    with ``errors=None`` they raise."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", file=str(p))
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as fh:
            for i, raw in enumerate(fh, start=1):
                err = None
                if len(raw) > max_line_bytes:
                    err = f"line is {len(raw):,} bytes (limit {max_line_bytes:,})"
                elif not raw.strip():
                    continue
                else:
                    try:
                        obj = json.loads(raw.decode("utf-8"))
                        if not isinstance(obj, dict):
                            err = f"expected a JSON object, got {type(obj).__name__}"
                    except UnicodeDecodeError as e:
                        err = f"not UTF-8 ({e.reason} at byte {e.start})"
                    except json.JSONDecodeError as e:
                        err = f"not JSON ({e.msg} at column {e.colno})"
                if err:
                    ie = InputError(err, file=str(p), row=i)
                    if errors is None:
                        raise ie
                    errors.append(ie)
                    continue
                yield i, obj
    except (OSError, EOFError) as e:  # truncated gzip, unreadable file
        ie = InputError(f"unreadable ({e})", file=str(p))
        if errors is None:
            raise ie from e
        errors.append(ie)


def load_records(path: str | os.PathLike[str] | None = None, validate: Any = None,
                 errors: list[InputError] | None = None) -> tuple[list[CveRecord], dict[str, int]]:
    """Read the labelled records. ``validate``: CWE id -> current id or None (``CweCatalog.validate``).

    Returns (records, stats) where stats counts rows, labelled ones and labels dropped as unknown.
    """
    p = records_path(path)
    out: list[CveRecord] = []
    stats = {"rows": 0, "cwe_labelled": 0, "cvss_labelled": 0, "unknown_cwe_dropped": 0, "bad_rows": 0}
    errs: list[InputError] = [] if errors is None else errors
    for i, obj in iter_jsonl(p, errs):
        cid, desc = obj.get("id"), obj.get("description")
        if not isinstance(cid, str) or not isinstance(desc, str) or not desc.strip():
            errs.append(InputError("needs string fields id and description", file=str(p), row=i))
            continue
        labels, side, dropped = _labels(obj, validate)
        rec = CveRecord(id=cid.strip().upper(), description=desc[:MAX_DESCRIPTION_CHARS],
                        published=str(obj.get("published") or ""), cwe=labels, cwe_source=side,
                        cvss3=cvss_v3_vector(obj))
        stats["rows"] += 1
        stats["cwe_labelled"] += bool(labels)
        stats["cvss_labelled"] += bool(rec.cvss3)
        stats["unknown_cwe_dropped"] += dropped
        out.append(rec)
    stats["bad_rows"] = len(errs)
    return out, stats


@dataclass
class Exclusion:
    """What the index must not hold while one item is scored."""

    ids: frozenset[str] = frozenset()
    desc_keys: frozenset[str] = frozenset()

    @classmethod
    def for_item(cls, cve_id: str | None, description: str | None) -> "Exclusion":
        ids = frozenset([cve_id.upper()]) if cve_id else frozenset()
        keys = frozenset([desc_key(description)]) if description else frozenset()
        return cls(ids, keys)

    @classmethod
    def union(cls, items: Iterable[tuple[str | None, str | None]]) -> "Exclusion":
        ids, keys = set(), set()
        for cid, desc in items:
            if cid:
                ids.add(cid.upper())
            if desc:
                keys.add(desc_key(desc))
        return cls(frozenset(ids), frozenset(keys))

    def matches(self, rec_id: str, rec_desc_key: str) -> bool:
        return rec_id in self.ids or rec_desc_key in self.desc_keys

    def fingerprint(self) -> str:
        h = hashlib.sha1()
        for x in sorted(self.ids) + ["|"] + sorted(self.desc_keys):
            h.update(x.encode())
        return h.hexdigest()[:12]
