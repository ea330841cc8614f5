"""CVE records in the CVE JSON 5 format (cvelistV5), from a directory, a release zip or the API.

Over 400 lines: the CVE JSON 5 record format (CNA and ADP containers, CVSS v2/3/4
normalisation) and the live paging of cvelistV5 releases belong to one connector.

Layouts read: the cvelistV5 tree (``cves/YYYY/Nxxx/CVE-....json``), any directory of
``CVE-*.json`` files (the mirror's ``records/``), release zips (read in place; the baseline
release nests a ``cves.zip``, which is extracted once to the cache), and single files.

Each record merges its CNA container with its ADP containers (CISA-ADP "Vulnrichment" adds
CWEs, CVSS and SSVC decisions): ``attributes`` hold ``cwes`` (id, description, provider),
``cvss`` (one normalised entry per metric: version 2.0/3.0/3.1/4.0, vector, base score,
severity, provider; the score is computed with the ``cvss`` package when the record omits it),
``ssvc`` (exploitation, automatable, technical impact), ``affected`` products, ``kev`` (when an
ADP carries it) and references. REJECTED records are flagged ``revoked`` with the reason as
their description. ``normalize_metric`` and ``cvss_entry`` are shared with the NVD connector.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

from secfoundry.sources.base import (document_of, Quarantine, Snapshot, Source, decode_text, mirror_files, register,
                                     source_cache)
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core import records as rt
from secfoundry.core.records import Record, Relation

CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$")
CWE_IN_TEXT = re.compile(r"\bCWE-(\d+)\b")
RELEASES_API = "https://api.github.com/repos/CVEProject/cvelistV5/releases/latest"
CVE_API = "https://cveawg.mitre.org/api/cve/{id}"
_FILE = re.compile(r"(?:^|/)CVE-\d{4}-\d{4,}\.json$")

# -- CVSS ------------------------------------------------------------------------------------------

_KEY_VERSION = {"cvssV2_0": "2.0", "cvssV3_0": "3.0", "cvssV3_1": "3.1", "cvssV4_0": "4.0",
                "cvssMetricV2": "2.0", "cvssMetricV30": "3.0", "cvssMetricV31": "3.1", "cvssMetricV40": "4.0"}


def _severity_v2(score: float) -> str:
    return "LOW" if score < 4.0 else "MEDIUM" if score < 7.0 else "HIGH"


def cvss_entry(version: str, vector: str, score: Any = None, severity: Any = None,
               provider: str = "") -> dict[str, Any]:
    """One normalised CVSS metric. A missing score is computed from the vector (``cvss``
    package); a vector the package rejects is kept with ``vector_error`` set."""
    from cvss import CVSS2, CVSS3, CVSS4

    vector = (vector or "").strip()
    if version == "2.0":
        vector = vector.removeprefix("CVSS:2.0/")
    out: dict[str, Any] = {"version": version, "vector": vector, "base_score": None, "severity": "",
                           "provider": provider, "computed": False}
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        out["base_score"] = float(score)
    if severity:
        out["severity"] = str(severity).upper()
    if vector and (out["base_score"] is None or not out["severity"]):
        try:
            if version == "2.0":
                c2 = CVSS2(vector)
                base = float(c2.scores()[0])
                sev = _severity_v2(base)
            elif version.startswith("3"):
                c3 = CVSS3(vector if vector.startswith("CVSS:3") else f"CVSS:{version}/{vector}")
                base, sev = float(c3.scores()[0]), str(c3.severities()[0]).upper()
            elif version.startswith("4"):
                c4 = CVSS4(vector)
                base, sev = float(c4.base_score), str(c4.severity).upper()
            else:
                raise ValueError(f"unknown CVSS version {version!r}")
        except Exception as e:  # the library raises its own error types per version
            out["vector_error"] = f"{type(e).__name__}: {e}"
        else:
            if out["base_score"] is None:
                out["base_score"], out["computed"] = base, True
            if not out["severity"]:
                out["severity"] = sev
    return out


def normalize_metric(metric: dict[str, Any], provider: str) -> list[dict[str, Any]]:
    """A CVE JSON 5 ``metrics[]`` item -> normalised CVSS entries (other formats ignored)."""
    out = []
    for key, version in _KEY_VERSION.items():
        data = metric.get(key)
        if isinstance(data, dict):
            out.append(cvss_entry(str(data.get("version") or version), str(data.get("vectorString") or ""),
                                  data.get("baseScore"), data.get("baseSeverity"), provider))
    return out


# -- records ----------------------------------------------------------------------------------------


def _english(items: Iterable[dict[str, Any]] | None) -> str:
    items = [d for d in items or () if isinstance(d, dict)]
    for d in items:
        if str(d.get("lang", "")).lower().startswith("en") and d.get("value"):
            return str(d["value"]).strip()
    return str(items[0].get("value", "")).strip() if items else ""


def _provider(container: dict[str, Any], default: str) -> str:
    return str((container.get("providerMetadata") or {}).get("shortName") or default)


def _ssvc(metric: dict[str, Any]) -> dict[str, Any] | None:
    other = metric.get("other")
    if not isinstance(other, dict) or str(other.get("type", "")).lower() != "ssvc":
        return None
    content = other.get("content") or {}
    opts: dict[str, str] = {}
    for o in content.get("options") or ():
        if isinstance(o, dict):
            opts.update({str(k): str(v) for k, v in o.items()})
    return {"exploitation": opts.get("Exploitation", ""), "automatable": opts.get("Automatable", ""),
            "technical_impact": opts.get("Technical Impact", ""), "role": content.get("role", ""),
            "version": content.get("version", ""), "timestamp": content.get("timestamp", "")}


def _affected(items: Iterable[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for a in items or ():
        if not isinstance(a, dict):
            continue
        versions = []
        for v in a.get("versions") or ():
            if isinstance(v, dict):
                versions.append({k: v[k] for k in ("version", "status", "lessThan", "lessThanOrEqual", "versionType")
                                 if k in v})
        out.append({"vendor": a.get("vendor", ""), "product": a.get("product", "") or a.get("packageName", ""),
                    "versions": versions, "default_status": a.get("defaultStatus", ""),
                    "cpes": list(a.get("cpes") or [])})
    return out


# Caps on absurd sizes (no real record is near them): a longer text is cut with a note in
# ``attributes["truncated"]``; a file over MAX_RECORD_BYTES is quarantined unread.
MAX_RECORD_BYTES = 32 << 20
MAX_TEXT_CHARS = {"description": 64_000, "title": 2_000}
MAX_LIST_ITEMS = {"affected": 5_000, "references": 2_000}


def _need(obj: Any, path: str, kind: type, non_empty: bool = False) -> Any:
    if not isinstance(obj, kind) or (non_empty and not obj):
        what = "missing" if obj is None else f"a {type(obj).__name__}" if not isinstance(obj, kind) else "empty"
        raise InputError(f"required {kind.__name__} is {what} (CVE JSON 5 schema)", field=path)
    return obj


def check_required(data: Any) -> None:
    """The required fields of the CVE JSON 5 schema (5.0/5.1): dataType, dataVersion,
    cveMetadata.{cveId, assignerOrgId, state}, containers.cna with providerMetadata.orgId and,
    for a PUBLISHED record, descriptions (lang + value), affected and references; for a REJECTED
    one, rejectedReasons. Raises ``InputError`` naming the first missing field."""
    _need(data, "(record)", dict)
    if data.get("dataType") != "CVE_RECORD":
        raise InputError(f"dataType is {data.get('dataType')!r}, not CVE_RECORD", field="dataType")
    _need(data.get("dataVersion"), "dataVersion", str, True)
    meta = _need(data.get("cveMetadata"), "cveMetadata", dict)
    for k in ("cveId", "assignerOrgId", "state"):
        _need(meta.get(k), f"cveMetadata.{k}", str, True)
    cna = _need(_need(data.get("containers"), "containers", dict).get("cna"), "containers.cna", dict)
    _need(_need(cna.get("providerMetadata"), "containers.cna.providerMetadata", dict).get("orgId"),
          "containers.cna.providerMetadata.orgId", str, True)
    if meta.get("state") == "REJECTED":
        _need(cna.get("rejectedReasons"), "containers.cna.rejectedReasons", list, True)
        return
    for i, d in enumerate(_need(cna.get("descriptions"), "containers.cna.descriptions", list, True)):
        _need(d, f"containers.cna.descriptions[{i}]", dict)
        _need(d.get("lang"), f"containers.cna.descriptions[{i}].lang", str, True)
        _need(d.get("value"), f"containers.cna.descriptions[{i}].value", str, True)
    _need(cna.get("affected"), "containers.cna.affected", list, True)
    for i, r in enumerate(_need(cna.get("references"), "containers.cna.references", list, True)):
        _need(_need(r, f"containers.cna.references[{i}]", dict).get("url"), f"containers.cna.references[{i}].url", str, True)


def _capped(rec: Record) -> Record:
    """Cut absurdly long texts and lists (a 20 MB description) to the caps, noting what was cut."""
    notes: dict[str, int] = {}
    for attr, cap in MAX_TEXT_CHARS.items():
        val = rec.description if attr == "description" else rec.name
        if len(val) > cap:
            notes[attr] = len(val)
            cut = val[:cap] + f" [truncated: {len(val):,} characters, cap {cap:,}]"
            if attr == "description":
                rec.description = cut
            else:
                rec.name = cut
    for attr, cap in MAX_LIST_ITEMS.items():
        items = rec.attributes.get(attr) or []
        if len(items) > cap:
            notes[attr] = len(items)
            rec.attributes[attr] = items[:cap]
    if notes:
        rec.attributes["truncated"] = notes
    return rec


def parse_cve_json5(data: Any, origin: str = "") -> Record:
    """One CVE JSON 5 record -> ``Record`` (raises ``InputError`` naming the field on bad input:
    malformed ids and every required field of the schema, see ``check_required``)."""
    if not isinstance(data, dict):
        raise InputError(f"record is a {type(data).__name__}, not an object")
    meta = data.get("cveMetadata")
    if not isinstance(meta, dict):
        raise InputError("no cveMetadata object", field="cveMetadata")
    cve = str(meta.get("cveId") or "").strip().upper()
    if not CVE_ID.match(cve):
        raise InputError(f"malformed CVE id {meta.get('cveId')!r}", field="cveMetadata.cveId")
    check_required(data)
    return _capped(_parse_checked(data, meta, cve))


def _parse_checked(data: dict[str, Any], meta: dict[str, Any], cve: str) -> Record:
    containers = data.get("containers") or {}
    cna = containers.get("cna") or {}
    adps = [a for a in containers.get("adp") or () if isinstance(a, dict)]
    state = str(meta.get("state") or "")
    attrs: dict[str, Any] = {
        "state": state, "assigner": meta.get("assignerShortName", ""),
        "published": meta.get("datePublished", ""), "updated": meta.get("dateUpdated", ""),
        "reserved": meta.get("dateReserved", ""), "data_version": data.get("dataVersion", ""),
    }
    if state == "REJECTED":
        attrs["rejected"] = meta.get("dateRejected", "")
        return Record(id=cve, type=rt.VULNERABILITY, name=cve, description=_english(cna.get("rejectedReasons")),
                      source="cve", url=f"https://www.cve.org/CVERecord?id={cve}", revoked=True, attributes=attrs)

    cwes: list[dict[str, str]] = []
    cvss: list[dict[str, Any]] = []
    ssvc: dict[str, Any] | None = None
    kev: dict[str, Any] | None = None
    affected = _affected(cna.get("affected"))
    refs: list[str] = []
    for container, default in [(cna, "cna"), *((a, "adp") for a in adps)]:
        prov = _provider(container, default)
        for pt in container.get("problemTypes") or ():
            for d in (pt or {}).get("descriptions") or ():
                cid = str(d.get("cweId") or "").upper()
                if not cid:
                    m = CWE_IN_TEXT.search(str(d.get("description") or ""))
                    cid = f"CWE-{m.group(1)}" if m else ""
                if cid and not any(c["id"] == cid and c["provider"] == prov for c in cwes):
                    cwes.append({"id": cid, "description": str(d.get("description") or ""), "provider": prov})
        for metric in container.get("metrics") or ():
            if not isinstance(metric, dict):
                continue
            cvss.extend(normalize_metric(metric, prov))
            s = _ssvc(metric)
            if s:
                ssvc = {**s, "provider": prov}
            other = metric.get("other") or {}
            if str(other.get("type", "")).lower() == "kev":
                kev = dict(other.get("content") or {})
        if container is not cna and container.get("affected"):
            affected.extend(_affected(container.get("affected")))
        for r in container.get("references") or ():
            if isinstance(r, dict) and r.get("url") and r["url"] not in refs:
                refs.append(r["url"])
    attrs.update(cwes=cwes, cvss=cvss, affected=affected, references=refs)
    if ssvc:
        attrs["ssvc"] = ssvc
    if kev:
        attrs["kev_date_added"] = kev.get("dateAdded", "")
    rels = scores_and_weaknesses(attrs, cvss, cwes)
    return Record(
        id=cve, type=rt.VULNERABILITY, name=str(cna.get("title") or cve), description=_english(cna.get("descriptions")),
        source="cve", url=f"https://www.cve.org/CVERecord?id={cve}", relations=rels, attributes=attrs,
    )


def best_cvss(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The metric to show first: newest CVSS version with a score (3.1 > 4.0 > 3.0 > 2.0 for
    comparability with most tooling), first provider wins."""
    order = {"3.1": 0, "4.0": 1, "3.0": 2, "2.0": 3}
    scored = [e for e in entries if e.get("base_score") is not None]
    return min(scored, key=lambda e: order.get(e["version"], 9)) if scored else None


