"""Vulnerability lists in: CVE ids, CSV, Trivy JSON, Grype JSON, CycloneDX (VEX) JSON.

Every parser yields ``VulnItem`` rows and collects ``RowError`` for rows it cannot use (naming
the file, the row and the field); the other rows are still processed. ``read_vulns`` detects the
format when asked for ``auto``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from secfoundry.core.errors import InputError, read_input_file

FORMATS = ("auto", "ids", "csv", "trivy", "grype", "cyclonedx")
MAX_INPUT_BYTES = 100 * 1024 * 1024
MAX_ROWS = 200_000
# CVE, GHSA, and other advisory ids (PYSEC-2024-1, RUSTSEC-2024-0001, GO-2024-1234, RHSA-2024:1234, ...)
VULN_ID = re.compile(r"^(?:CVE-\d{4}-\d{4,}|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}|[A-Z][A-Z0-9]{1,11}-\d[\w.:-]*)$")
CVE_ID = re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.I)


@dataclass
class VulnItem:
    id: str                       # CVE id when one is known, else the scanner's id (GHSA-..., ...)
    row: str                      # where it came from: "row 3", "Results[0].Vulnerabilities[2]"
    aliases: list[str] = field(default_factory=list)
    package: str = ""
    version: str = ""
    fixed_version: str = ""
    asset: str = ""
    description: str = ""
    cvss_vector: str | None = None
    cvss_score: float | None = None
    severity: str = ""
    exposure: str | None = None     # internet | internal | isolated
    criticality: str | None = None  # low | medium | high
    vex_state: str | None = None    # CycloneDX analysis.state
    vex_justification: str | None = None


@dataclass
class RowError:
    file: str
    row: str
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"file {self.file}, {self.row}" + (f", field {self.field!r}" if self.field else "") + f": {self.message}"


@dataclass
class VulnList:
    items: list[VulnItem]
    errors: list[RowError]
    format: str
    source: str


def _norm_vector(v: Any) -> str | None:
    if not isinstance(v, str) or not v.strip():
        return None
    v = v.strip()
    if v.startswith("CVSS:3") or v.startswith("CVSS:4"):
        return v
    if re.match(r"^AV:[NALP]/AC:[LH]/PR:[NLH]/UI:[NR]/S:[UC]/C:[NLH]/I:[NLH]/A:[NLH]$", v):
        return "CVSS:3.1/" + v
    return None


def _cve_first(ids: list[str]) -> tuple[str, list[str]]:
    ids = [i for i in dict.fromkeys(x.strip() for x in ids if isinstance(x, str) and x.strip())]
    cves = [i.upper() for i in ids if CVE_ID.fullmatch(i)]
    main = cves[0] if cves else ids[0]
    return main, [i for i in ids if i.upper() != main.upper()]


def detect_format(data: bytes, name: str) -> str:
    head = data[:4096].lstrip()
    if head.startswith((b"{", b"[")):
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as e:
            raise InputError(f"looks like JSON but does not parse: {e.msg} at line {e.lineno}", file=name) from None
        if isinstance(doc, dict):
            if "Results" in doc or doc.get("SchemaVersion") is not None:
                return "trivy"
            if "matches" in doc:
                return "grype"
            if doc.get("bomFormat") == "CycloneDX" or "vulnerabilities" in doc:
                return "cyclonedx"
        raise InputError("JSON is not a Trivy, Grype or CycloneDX document", file=name)
    first = head.split(b"\n", 1)[0]
    if b"," in first and not CVE_ID.fullmatch(first.split(b",")[0].decode("utf-8", "replace").strip()):
        return "csv"
    return "ids"


def read_vulns(path: str | Path | None = None, *, data: bytes | None = None, format: str = "auto",
               name: str | None = None) -> VulnList:
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r} (one of {', '.join(FORMATS)})", file=str(path or name))
    if data is None:
        if path is None:
            raise InputError("no input given")
        name = str(Path(path))
        data = read_input_file(path, MAX_INPUT_BYTES)
    name = name or "<input>"
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"input is {len(data):,} bytes; the limit is {MAX_INPUT_BYTES:,}", file=name)
    if not data.strip():
        raise InputError("empty input", file=name)
    if b"\x00" in data[:65536]:
        raise InputError("binary input (NUL bytes)", file=name)
    fmt = detect_format(data, name) if format == "auto" else format
    errors: list[RowError] = []
    if fmt in ("ids", "csv"):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InputError(f"not valid UTF-8 at byte {e.start}", file=name) from None
        items = _ids(text, name, errors) if fmt == "ids" else _csv(text, name, errors)
    else:
        try:
            doc = json.loads(data)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}", file=name) from None
        except UnicodeDecodeError as e:
            raise InputError(f"not valid UTF-8 at byte {e.start}", file=name) from None
        items = list({"trivy": _trivy, "grype": _grype, "cyclonedx": _cyclonedx}[fmt](doc, name, errors))
    if len(items) > MAX_ROWS:
        raise InputError(f"{len(items):,} vulnerabilities; the limit is {MAX_ROWS:,}", file=name)
    return VulnList(items, errors, fmt, name)


def _ids(text: str, name: str, errors: list[RowError]) -> list[VulnItem]:
    out = []
    for ln, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        for tok in filter(None, re.split(r"[\s,;]+", line)):
            if CVE_ID.fullmatch(tok) or VULN_ID.match(tok):
                out.append(VulnItem(tok.upper() if CVE_ID.fullmatch(tok) else tok, f"line {ln}"))
            else:
                errors.append(RowError(name, f"line {ln}", None, f"{tok[:60]!r} is not a vulnerability id"))
    return out


_CSV_ID = ("cve", "id", "vulnerability", "vulnerability_id", "vuln_id", "cve_id")
_LEVELS = {"exposure": ("internet", "internal", "isolated"), "criticality": ("low", "medium", "high")}


def _csv(text: str, name: str, errors: list[RowError]) -> list[VulnItem]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise InputError("CSV has no header row", file=name)
    cols = {c.strip().lower(): c for c in reader.fieldnames if c}
    idcol = next((cols[c] for c in _CSV_ID if c in cols), None)
    if idcol is None:
        raise InputError(f"CSV needs an id column (one of {', '.join(_CSV_ID)}); found {list(cols)}", file=name, row=1)
    get = lambda r, *ks: next(((r.get(cols[k]) or "").strip() for k in ks if k in cols), "")  # noqa: E731
    out = []
    for i, r in enumerate(reader, start=2):
        row = f"row {i}"
        if None in r:
            errors.append(RowError(name, row, None, "more fields than the header"))
            continue
        vid = (r.get(idcol) or "").strip()
        if not vid:
            errors.append(RowError(name, row, idcol, "empty id"))
            continue
        if not (CVE_ID.fullmatch(vid) or VULN_ID.match(vid)):
            errors.append(RowError(name, row, idcol, f"{vid[:60]!r} is not a vulnerability id"))
            continue
        item = VulnItem(vid.upper() if CVE_ID.fullmatch(vid) else vid, row, package=get(r, "package", "pkg"),
                        version=get(r, "version", "installed_version"), asset=get(r, "asset", "host", "target"),
                        description=get(r, "description", "summary"), severity=get(r, "severity"))
        vec = get(r, "vector", "cvss_vector", "cvss")
        if vec:
            item.cvss_vector = _norm_vector(vec)
            if item.cvss_vector is None and not re.fullmatch(r"\d+(\.\d+)?", vec):
                errors.append(RowError(name, row, "vector", f"not a CVSS vector: {vec[:80]!r} (ignored)"))
        score = get(r, "score", "cvss_score", "base_score") or (vec if re.fullmatch(r"\d+(\.\d+)?", vec) else "")
        if score:
            try:
                item.cvss_score = float(score)
                if not 0 <= item.cvss_score <= 10:
                    raise ValueError
            except ValueError:
                errors.append(RowError(name, row, "score", f"not a CVSS score: {score[:20]!r} (ignored)"))
                item.cvss_score = None
        bad = False
        for k, allowed in _LEVELS.items():
            v = get(r, k).lower()
            if v and v not in allowed:
                errors.append(RowError(name, row, k, f"{v!r} is not one of {', '.join(allowed)}"))
                bad = True
            elif v:
                setattr(item, k, v)
        if not bad:
            out.append(item)
    return out


def _top_list(doc: Any, key: str, what: str, name: str) -> list[Any]:
    """The list under ``key`` of a scanner document, or an InputError naming the file."""
    items = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise InputError(f"{what} has no {key} list", file=name)
    return items


def _with_ids(entries: list[Any], key: str, name: str, errors: list[RowError], field: str,
              vuln: Callable[[Any], Any]) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(row name, entry, vulnerability object) for each entry whose ``vuln(entry)`` is an object
    with a string id; the others are reported as errors on ``field`` and skipped."""
    for i, m in enumerate(entries):
        row = f"{key}[{i}]"
        v = vuln(m)
        if not isinstance(v, dict) or not isinstance(v.get("id"), str):
            errors.append(RowError(name, row, field, "missing"))
            continue
        yield row, m, v


