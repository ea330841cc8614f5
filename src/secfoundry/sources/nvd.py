"""NVD CVE API 2.0 (``services.nvd.nist.gov/rest/json/cves/2.0``): client and parser.

Live sync pages through ``startIndex``/``resultsPerPage`` (2,000, the API maximum) until
``totalResults``; incremental syncs ask for ``lastModStartDate``/``lastModEndDate`` windows of at
most 120 days (the API's limit) from the end of the previous sync. The API key comes from
``NVD_API_KEY`` (sent as the ``apiKey`` header by ``Fetcher``), and requests are spaced by the
documented rate limits: 5 requests per rolling 30 s without a key, 50 with one. Every page is
written to the cache as it arrives, and an interrupted sync resumes at the first missing page.

The parser reads a whole API response (``{"vulnerabilities": [{"cve": ...}]}``) or a bare
``cve`` object (the mirror's form), into ``vulnerability`` records of source ``nvd``: NVD and
CNA CVSS metrics (normalised as in the CVE connector, with ``type`` Primary/Secondary), CWEs
(``NVD-CWE-Other``/``NVD-CWE-noinfo`` kept as attributes only), vulnerable CPE match criteria,
references with tags, CISA KEV fields, and ``vulnStatus`` (``Rejected`` -> ``revoked``).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from secfoundry.sources.base import (Quarantine, Snapshot, Source, each_loaded, load_json, mirror_files, read_bytes,
                                     register, source_cache)
from secfoundry.sources.cve import CVE_ID, cvss_entry, scores_and_weaknesses, vulnerability_document
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core import records as rt
from secfoundry.core.records import Record

API = "https://services.nvd.nist.gov/rest/json/cves/2.0"
PAGE_SIZE = 2000  # resultsPerPage maximum for the CVE API
WINDOW_DAYS = 120  # maximum range of any date-range parameter pair
_METRICS = {"cvssMetricV2": "2.0", "cvssMetricV30": "3.0", "cvssMetricV31": "3.1", "cvssMetricV40": "4.0"}


def rate_interval(has_key: bool) -> float:
    """Seconds between requests: NVD allows 5 requests / 30 s without a key, 50 / 30 s with one."""
    return 30.0 / 50 if has_key else 30.0 / 5


def nvd_time(dt: datetime) -> str:
    """Extended ISO-8601 as the API wants it, e.g. 2024-04-01T13:00:00.000+00:00."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


def windows(start: datetime, end: datetime, days: int = WINDOW_DAYS) -> list[tuple[datetime, datetime]]:
    """Split [start, end] into consecutive windows of at most ``days`` days."""
    if end <= start:
        return []
    out, cur, step = [], start, timedelta(days=days)
    while cur < end:
        nxt = min(cur + step, end)
        out.append((cur, nxt))
        cur = nxt
    return out


@dataclass
class _Plan:
    since: str  # ISO, "" for a full dump
    until: str

    @property
    def key(self) -> str:
        strip = lambda s: re.sub(r"[^0-9T]", "", s)[:15]  # noqa: E731
        return f"{strip(self.since) or 'full'}-{strip(self.until)}"


