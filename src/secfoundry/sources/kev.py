"""CISA Known Exploited Vulnerabilities catalog (JSON feed, or the CSV form of the same feed).

One ``vulnerability`` record per catalog entry (source ``kev``; the KB merges it with the CVE,
NVD and EPSS records of the same id): vendor, product, dates added and due, required action,
ransomware use, CWEs (also ``related-weakness`` relations). The catalog version
(``catalogVersion``, e.g. 2025.08.25) is the snapshot version; the CSV form has none, so its
newest ``dateAdded`` stands in. Entries with a malformed CVE id or date are quarantined by row.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources.base import (Quarantine, Remote, Snapshot, Source, load_json, markdown_document, register,
                                     resolve_files, text_stream)
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core import records as rt
from secfoundry.core.records import Record, Relation

FEED = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities"
CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$")
CWE_ID = re.compile(r"^CWE-(\d+|noinfo|Other)$", re.I)
FIELDS = ("cveID", "vendorProject", "product", "vulnerabilityName", "dateAdded", "shortDescription",
          "requiredAction", "dueDate", "knownRansomwareCampaignUse", "notes", "cwes")


def _date(value: Any, field: str) -> str:
    s = str(value or "").strip()
    if s:
        try:
            date.fromisoformat(s)
        except ValueError as e:
            raise InputError(f"not an ISO date: {s!r}", field=field) from e
    return s


class KevSource(Source):
    name = "kev"
    title = "CISA Known Exploited Vulnerabilities Catalog"
    license = "CC0-1.0 (U.S. Government work; CISA KEV terms)"
    homepage = "https://www.cisa.gov/known-exploited-vulnerabilities-catalog"

    def __init__(self, form: str = "json", feed: str = FEED):
        if form not in ("json", "csv"):
            raise ValueError("form must be 'json' or 'csv'")
        self.form, self.feed = form, feed

    def fetch(self, mirror: Path | None = None, *, fetcher: Any = None) -> Snapshot:
        ext = self.form
        files, origin = resolve_files(
            self.name, mirror, folder="kev",
            patterns=[f"known_exploited_vulnerabilities.{ext}*", f"known_exploited_vulnerabilities*.{ext}*"],
            remotes=[Remote(f"{self.feed}.{ext}")], fetcher=fetcher)
        files = [f for f in files if "schema" not in f.name][:1]
        return Snapshot(self.name, files, version=self._peek_version(files), origin=origin)

    def _peek_version(self, files: list[Path]) -> str:
        """The catalog version before parsing (sync records it up front); "" when unreadable."""
        try:
            rows, version, _ = self._rows(files[0])
        except (InputError, IndexError):
            return ""
        if version:
            return version
        dates = [str(r.get("dateAdded") or "") for r in rows if isinstance(r, dict)]
        return max(dates) if dates else ""

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        stats: Counter[str] = Counter()
        for file in snapshot.files:
            file = Path(file)
            try:
                rows, version, declared = self._rows(file)
            except InputError as e:
                q.add(self.name, str(file), None, e)
                stats["bad_files"] += 1
                continue
            if declared is not None and declared != len(rows):
                stats["count_mismatch"] = declared - len(rows)
            out = []
            for i, row in enumerate(rows):
                try:
                    out.append(self._record(row, file))
                except InputError as e:
                    entry = row.get("cveID") if isinstance(row, dict) else None
                    q.add(self.name, str(file), f"{i}:{entry}" if entry else i, e)
                    stats["bad_rows"] += 1
            if not version and out:
                version = max(r.attributes["date_added"] for r in out)
            snapshot.version = version or snapshot.version
            snapshot.extra["declared_count"] = declared
            for r in out:
                r.version = snapshot.version
                r.attributes["catalog_version"] = snapshot.version
            stats["entries"] += len(out)
            stats["ransomware_known"] += sum(r.attributes["ransomware"] for r in out)
            yield from out
        snapshot.extra["stats"] = dict(stats)

    def _rows(self, file: Path) -> tuple[list[Any], str, int | None]:
        if ".csv" in file.name:
            try:
                with text_stream(file) as f:
                    reader = csv.DictReader(f)
                    missing = {"cveID", "dateAdded"} - set(reader.fieldnames or ())
                    if missing:
                        raise InputError(f"CSV header lacks {sorted(missing)}", file=str(file), row=1)
                    return list(reader), "", None
            except UnicodeDecodeError as e:
                raise InputError(f"not valid UTF-8 at byte {e.start}", file=str(file)) from e
            except (EOFError, OSError, csv.Error) as e:
                raise InputError(f"cannot read CSV ({type(e).__name__}: {e})", file=str(file)) from e
        data = load_json(file)
        if not isinstance(data, dict) or not isinstance(data.get("vulnerabilities"), list):
            raise InputError("not a KEV catalog (no 'vulnerabilities' list)", file=str(file))
        count = data.get("count")
        return data["vulnerabilities"], str(data.get("catalogVersion") or ""), count if isinstance(count, int) else None

    def _record(self, row: Any, file: Path) -> Record:
        if not isinstance(row, dict):
            raise InputError(f"entry is a {type(row).__name__}, not an object")
        cve = str(row.get("cveID") or "").strip().upper()
        if not CVE_ID.match(cve):
            raise InputError(f"malformed CVE id {row.get('cveID')!r}", field="cveID")
        cwes = row.get("cwes") or []
        if isinstance(cwes, str):  # CSV: "CWE-59, CWE-436"
            cwes = [c.strip() for c in cwes.split(",") if c.strip()]
        cwes = [str(c).strip().upper().replace("NOINFO", "noinfo").replace("OTHER", "Other") for c in cwes]
        ransomware = str(row.get("knownRansomwareCampaignUse") or "").strip()
        attrs = {
            "kev": True,
            "vendor": str(row.get("vendorProject") or ""),
            "product": str(row.get("product") or ""),
            "date_added": _date(row.get("dateAdded"), "dateAdded"),
            "due_date": _date(row.get("dueDate"), "dueDate"),
            "required_action": str(row.get("requiredAction") or ""),
            "known_ransomware_campaign_use": ransomware,
            "ransomware": ransomware.lower() == "known",
            "notes": str(row.get("notes") or ""),
            "cwes": cwes,
        }
        rels = [Relation("related-weakness", c) for c in cwes if CWE_ID.match(c) and c[4:].isdigit()]
        return Record(
            id=cve, type=rt.VULNERABILITY, name=str(row.get("vulnerabilityName") or cve),
            description=str(row.get("shortDescription") or ""), source=self.name,
            url=f"https://www.cisa.gov/known-exploited-vulnerabilities-catalog?search_api_fulltext={cve}",
            license=self.license, relations=rels, attributes=attrs,
        )

    def documents(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Document]:
        for r in self.records(snapshot, quarantine):
            a = r.attributes
            lines = [f"# {r.id}: {r.name}", "", r.description, "",
                     f"CISA added {r.id} ({a['vendor']} {a['product']}) to the Known Exploited Vulnerabilities "
                     f"catalog on {a['date_added']}; federal agencies had to remediate it by {a['due_date']}.",
                     "", f"Required action: {a['required_action']}",
                     "", f"Known use in ransomware campaigns: {a['known_ransomware_campaign_use'] or 'Unknown'}."]
            if a["cwes"]:
                lines += ["", f"Weaknesses: {', '.join(a['cwes'])}."]
            if a["notes"]:
                lines += ["", "Notes: " + a["notes"]]
            yield markdown_document(self, r, lines, date_added=a["date_added"])


register(KevSource)