def _trivy(doc: Any, name: str, errors: list[RowError]) -> Iterator[VulnItem]:
    results = _top_list(doc, "Results", "Trivy report", name)
    for ri, res in enumerate(results):
        if not isinstance(res, dict):
            errors.append(RowError(name, f"Results[{ri}]", None, "not an object"))
            continue
        for vi, v in enumerate(res.get("Vulnerabilities") or []):
            row = f"Results[{ri}].Vulnerabilities[{vi}]"
            if not isinstance(v, dict) or not isinstance(v.get("VulnerabilityID"), str):
                errors.append(RowError(name, row, "VulnerabilityID", "missing"))
                continue
            main, aliases = _cve_first([v["VulnerabilityID"], *(v.get("VendorIDs") or [])])
            item = VulnItem(main, row, aliases, package=str(v.get("PkgName") or ""),
                            version=str(v.get("InstalledVersion") or ""), fixed_version=str(v.get("FixedVersion") or ""),
                            asset=str(res.get("Target") or doc.get("ArtifactName") or ""),
                            description=str(v.get("Description") or v.get("Title") or ""),
                            severity=str(v.get("Severity") or "").lower())
            cvss = v.get("CVSS") or {}
            for src in ("nvd", "ghsa", "redhat", *cvss):
                c = cvss.get(src) if isinstance(cvss, dict) else None
                if isinstance(c, dict) and _norm_vector(c.get("V3Vector")):
                    item.cvss_vector, item.cvss_score = _norm_vector(c["V3Vector"]), c.get("V3Score")
                    break
            yield item


