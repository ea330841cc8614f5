"""The advisory formats behind the ``osv`` connector, one parser each: OSV (YAML/JSON), the
GitHub REST advisory format, RustSec (Markdown + TOML front matter); plus the live GitHub and
api.osv.dev readers. ``osv.py`` declares the source and renders documents.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from secfoundry.core.errors import InputError
from secfoundry.core.records import ADVISORY, Record, Relation
from secfoundry.sources._archives import as_list, jsonable

GITHUB_ADVISORIES_API = "https://api.github.com/advisories"
OSV_API = "https://api.osv.dev/v1/vulns/"

_FRONT_MATTER = re.compile(r"\A\s*```toml[ \t]*\r?\n(.*?)\r?\n```[ \t]*\r?\n?(.*)\Z", re.S)
_ID = re.compile(r"^(CVE-\d{4}-\d{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3}|[A-Z][A-Z0-9]*-[\w.-]+)$")
_CWE = re.compile(r"^CWE-\d+$")

LICENSES = {
    "pypa": "CC-BY-4.0",
    "rustsec": "CC0-1.0",
    "github": "CC-BY-4.0",
}


def _advisory_url(adv_id: str, fallback: str = "") -> str:
    if adv_id.startswith("GHSA-"):
        return f"https://github.com/advisories/{adv_id}"
    if adv_id.startswith("RUSTSEC-"):
        return f"https://rustsec.org/advisories/{adv_id}.html"
    if adv_id.startswith("PYSEC-"):
        return f"https://osv.dev/vulnerability/{adv_id}"
    return fallback


def _alias_relations(aliases: list[str]) -> list[Relation]:
    return [Relation("alias-of", a) for a in aliases]


def _cwe_relations(cwes: list[str]) -> list[Relation]:
    return [Relation("related-weakness", c) for c in dict.fromkeys(cwes)]


def _norm_cwe(value: Any) -> str | None:
    s = str(value).strip().upper()
    if s.isdigit():
        s = f"CWE-{s}"
    return s if _CWE.match(s) else None


def _affected_summary(affected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Package, ecosystem and version ranges, flattened to what a reader needs."""
    out = []
    for a in affected:
        if not isinstance(a, dict):
            continue
        pkg = a.get("package") or {}
        ranges = []
        for r in as_list(a.get("ranges")):
            if not isinstance(r, dict):
                continue
            ev = []
            for e in as_list(r.get("events")):
                if isinstance(e, dict):
                    ev += [f"{k} {v}" for k, v in e.items()]
            ranges.append({"type": r.get("type", ""), "events": ev})
        out.append({
            "ecosystem": pkg.get("ecosystem", ""),
            "name": pkg.get("name", ""),
            "purl": pkg.get("purl", ""),
            "ranges": ranges,
            "versions": int(a["versions_count"]) if str(a.get("versions_count", "")).isdigit()
            else len(as_list(a.get("versions"))),
        })
    return out


def osv_record(data: Any, *, file: str, entry: str | None, feed: str, version: str) -> Record:
    """One OSV object (JSON or YAML already parsed) as an ``ADVISORY`` record."""
    if not isinstance(data, dict):
        raise InputError("an OSV record must be a mapping", file=file, row=entry)
    adv_id = str(data.get("id") or "").strip()
    if not adv_id or not _ID.match(adv_id):
        raise InputError(f"missing or malformed OSV id {adv_id!r}", file=file, row=entry, field="id")
    aliases = [str(a).strip() for a in as_list(data.get("aliases")) if str(a).strip()]
    related = [str(a).strip() for a in as_list(data.get("related")) if str(a).strip()]
    dbs = data.get("database_specific") or {}
    cwes = [c for c in (_norm_cwe(x) for x in as_list(dbs.get("cwe_ids"))) if c]
    severity = [s for s in as_list(data.get("severity")) if isinstance(s, dict)]
    refs = [r for r in as_list(data.get("references")) if isinstance(r, dict)]
    advisory_ref = next((r.get("url", "") for r in refs if r.get("type") == "ADVISORY"), "")
    summary = str(data.get("summary") or "").strip()
    details = str(data.get("details") or "").strip()
    affected = _affected_summary(as_list(data.get("affected")))
    name = summary or (f"{adv_id} in {affected[0]['name']}" if affected and affected[0]["name"] else adv_id)
    rels = _alias_relations(aliases) + [Relation("related", r) for r in related] + _cwe_relations(cwes)
    return Record(
        id=adv_id,
        type=ADVISORY,
        name=name,
        description=details or summary,
        source="osv",
        url=_advisory_url(adv_id, advisory_ref),
        version=version,
        license=LICENSES[feed],
        aliases=aliases,
        deprecated=bool(data.get("withdrawn")),
        relations=rels,
        attributes=jsonable({
            "feed": feed,
            "published": data.get("published", ""),
            "modified": data.get("modified", ""),
            "withdrawn": data.get("withdrawn", ""),
            "severity": [{"type": s.get("type", ""), "score": s.get("score", "")} for s in severity],
            "github_severity": dbs.get("severity", ""),
            "affected": affected,
            "references": [r.get("url", "") for r in refs if r.get("url")],
            "cwes": cwes,
        }),
    )


