"""OSV and GitHub security advisories: PyPA (OSV YAML), RustSec (Markdown + TOML), GHSA (JSON).

Formats, as upstream publishes them:

- ``pypa/advisory-database``: ``vulns/<package>/PYSEC-YYYY-N.yaml``, OSV schema in YAML;
- ``rustsec/advisory-db``: ``crates/<crate>/RUSTSEC-YYYY-NNNN.md``, a fenced ```` ```toml ````
  front-matter block (``[advisory]``, ``[versions]``, ``[affected]``) then Markdown whose first
  ``#`` heading is the title;
- GitHub advisories: either OSV JSON (``github/advisory-database``, ``GHSA-*.json``) or the
  GitHub REST API format (``api.github.com/advisories``: ``ghsa_id``, ``cve_id``,
  ``vulnerabilities``, ``cwes`` ...). Both are accepted; the shape tells them apart.

Live mode downloads the PyPA and RustSec branch tarballs (conditional requests) and, when
``GITHUB_TOKEN`` is set, pages through the reviewed GitHub advisories (Link-header paging).
``osv_vuln`` fetches one record from api.osv.dev.

Every advisory becomes an ``ADVISORY`` record ``PYSEC-...``/``RUSTSEC-...``/``GHSA-...`` with
``alias-of`` relations to its CVE/GHSA aliases and ``related-weakness`` relations to CWEs.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources._archives import (as_list, at_ref, iter_tar, jsonable, load_yaml, report, set_stats,
                                          tar_date)
from secfoundry.sources.base import (Quarantine, Remote, Snapshot, Source, decode_text, document_of, load_json,
                                     register, source_cache)
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core.records import ADVISORY, Record, Relation

PYPA_TARBALL = Remote("https://github.com/pypa/advisory-database/archive/refs/heads/main.tar.gz",
                      "pypa-advisory-database-main.tar.gz")
RUSTSEC_TARBALL = Remote("https://github.com/rustsec/advisory-db/archive/refs/heads/main.tar.gz",
                         "rustsec-advisory-db-main.tar.gz")
GITHUB_ADVISORIES_API = "https://api.github.com/advisories"
OSV_API = "https://api.osv.dev/v1/vulns/"

_PYPA_MEMBER = re.compile(r"(^|/)vulns/[^/]+/[A-Z]+-[^/]+\.ya?ml$")
_RUSTSEC_MEMBER = re.compile(r"(^|/)crates/[^/]+/RUSTSEC-\d{4}-\d{4}\.md$")
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


@register
class OSVSource(Source):
    name = "osv"
    title = "OSV / GitHub security advisories (PyPA, RustSec, GHSA)"
    license = "CC-BY-4.0 (PyPA, GitHub); CC0-1.0 (RustSec)"
    homepage = "https://osv.dev"
    folder = "advisories"
    patterns = ("*.tar.gz", "*.tgz", "ghsa-sample/*.json", "*.json")

    def __init__(self, pypa_ref: str | None = None, rustsec_ref: str | None = None):
        """Git refs (tag, branch or commit) to pin the two advisory databases to."""
        self.pypa_ref, self.rustsec_ref = pypa_ref, rustsec_ref

    def remotes(self) -> tuple[Remote, ...]:
        return (at_ref(PYPA_TARBALL, self.pypa_ref), at_ref(RUSTSEC_TARBALL, self.rustsec_ref))

    def feeds(self, files: list[Path]) -> dict[str, str]:
        return {_feed_of(f): tar_date(f) for f in files if f.name.endswith((".tar.gz", ".tgz"))}

    def version_of(self, files: list[Path]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.feeds(files).items()) if v)

    def snapshot_extra(self, mirror: Path | None, files: list[Path]) -> dict[str, Any]:
        return {"feeds": self.feeds(files)}

    def fetch(self, mirror: Path | None = None, *, fetcher: Any = None) -> Snapshot:
        """The two tarballs; live with a ``GITHUB_TOKEN``, the GitHub advisory API pages too."""
        snap = super().fetch(mirror, fetcher=fetcher)
        if mirror is None and os.environ.get("GITHUB_TOKEN"):
            # Unauthenticated, the API allows 60 requests an hour: too few to page ~200 pages.
            from secfoundry.core.download import Fetcher

            own = fetcher is None
            f = fetcher or Fetcher()
            try:
                dest = source_cache(self.name) / "github-advisories.json"
                snap.files.append(fetch_github_advisories(f, dest, url=GITHUB_ADVISORIES_API))
            finally:
                if own:
                    f.close()
            snap.origin += " " + GITHUB_ADVISORIES_API
        return snap

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        feeds = snapshot.extra.get("feeds", {})
        counts: dict[str, int] = {}
        for path in snapshot.files:
            if path.name.endswith((".tar.gz", ".tgz")):
                feed = _feed_of(path)
                version = f"{feed} {feeds.get(feed, '')}".strip()
                recs = self._tarball(path, feed, version, q)
            elif path.suffix == ".json":
                recs = self._json_file(path, q)
            else:
                continue
            for rec in recs:
                counts[rec.attributes["feed"]] = counts.get(rec.attributes["feed"], 0) + 1
                yield rec
        set_stats(snapshot, **{f"{feed}_advisories": n for feed, n in sorted(counts.items())})

    def _tarball(self, path: Path, feed: str, version: str, q: Quarantine) -> Iterator[Record]:
        def want(name: str) -> bool:
            return bool(_PYPA_MEMBER.search(name) or _RUSTSEC_MEMBER.search(name)
                        or (name.endswith(".json") and "/GHSA-" in name))

        for member, data in iter_tar(path, want, source=self.name, quarantine=q):
            try:
                if member.endswith(".md"):
                    text = decode_text(data, str(path), member)
                    yield rustsec_record(text, file=str(path), entry=member, version=version)
                elif member.endswith(".json"):
                    yield advisory_from_json(load_json(path, data, member), file=str(path), entry=member,
                                             version=version)
                else:
                    text = _count_versions(decode_text(data, str(path), member))
                    yield osv_record(load_yaml(text, str(path), member, strings=True), file=str(path), entry=member,
                                     feed="pypa" if feed != "github" else feed, version=version)
            except InputError as e:
                report(q, self.name, path, member, e)

    def _json_file(self, path: Path, q: Quarantine) -> Iterator[Record]:
        try:
            data = load_json(path)
        except InputError as e:
            report(q, self.name, path, None, e)
            return
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            entry = (item.get("id") or item.get("ghsa_id")) if isinstance(item, dict) else None
            modified = (item.get("modified") or item.get("updated_at") or "") if isinstance(item, dict) else ""
            try:
                yield advisory_from_json(item, file=str(path), entry=entry or i,
                                         version=f"github {str(modified)[:10]}".strip())
            except InputError as e:
                report(q, self.name, path, entry or i, e)

    def render(self, rec: Record, context: Any = None) -> Document:
        return advisory_document(rec)


# PyPA files list every affected release under ``versions:`` (hundreds of lines for some
# packages); building those YAML nodes is most of the parse time and records keep only the
# count, so a block in the generator's canonical layout is counted and cut before parsing.
_VERSIONS_BLOCK = re.compile(r"^( *)versions:\n((?:\1- .*\n)+)", re.M)


def _count_versions(text: str) -> str:
    return _VERSIONS_BLOCK.sub(lambda m: f"{m.group(1)}versions_count: '{m.group(2).count(chr(10))}'\n", text)


def _feed_of(path: Path) -> str:
    n = path.name.lower()
    if "rustsec" in n or "advisory-db" in n:
        return "rustsec"
    if "ghsa" in n or "github" in n:
        return "github"
    return "pypa"


def advisory_document(rec: Record) -> Document:
    a = rec.attributes
    lines = [f"# {rec.id}: {rec.name}", ""]
    facts = []
    if rec.aliases:
        facts.append(f"- **Aliases**: {', '.join(rec.aliases)}")
    if a.get("published"):
        facts.append(f"- **Published**: {a['published']}")
    if a.get("withdrawn"):
        facts.append(f"- **Withdrawn**: {a['withdrawn']}")
    for s in a.get("severity", []):
        facts.append(f"- **Severity ({s['type']})**: {s['score']}")
    if a.get("github_severity"):
        facts.append(f"- **GitHub severity**: {a['github_severity']}")
    if a.get("cwes"):
        facts.append(f"- **Weaknesses**: {', '.join(a['cwes'])}")
    if a.get("informational"):
        facts.append(f"- **Informational**: {a['informational']}")
    lines += facts + ([""] if facts else [])
    if rec.description:
        lines += [rec.description.strip(), ""]
    if a.get("affected"):
        lines += ["## Affected packages", ""]
        for p in a["affected"]:
            events = "; ".join(e for r in p.get("ranges", []) for e in r.get("events", []))
            lines.append(f"- {p.get('ecosystem', '')} `{p.get('name', '')}`" + (f": {events}" if events else ""))
        lines.append("")
    if a.get("references"):
        lines += ["## References", ""] + [f"- {u}" for u in a["references"]] + [""]
    return document_of(rec, "\n".join(lines).strip() + "\n", id=f"osv:{rec.id}", source="osv",
                       title=f"{rec.id}: {rec.name}", feed=a.get("feed", ""), aliases=rec.aliases)