class NvdSource(Source):
    name = "nvd"
    title = "NIST National Vulnerability Database (CVE API 2.0)"
    license = "Public domain (U.S. Government work; NVD terms of use, not endorsed by NIST)"
    homepage = "https://nvd.nist.gov/"

    def __init__(self, since: datetime | None = None, until: datetime | None = None, *, api: str = API,
                 page_size: int = PAGE_SIZE, window_days: int = WINDOW_DAYS, rate_limit: float | None = None,
                 full: bool = False, params: dict[str, str] | None = None):
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{PAGE_SIZE}")
        if not 1 <= window_days <= WINDOW_DAYS:
            raise ValueError(f"window_days must be 1..{WINDOW_DAYS}")
        self.since, self.until, self.full = since, until, full
        self.api, self.page_size, self.window_days = api, page_size, window_days
        self.rate_limit = rate_limit
        self.params = dict(params or {})

    # -- fetching -------------------------------------------------------------------------------
    def fetch(self, mirror: Path | None = None, *, fetcher: Any = None) -> Snapshot:
        if mirror is not None:
            files = mirror_files(Path(mirror), "nvd", ["*.json", "*.json.gz"])
            return Snapshot(self.name, files, version=_peek_version(files), origin=f"mirror:{files[0].parent}")
        from secfoundry.core.download import Fetcher

        own = fetcher is None
        fetcher = fetcher or Fetcher()
        try:
            return self._sync(fetcher)
        finally:
            if own:
                fetcher.close()

    def _state_path(self) -> Path:
        return source_cache(self.name) / "state.json"

    def _load_state(self) -> dict[str, Any]:
        try:
            return json.loads(self._state_path().read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, state: dict[str, Any]) -> None:
        p = self._state_path()
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, p)

    def plan(self) -> _Plan:
        """What to ask for: an explicit range, a resumed one, the gap since the last sync, or all."""
        state = self._load_state()
        pending = state.get("pending")
        if pending and self.since is None and self.until is None and (pending["since"] == "") == self.full:
            return _Plan(**pending)
        until = self.until or datetime.now(timezone.utc)
        if self.full:
            return _Plan("", until.isoformat())
        since = self.since
        if since is None and state.get("last_mod_end"):
            since = datetime.fromisoformat(state["last_mod_end"])
        return _Plan(since.isoformat() if since else "", until.isoformat())

    def _sync(self, fetcher: Any) -> Snapshot:
        host = urlsplit(self.api).hostname or ""
        has_key = fetcher.api_key(self.api) is not None
        fetcher.set_rate_limit(host, self.rate_limit if self.rate_limit is not None else rate_interval(has_key))
        plan = self.plan()
        state = self._load_state()
        state["pending"] = {"since": plan.since, "until": plan.until}
        self._save_state(state)
        pages_dir = source_cache(self.name) / "pages" / plan.key
        pages_dir.mkdir(parents=True, exist_ok=True)
        if plan.since:
            wins = windows(datetime.fromisoformat(plan.since), datetime.fromisoformat(plan.until), self.window_days)
        else:
            wins = [None]  # full dump: no date filter, just paging
        files: list[Path] = []
        requests = total = 0
        for wi, win in enumerate(wins):
            start = 0
            while True:
                page = pages_dir / f"w{wi:03d}-{start:08d}.json"
                if page.exists():  # resumed: this page arrived in an earlier, interrupted run
                    data = load_json(page)
                else:
                    params: dict[str, Any] = {**self.params, "startIndex": start, "resultsPerPage": self.page_size}
                    if win is not None:
                        params["lastModStartDate"], params["lastModEndDate"] = nvd_time(win[0]), nvd_time(win[1])
                    data = fetcher.get_json(self.api, params=params)
                    requests += 1
                    if not isinstance(data, dict) or not isinstance(data.get("vulnerabilities"), list):
                        raise InputError("NVD response has no 'vulnerabilities' list", file=self.api, row=start)
                    tmp = page.with_suffix(".tmp")
                    tmp.write_text(json.dumps(data))
                    os.replace(tmp, page)
                files.append(page)
                got = len(data["vulnerabilities"])
                window_total = int(data.get("totalResults") or 0)
                start += got
                if got == 0 or start >= window_total:
                    total += window_total
                    break
        state = {"last_mod_end": plan.until, "last_sync": datetime.now(timezone.utc).isoformat()}
        self._save_state(state)
        return Snapshot(self.name, files, version=plan.until, origin=self.api,
                        extra={"requests": requests, "windows": len(wins), "total_results": total,
                               "since": plan.since, "until": plan.until, "api_key": has_key})

    # -- parsing ---------------------------------------------------------------------------------
    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        stats: Counter[str] = Counter()
        out: dict[str, Record] = {}
        newest = ""
        for file, data in each_loaded(self.name, map(Path, snapshot.files), load_json, q, stats):
            if isinstance(data, dict) and isinstance(data.get("vulnerabilities"), list):
                items = [(i, v.get("cve") if isinstance(v, dict) else v) for i, v in enumerate(data["vulnerabilities"])]
                if data.get("timestamp"):
                    newest = max(newest, str(data["timestamp"]))
            elif isinstance(data, dict) and "id" in data:
                items = [(0, data)]
            else:
                q.add(self.name, str(file), None, InputError("neither an NVD API response nor a cve object",
                                                             file=str(file)))
                stats["bad_files"] += 1
                continue
            for i, cve in items:
                try:
                    rec = parse_nvd_cve(cve)
                except InputError as e:
                    entry = cve.get("id") if isinstance(cve, dict) else None
                    q.add(self.name, str(file), f"{i}:{entry}" if entry else i, e)
                    stats["bad_records"] += 1
                    continue
                rec.license = self.license
                prev = out.get(rec.id)
                if prev is None or rec.attributes["last_modified"] >= prev.attributes["last_modified"]:
                    out[rec.id] = rec
                newest = max(newest, rec.attributes["last_modified"])
        snapshot.version = snapshot.version or newest[:19]
        for rec in out.values():
            rec.version = snapshot.version
        stats["records"] = len(out)
        stats["rejected"] = sum(r.revoked for r in out.values())
        snapshot.extra["stats"] = dict(stats)
        yield from out.values()

    def documents(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Document]:
        for r in self.records(snapshot, quarantine):
            if not r.revoked:
                yield vulnerability_document(r, self.name, self.license)