def github_rest_record(data: Any, *, file: str, entry: str | None, version: str) -> Record:
    """One advisory in the GitHub REST API format (``GET /advisories``)."""
    if not isinstance(data, dict):
        raise InputError("a GitHub advisory must be a mapping", file=file, row=entry)
    ghsa = str(data.get("ghsa_id") or "").strip()
    if not ghsa.startswith("GHSA-"):
        raise InputError(f"missing or malformed ghsa_id {ghsa!r}", file=file, row=entry, field="ghsa_id")
    aliases = [i.get("value", "") for i in as_list(data.get("identifiers"))
               if isinstance(i, dict) and i.get("value") and i.get("value") != ghsa]
    if data.get("cve_id") and data["cve_id"] not in aliases:
        aliases.insert(0, data["cve_id"])
    cwes = [c for c in (_norm_cwe((w or {}).get("cwe_id", "")) for w in as_list(data.get("cwes"))) if c]
    affected = []
    for v in as_list(data.get("vulnerabilities")):
        if not isinstance(v, dict):
            continue
        pkg = v.get("package") or {}
        events = [f"range {v['vulnerable_version_range']}"] if v.get("vulnerable_version_range") else []
        if v.get("first_patched_version"):
            fp = v["first_patched_version"]
            events.append(f"fixed {fp.get('identifier', fp) if isinstance(fp, dict) else fp}")
        affected.append({"ecosystem": pkg.get("ecosystem", ""), "name": pkg.get("name", ""), "purl": "",
                         "ranges": [{"type": "GITHUB", "events": events}], "versions": 0})
    severity = []
    for key, val in (data.get("cvss_severities") or {}).items():
        if isinstance(val, dict) and val.get("vector_string"):
            severity.append({"type": key.upper(), "score": val["vector_string"]})
    if not severity and isinstance(data.get("cvss"), dict) and data["cvss"].get("vector_string"):
        severity.append({"type": "CVSS_V3", "score": data["cvss"]["vector_string"]})
    summary = str(data.get("summary") or "").strip()
    return Record(
        id=ghsa,
        type=ADVISORY,
        name=summary or ghsa,
        description=str(data.get("description") or summary).strip(),
        source="osv",
        url=data.get("html_url") or _advisory_url(ghsa),
        version=version,
        license=LICENSES["github"],
        aliases=aliases,
        deprecated=bool(data.get("withdrawn_at")),
        relations=_alias_relations(aliases) + _cwe_relations(cwes),
        attributes=jsonable({
            "feed": "github",
            "published": data.get("published_at", ""),
            "modified": data.get("updated_at", ""),
            "withdrawn": data.get("withdrawn_at") or "",
            "severity": severity,
            "github_severity": str(data.get("severity") or "").upper(),
            "affected": affected,
            "references": [r for r in as_list(data.get("references")) if isinstance(r, str)],
            "cwes": cwes,
            "type": data.get("type", ""),
        }),
    )


