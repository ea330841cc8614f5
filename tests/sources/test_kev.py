"""CISA KEV connector: JSON and CSV forms, counts, fields, malformed rows, live download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, Snapshot, registry
from secfoundry.core.download import Fetcher
from secfoundry.sources.kev import KevSource

from .helpers import parse_mirror


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(KevSource(), mirror)


def test_registered():
    assert registry()["kev"] is KevSource


def test_json_counts_and_fields(parsed, mirror):
    src, snap, q, recs = parsed
    assert [p.name for p in snap.files] == ["known_exploited_vulnerabilities.json"]
    assert len(recs) == 1404 == snap.extra["declared_count"] and len(q) == 0
    assert snap.version == "2025.08.25"
    git = recs["CVE-2025-48384"]
    assert git.type == "vulnerability" and git.source == "kev"
    a = git.attributes
    assert a["kev"] and a["vendor"] == "Git" and a["date_added"] == "2025-08-25" and a["due_date"] == "2025-09-15"
    assert a["cwes"] == ["CWE-59", "CWE-436"] and not a["ransomware"]
    assert {(r.type, r.target) for r in git.relations} == {("related-weakness", "CWE-59"), ("related-weakness", "CWE-436")}
    raw = json.loads((mirror / "kev" / "known_exploited_vulnerabilities.json").read_text())
    assert sum(r.attributes["ransomware"] for r in recs.values()) == sum(
        v["knownRansomwareCampaignUse"] == "Known" for v in raw["vulnerabilities"]) == 293


def test_csv_form_matches_json(parsed, mirror):
    *_, recs = parsed
    src = KevSource(form="csv")
    snap = src.fetch(mirror)
    csv_recs = {r.id: r for r in src.records(snap)}
    assert len(csv_recs) == 1404 and snap.version == "2025-08-25"
    for cve in ("CVE-2025-48384", "CVE-2024-8068"):
        a, b = recs[cve].attributes, csv_recs[cve].attributes
        assert (a["cwes"], a["due_date"], a["vendor"]) == (b["cwes"], b["due_date"], b["vendor"])
        assert recs[cve].description == csv_recs[cve].description


def test_documents(parsed):
    src, snap, q, _ = parsed
    d = next(iter(src.documents(snap, q)))
    assert d.title.startswith("CVE-") and "Known Exploited Vulnerabilities" in d.text
    assert d.version == "2025.08.25" and d.license == src.license


def test_malformed(tmp_path):
    good = {"cveID": "CVE-2024-0001", "vendorProject": "V", "product": "P", "vulnerabilityName": "n",
            "dateAdded": "2024-01-01", "shortDescription": "d", "requiredAction": "a", "dueDate": "2024-01-22",
            "knownRansomwareCampaignUse": "Known", "notes": "", "cwes": []}
    f = tmp_path / "known_exploited_vulnerabilities.json"
    f.write_text(json.dumps({"catalogVersion": "2024.01.01", "count": 4, "vulnerabilities": [
        good, {**good, "cveID": "CVE-24-1"}, {**good, "cveID": "CVE-2024-0002", "dueDate": "22/01/2024"}, "junk"]}))
    q = Quarantine()
    snap = Snapshot("kev", [f])
    recs = list(KevSource().records(snap, q))
    assert [r.id for r in recs] == ["CVE-2024-0001"] and recs[0].attributes["ransomware"]
    errs = {str(i["entry"]): i["error"] for i in q.items}
    assert "cveID" in errs["1:CVE-24-1"] and "dueDate" in errs["2:CVE-2024-0002"] and "3" in errs
    assert all("known_exploited_vulnerabilities.json" in i["file"] for i in q.items)
    bad = tmp_path / "k.csv"
    bad.write_bytes(b"cveID,dateAdded\nCVE-2024-0003,2024-01-01\nCVE-2024-0004,\xff\xfe\n")
    q = Quarantine()
    assert list(KevSource(form="csv").records(Snapshot("kev", [bad]), q)) == []
    assert "not valid UTF-8" in q.items[0]["error"] and "k.csv" in q.items[0]["error"]
    trunc = tmp_path / "t.json"
    trunc.write_text('{"vulnerabilities": [{"cveID": ')
    q = Quarantine()
    assert list(KevSource().records(Snapshot("kev", [trunc]), q)) == []
    assert "invalid JSON" in q.items[0]["error"]


def test_live(http_server, tmp_path, mirror):
    http_server.add_file("feeds/known_exploited_vulnerabilities.json",
                         (mirror / "kev" / "known_exploited_vulnerabilities.json").read_bytes())
    http_server.fail("feeds/known_exploited_vulnerabilities.json", [429], retry_after="0")
    src = KevSource(feed=http_server.url("feeds/known_exploited_vulnerabilities"))
    with Fetcher(tmp_path, retries=2, backoff=0.01) as f:
        snap = src.fetch(None, fetcher=f)
        assert sum(1 for _ in src.records(snap)) == 1404
        src.fetch(None, fetcher=f)
    last = http_server.requests_to("feeds/known_exploited_vulnerabilities.json")[-1]
    assert "if-none-match" in last.headers