def _peek_version(files: list[Path]) -> str:
    """Newest response timestamp / lastModified in the files (a cheap scan, before parsing)."""
    newest = ""
    for f in files:
        try:
            text = read_bytes(f).decode("utf-8", "replace")
        except InputError:
            continue
        for m in re.finditer(r'"(?:timestamp|lastModified)"\s*:\s*"([^"]+)"', text):
            newest = max(newest, m.group(1))
    return newest[:19]


def parse_nvd_cve(cve: Any) -> Record:
    """One NVD API 2.0 ``cve`` object -> ``Record``."""
    if not isinstance(cve, dict):
        raise InputError(f"cve entry is a {type(cve).__name__}, not an object")
    cid = str(cve.get("id") or "").strip().upper()
    if not CVE_ID.match(cid):
        raise InputError(f"malformed CVE id {cve.get('id')!r}", field="id")
    descs = [d for d in cve.get("descriptions") or () if isinstance(d, dict)]
    desc = next((d.get("value", "") for d in descs if d.get("lang") == "en"), descs[0].get("value", "") if descs else "")
    status = str(cve.get("vulnStatus") or "")
    cvss: list[dict[str, Any]] = []
    for key, version in _METRICS.items():
        for m in (cve.get("metrics") or {}).get(key) or ():
            data = m.get("cvssData") or {}
            if not isinstance(data, dict):
                raise InputError("cvssData is not an object", field=f"metrics.{key}")
            entry = cvss_entry(str(data.get("version") or version), str(data.get("vectorString") or ""),
                               data.get("baseScore"), data.get("baseSeverity") or m.get("baseSeverity"),
                               str(m.get("source") or ""))
            entry["type"] = m.get("type", "")
            for k in ("exploitabilityScore", "impactScore"):
                if k in m:
                    entry[k] = m[k]
            cvss.append(entry)
    cwes: list[dict[str, str]] = []
    for w in cve.get("weaknesses") or ():
        for d in w.get("description") or ():
            val = str(d.get("value") or "")
            if val and not any(c["id"] == val and c["provider"] == w.get("source", "") for c in cwes):
                cwes.append({"id": val, "provider": str(w.get("source") or ""), "type": str(w.get("type") or "")})
    cpes = []
    for conf in cve.get("configurations") or ():
        for node in conf.get("nodes") or ():
            for cm in node.get("cpeMatch") or ():
                if cm.get("vulnerable"):
                    cpes.append({k: cm[k] for k in ("criteria", "versionStartIncluding", "versionStartExcluding",
                                                    "versionEndIncluding", "versionEndExcluding") if k in cm})
    refs = [{"url": r.get("url", ""), "tags": r.get("tags") or []} for r in cve.get("references") or ()
            if isinstance(r, dict) and r.get("url")]
    attrs: dict[str, Any] = {
        "status": status, "source_identifier": cve.get("sourceIdentifier", ""),
        "published": cve.get("published", ""), "last_modified": str(cve.get("lastModified", "")),
        "cvss": cvss, "cwes": cwes, "cpes": cpes, "references": [r["url"] for r in refs], "reference_tags": refs,
    }
    if cve.get("cisaExploitAdd"):
        attrs.update(kev_date_added=cve["cisaExploitAdd"], kev_due_date=cve.get("cisaActionDue", ""),
                     kev_required_action=cve.get("cisaRequiredAction", ""),
                     kev_name=cve.get("cisaVulnerabilityName", ""))
    rels = scores_and_weaknesses(attrs, cvss, cwes)
    return Record(id=cid, type=rt.VULNERABILITY, name=cid, description=str(desc).strip(), source="nvd",
                  url=f"https://nvd.nist.gov/vuln/detail/{cid}", revoked=status.lower() == "rejected",
                  relations=rels, attributes=attrs)


register(NvdSource)