def rustsec_record(text: str, *, file: str, entry: str | None, version: str) -> Record:
    """A RustSec advisory: TOML front-matter in a ```toml fence, then the Markdown body."""
    m = _FRONT_MATTER.match(text)
    if not m:
        raise InputError("no ```toml front-matter block at the top", file=file, row=entry)
    try:
        meta = tomllib.loads(m.group(1))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"invalid TOML front-matter: {e}", file=file, row=entry) from e
    adv = meta.get("advisory")
    if not isinstance(adv, dict):
        raise InputError("front-matter has no [advisory] table", file=file, row=entry, field="advisory")
    adv_id = str(adv.get("id") or "")
    if not re.match(r"^RUSTSEC-\d{4}-\d{4}$", adv_id):
        raise InputError(f"malformed advisory id {adv_id!r}", file=file, row=entry, field="advisory.id")
    body = m.group(2).strip()
    title, rest = adv_id, body
    hm = re.match(r"#\s+(.+?)\s*(?:\n|$)(.*)", body, re.S)
    if hm:
        title, rest = hm.group(1).strip(), hm.group(2).strip()
    aliases = [str(a) for a in as_list(adv.get("aliases"))]
    related = [str(a) for a in as_list(adv.get("related"))]
    versions = meta.get("versions") or {}
    affected = meta.get("affected") or {}
    severity = [{"type": "CVSS_V3" if str(adv["cvss"]).startswith("CVSS:3") else "CVSS_V4",
                 "score": adv["cvss"]}] if adv.get("cvss") else []
    return Record(
        id=adv_id,
        type=ADVISORY,
        name=title,
        description=rest,
        source="osv",
        url=_advisory_url(adv_id),
        version=version,
        license=LICENSES["rustsec"],
        aliases=aliases,
        deprecated=bool(adv.get("withdrawn")),
        relations=_alias_relations(aliases) + [Relation("related", r) for r in related],
        attributes=jsonable({
            "feed": "rustsec",
            "published": adv.get("date", ""),
            "withdrawn": adv.get("withdrawn", ""),
            "severity": severity,
            "informational": adv.get("informational", ""),
            "categories": as_list(adv.get("categories")),
            "keywords": as_list(adv.get("keywords")),
            "affected": [{
                "ecosystem": "crates.io",
                "name": adv.get("package", ""),
                "purl": f"pkg:cargo/{adv.get('package', '')}",
                "ranges": [{"type": "SEMVER",
                            "events": [f"patched {v}" for v in as_list(versions.get("patched"))]
                            + [f"unaffected {v}" for v in as_list(versions.get("unaffected"))]}],
                "versions": 0,
            }],
            "functions": sorted((affected.get("functions") or {}).keys()),
            "os": as_list(affected.get("os")),
            "references": [u for u in [adv.get("url", "")] + as_list(adv.get("references")) if u],
            "cwes": [],
        }),
    )


def advisory_from_json(data: Any, *, file: str, entry: str | None, version: str) -> Record:
    """OSV JSON or GitHub REST JSON, told apart by their keys."""
    if isinstance(data, dict) and "ghsa_id" in data and "id" not in data:
        return github_rest_record(data, file=file, entry=entry, version=version)
    feed = "github" if str((data or {}).get("id", "")).startswith("GHSA-") else "pypa"
    return osv_record(data, file=file, entry=entry, feed=feed, version=version)


def fetch_github_advisories(fetcher: Any, dest: Path, *, per_page: int = 100, max_pages: int | None = None,
                            params: dict[str, Any] | None = None, url: str = GITHUB_ADVISORIES_API) -> Path:
    """Page through ``GET /advisories`` (cursor paging via the Link header) into one JSON file.

    The Fetcher sends ``GITHUB_TOKEN`` as a bearer token to api.github.com and honours the
    API's Retry-After / 429 answers.
    """
    items: list[Any] = []
    next_url: str | None = url
    query: dict[str, Any] | None = {"per_page": per_page, "type": "reviewed", **(params or {})}
    pages = 0
    while next_url and (max_pages is None or pages < max_pages):
        resp = fetcher.get(next_url, params=query, headers={"Accept": "application/vnd.github+json",
                                                             "X-GitHub-Api-Version": "2022-11-28"})
        page = resp.json()
        if not isinstance(page, list):
            raise InputError("GitHub advisories API did not return a list", file=str(resp.url))
        items.extend(page)
        pages += 1
        next_url = resp.links.get("next", {}).get("url")
        query = None  # the next link carries the cursor and all parameters
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_text(json.dumps(items), encoding="utf-8")
    tmp.replace(dest)
    return dest


def osv_vuln(fetcher: Any, vuln_id: str, base: str = OSV_API) -> Record:
    """One advisory from api.osv.dev (``GET /v1/vulns/{id}``)."""
    data = fetcher.get_json(base + vuln_id)
    return advisory_from_json(data, file=base + vuln_id, entry=vuln_id, version="api.osv.dev")