def _grype(doc: Any, name: str, errors: list[RowError]) -> Iterator[VulnItem]:
    matches = _top_list(doc, "matches", "Grype report", name)
    for row, m, v in _with_ids(matches, "matches", name, errors, "vulnerability.id",
                               lambda m: m.get("vulnerability") if isinstance(m, dict) else None):
        related = [r for r in (m.get("relatedVulnerabilities") or []) if isinstance(r, dict)]
        main, aliases = _cve_first([v["id"], *(r.get("id") for r in related)])
        art = m.get("artifact") or {}
        desc = v.get("description") or next((r.get("description") for r in related if r.get("description")), "")
        item = VulnItem(main, row, aliases, package=str(art.get("name") or ""), version=str(art.get("version") or ""),
                        fixed_version=",".join((v.get("fix") or {}).get("versions") or []),
                        description=str(desc or ""), severity=str(v.get("severity") or "").lower())
        for c in [*(v.get("cvss") or []), *(c for r in related for c in (r.get("cvss") or []))]:
            if isinstance(c, dict) and _norm_vector(c.get("vector")) and str(c.get("version", "3")).startswith("3"):
                item.cvss_vector = _norm_vector(c["vector"])
                item.cvss_score = (c.get("metrics") or {}).get("baseScore")
                break
        yield item


def _cyclonedx(doc: Any, name: str, errors: list[RowError]) -> Iterator[VulnItem]:
    vulns = _top_list(doc, "vulnerabilities", "CycloneDX document", name)
    refs = {c.get("bom-ref"): c for c in (doc.get("components") or []) if isinstance(c, dict)}
    for row, _, v in _with_ids(vulns, "vulnerabilities", name, errors, "id", lambda v: v):
        main, aliases = _cve_first([v["id"], *(r.get("id") for r in (v.get("references") or []) if isinstance(r, dict))])
        analysis = v.get("analysis") or {}
        affects = [a.get("ref") for a in (v.get("affects") or []) if isinstance(a, dict)]
        comp = refs.get(affects[0]) if affects else None
        item = VulnItem(main, row, aliases, package=str((comp or {}).get("name") or (affects[0] if affects else "")),
                        version=str((comp or {}).get("version") or ""),
                        description=str(v.get("description") or v.get("detail") or ""),
                        vex_state=analysis.get("state"), vex_justification=analysis.get("justification"))
        for r in v.get("ratings") or []:
            if isinstance(r, dict) and str(r.get("method", "")).upper().startswith("CVSSV3"):
                item.cvss_vector = _norm_vector(r.get("vector"))
                item.cvss_score = r.get("score")
                item.severity = str(r.get("severity") or "")
                break
        yield item
