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

import os
import re
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources._archives import (at_ref, iter_tar, load_yaml, report, set_stats,
                                          tar_date)
from secfoundry.sources._advisories import (GITHUB_ADVISORIES_API, advisory_from_json, fetch_github_advisories,
                                            osv_record, osv_vuln, rustsec_record)
from secfoundry.sources.base import (Quarantine, Remote, Snapshot, Source, decode_text, document_of, load_json,
                                     register, source_cache)
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core.records import Record

PYPA_TARBALL = Remote("https://github.com/pypa/advisory-database/archive/refs/heads/main.tar.gz",
                      "pypa-advisory-database-main.tar.gz")
RUSTSEC_TARBALL = Remote("https://github.com/rustsec/advisory-db/archive/refs/heads/main.tar.gz",
                         "rustsec-advisory-db-main.tar.gz")
_PYPA_MEMBER = re.compile(r"(^|/)vulns/[^/]+/[A-Z]+-[^/]+\.ya?ml$")
_RUSTSEC_MEMBER = re.compile(r"(^|/)crates/[^/]+/RUSTSEC-\d{4}-\d{4}\.md$")
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

__all__ = ["OSVSource", "advisory_document", "advisory_from_json", "fetch_github_advisories", "osv_record", "osv_vuln",
           "rustsec_record"]