def scores_and_weaknesses(attrs: dict[str, Any], cvss: list[dict[str, Any]], cwes: list[dict[str, Any]]
                          ) -> list[Relation]:
    """Put the headline CVSS (``best_cvss``) into ``attrs``; return ``related-weakness`` relations
    to the well-formed CWE ids (the CVE and NVD records share this)."""
    best = best_cvss(cvss)
    if best:
        attrs["cvss_base_score"], attrs["cvss_version"], attrs["cvss_severity"] = (
            best["base_score"], best["version"], best["severity"])
    return [Relation("related-weakness", c["id"], {"provider": c["provider"]})
            for c in cwes if re.match(r"^CWE-\d+$", c["id"])]


# -- connector --------------------------------------------------------------------------------------


class CveSource(Source):
    name = "cve"
    title = "CVE List (CVE JSON 5 records, cvelistV5)"
    license = "CVE Terms of Use (free use, attribution; © The MITRE Corporation); CISA ADP: CC0-1.0"
    homepage = "https://www.cve.org/"

    def __init__(self, ids: Iterable[str] | None = None, releases_api: str = RELEASES_API, cve_api: str = CVE_API):
        self.ids = [i.upper() for i in ids] if ids else []
        self.releases_api, self.cve_api = releases_api, cve_api

    def fetch(self, mirror: Path | None = None, *, fetcher: Any = None) -> Snapshot:
        if mirror is not None:
            base = Path(mirror) / "cve" if (Path(mirror) / "cve").is_dir() else Path(mirror)
            dirs = [base / d for d in ("records", "cves", "deltaCves") if (base / d).is_dir()]
            try:
                files = mirror_files(base, "cve", ["*.zip", "CVE-*.json"])
            except InputError:
                if not dirs:
                    raise InputError("no CVE JSON 5 records (records/, cves/, *.zip or CVE-*.json)",
                                     file=str(base)) from None
                files = []
            return Snapshot(self.name, [*dirs, *files], version=_peek_version([*dirs, *files]),
                            origin=f"mirror:{base}")
        from secfoundry.core.download import Fetcher

        own = fetcher is None
        fetcher = fetcher or Fetcher()
        try:
            cache = source_cache(self.name)
            if self.ids:  # a handful of records from the CVE Services API
                out = cache / "api"
                out.mkdir(parents=True, exist_ok=True)
                files = [fetcher.download(self.cve_api.format(id=cid), out / f"{cid}.json") for cid in self.ids]
                return Snapshot(self.name, files, origin=self.cve_api)
            release = fetcher.get_json(self.releases_api)
            assets = [a for a in release.get("assets") or () if "all_CVEs" in str(a.get("name", ""))]
            if not assets:
                raise InputError("latest cvelistV5 release has no all_CVEs asset", file=self.releases_api)
            asset = assets[0]
            path = fetcher.download(asset["browser_download_url"], cache / asset["name"])
            return Snapshot(self.name, [path], version=str(release.get("tag_name") or ""),
                            origin=asset["browser_download_url"])
        finally:
            if own:
                fetcher.close()

    def _sources(self, snapshot: Snapshot, q: Quarantine) -> Iterator[tuple[str, str, bytes]]:
        """(container, entry name, raw bytes) for every CVE JSON file in the snapshot."""
        for p in map(Path, snapshot.files):
            if p.is_dir():
                for f in sorted(p.rglob("CVE-*.json")):
                    try:
                        yield str(p), str(f.relative_to(p)), f.read_bytes()
                    except OSError as e:
                        q.add(self.name, str(f), None, e)
            elif zipfile.is_zipfile(p):
                yield from self._zip(p, q)
            elif p.suffix == ".zip":
                q.add(self.name, str(p), None, InputError("not a valid zip archive", file=str(p)))
            elif p.is_file():
                try:
                    yield str(p.parent), p.name, p.read_bytes()
                except OSError as e:
                    q.add(self.name, str(p), None, e)

    def _zip(self, path: Path, q: Quarantine) -> Iterator[tuple[str, str, bytes]]:
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            q.add(self.name, str(path), None, InputError(f"bad zip ({e})", file=str(path)))
            return
        with zf:
            for info in zf.infolist():
                if info.filename.endswith(".zip"):
                    # Baseline releases nest cves.zip: extract it once, then read it in place.
                    inner = source_cache(self.name) / "unpacked" / f"{path.stem}-{Path(info.filename).name}"
                    if not inner.exists() or inner.stat().st_size != info.file_size:
                        inner.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(info) as src, inner.open("wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                    yield from self._zip(inner, q)
                elif _FILE.search(info.filename):
                    try:
                        yield str(path), info.filename, zf.read(info)
                    except (zipfile.BadZipFile, OSError, EOFError) as e:  # CRC errors, truncation
                        q.add(self.name, str(path), info.filename, InputError(f"cannot read member ({e})",
                                                                             file=str(path), row=info.filename))

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        stats: Counter[str] = Counter()
        newest = ""
        for container, entry, raw in self._sources(snapshot, q):
            try:
                if len(raw) > MAX_RECORD_BYTES:
                    raise InputError(f"record is {len(raw):,} bytes, over the {MAX_RECORD_BYTES:,} byte cap")
                data = json.loads(decode_text(raw, container, entry))
                rec = parse_cve_json5(data)
            except json.JSONDecodeError as e:
                q.add(self.name, container, entry,
                      InputError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}", file=container, row=entry))
                stats["bad_records"] += 1
                continue
            except InputError as e:
                q.add(self.name, container, entry, InputError(str(e), file=container, row=entry))
                stats["bad_records"] += 1
                continue
            except Exception as e:  # noqa: BLE001 - e.g. RecursionError on absurd nesting: one record, not the run
                q.add(self.name, container, entry, InputError(f"unreadable record ({type(e).__name__}: {e})"[:300],
                                                              file=container, row=entry))
                stats["bad_records"] += 1
                continue
            if rec.attributes.get("truncated"):
                q.add(self.name, container, entry, InputError(
                    "accepted with truncation: " + ", ".join(f"{k} {v:,}" for k, v in rec.attributes["truncated"].items())
                    + " (over the caps)", file=container, row=entry))
                stats["truncated_records"] += 1
            rec.license = self.license
            stats["records"] += 1
            stats[f"state:{rec.attributes.get('state')}"] += 1
            stats["computed_scores"] += sum(m.get("computed", False) for m in rec.attributes.get("cvss", []))
            stats["vector_errors"] += sum("vector_error" in m for m in rec.attributes.get("cvss", []))
            newest = max(newest, str(rec.attributes.get("updated", ""))[:10])
            rec.version = snapshot.version or newest
            yield rec
        if not snapshot.version and newest:
            snapshot.version = f"records-updated-{newest}"
        snapshot.extra["stats"] = dict(stats)

    def documents(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Document]:
        for r in self.records(snapshot, quarantine):
            if r.revoked:
                continue
            yield vulnerability_document(r, self.name, self.license)


def _peek_version(paths: list[Path], limit: int = 20000) -> str:
    """A version for a local CVE collection before parsing: cvelistV5's ``delta.json`` fetchTime,
    else the newest ``dateUpdated`` of a small tree, else the release zip's name."""
    for p in paths:
        delta = p / "delta.json" if p.is_dir() else None
        if delta is not None and delta.is_file():
            try:
                return str(json.loads(delta.read_text()).get("fetchTime") or "")[:19]
            except (OSError, ValueError):
                pass
    newest = ""
    for p in paths:
        if p.is_dir():
            files = []
            for i, f in enumerate(p.rglob("CVE-*.json")):
                if i >= limit:
                    return ""  # too many to scan up front; records() sets the version
                files.append(f)
            for f in files:
                for m in re.findall(rb'"dateUpdated"\s*:\s*"([^"]+)"', f.read_bytes()):
                    newest = max(newest, m.decode()[:10])
        elif p.suffix == ".zip":
            return p.stem
    return f"records-updated-{newest}" if newest else ""


def vulnerability_document(r: Record, source: str, license: str) -> Document:
    """Markdown for a CVE/NVD vulnerability record."""
    a = r.attributes
    title = r.name if r.name != r.id else ""
    lines = [f"# {r.id}" + (f": {title}" if title else ""), "", r.description]
    facts = []
    if a.get("published"):
        facts.append(f"- **Published**: {str(a['published'])[:10]}")
    for m in a.get("cvss", []):
        if m.get("base_score") is not None:
            facts.append(f"- **CVSS {m['version']}** ({m['provider']}): {m['base_score']} {m['severity']} `{m['vector']}`")
    if a.get("cwes"):
        facts.append("- **Weaknesses**: " + ", ".join(
            f"{c['id']}" + (f" ({c['description']})" if c.get("description") and c["description"] != c["id"] else "")
            for c in a["cwes"]))
    if a.get("ssvc"):
        s = a["ssvc"]
        facts.append(f"- **SSVC** ({s.get('provider', '')}): exploitation {s['exploitation']}, "
                     f"automatable {s['automatable']}, technical impact {s['technical_impact']}")
    if a.get("kev_date_added"):
        facts.append(f"- **CISA KEV**: added {a['kev_date_added']}")
    if facts:
        lines += ["", *facts]
    prods = []
    for p in a.get("affected", [])[:20]:
        vs = [v.get("version", "") + (f" < {v['lessThan']}" if v.get("lessThan") else "")
              + (f" <= {v['lessThanOrEqual']}" if v.get("lessThanOrEqual") else "")
              for v in p.get("versions", []) if v.get("status") == "affected"]
        name = " ".join(x for x in (p.get("vendor"), p.get("product")) if x and x != "n/a")
        if name:
            prods.append(f"- {name}" + (f": {', '.join(vs[:10])}" if vs else ""))
    if prods:
        lines += ["", "## Affected products", "", *prods]
    refs = a.get("references", [])[:10]
    if refs:
        lines += ["", "## References", "", *[f"- {u}" for u in refs]]
    return document_of(r, "\n".join(lines).strip() + "\n", id=f"{source}:{r.id}", source=source, license=license,
                       title=r.id + (f": {title}" if title else ""), published=str(a.get("published", ""))[:10])


register(CveSource)

__all__ = ["CveSource", "parse_cve_json5", "cvss_entry", "normalize_metric", "best_cvss",
           "vulnerability_document"]
