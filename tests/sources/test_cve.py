"""CVE JSON 5 connector: mirror records, cvelistV5 layout, release zips, CVSS, SSVC, malformed input."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, Snapshot, registry
from secfoundry.sources.cve import CveSource, best_cvss, cvss_entry, parse_cve_json5
from secfoundry.core.download import Fetcher

from .helpers import parse_mirror


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(CveSource(), mirror)


def _rec(cve: str = "CVE-2024-3400", **cna) -> dict:
    base = {"descriptions": [{"lang": "en", "value": f"desc {cve}"}], "title": f"title {cve}",
            "providerMetadata": {"shortName": "cna1", "orgId": "00000000-0000-4000-8000-000000000001"},
            "affected": [{"vendor": "acme", "product": "widget", "versions": [{"version": "1.0", "status": "affected"}]}],
            "references": [{"url": f"https://example.org/{cve}"}]}
    base.update(cna)
    return {"dataType": "CVE_RECORD", "dataVersion": "5.1",
            "cveMetadata": {"cveId": cve, "assignerOrgId": "00000000-0000-4000-8000-000000000001",
                            "state": "PUBLISHED", "dateUpdated": "2024-05-01T00:00:00Z"},
            "containers": {"cna": base}}


def test_registered():
    assert registry()["cve"] is CveSource


def test_mirror_counts(parsed, mirror):
    src, snap, q, recs = parsed
    files = list((mirror / "cve" / "records").glob("CVE-*.json"))
    assert len(recs) == len(files) == 120 and len(q) == 0
    st = snap.extra["stats"]
    assert st["state:PUBLISHED"] == 119 and st["state:REJECTED"] == 1
    assert snap.version.startswith("records-updated-")


def test_cna_and_adp_merged(parsed):
    *_, recs = parsed
    r = recs["CVE-2015-10018"]
    a = r.attributes
    assert [c["id"] for c in a["cwes"]] == ["CWE-89"]
    assert {m["version"] for m in a["cvss"]} == {"3.1", "3.0", "2.0"}
    assert a["cvss_base_score"] == 5.5 and a["cvss_version"] == "3.1"
    assert a["ssvc"]["exploitation"] == "none" and a["ssvc"]["provider"] == "CISA-ADP"
    assert a["affected"][0]["product"] == "d2files"
    adp_cvss = [m for rec in recs.values() for m in rec.attributes.get("cvss", []) if m["provider"] == "CISA-ADP"]
    assert len(adp_cvss) == 10  # CISA-ADP scored 10 of these records
    v4 = [m for rec in recs.values() for m in rec.attributes.get("cvss", []) if m["version"] == "4.0"]
    assert len(v4) == 5 and all(m["base_score"] for m in v4)


def test_rejected_flagged(parsed):
    *_, recs = parsed
    r = recs["CVE-2024-47755"]
    assert r.revoked and r.attributes["state"] == "REJECTED" and "rejected" in r.description


def test_cvss_computed_when_absent():
    e = cvss_entry("3.1", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    assert e["base_score"] == 9.8 and e["severity"] == "CRITICAL" and e["computed"]
    e2 = cvss_entry("2.0", "AV:N/AC:L/Au:N/C:P/I:P/A:P")
    assert e2["base_score"] == 7.5 and e2["severity"] == "HIGH"
    e4 = cvss_entry("4.0", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")
    assert e4["base_score"] == 9.3 and e4["severity"] == "CRITICAL"
    bad = cvss_entry("3.1", "CVSS:3.1/AV:Q")
    assert bad["base_score"] is None and "vector_error" in bad
    rec = parse_cve_json5(_rec(metrics=[{"cvssV3_1": {"version": "3.1",
                                                      "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}]))
    assert rec.attributes["cvss_base_score"] == 9.8
    assert best_cvss([]) is None


def test_problemtype_cwe_from_text():
    rec = parse_cve_json5(_rec(problemTypes=[{"descriptions": [{"lang": "en", "type": "text",
                                                                 "description": "CWE-79 Cross-site Scripting"}]}]))
    assert rec.attributes["cwes"][0]["id"] == "CWE-79" and rec.relations[0].target == "CWE-79"


def test_cvelistv5_layout_and_release_zips(tmp_path):
    tree = tmp_path / "cvelistV5" / "cves" / "2024" / "3xxx"
    tree.mkdir(parents=True)
    (tree / "CVE-2024-3400.json").write_text(json.dumps(_rec("CVE-2024-3400")))
    (tree / "CVE-2024-3401.json").write_text(json.dumps(_rec("CVE-2024-3401")))
    src = CveSource()
    snap = src.fetch(tmp_path / "cvelistV5")
    assert {r.id for r in src.records(snap)} == {"CVE-2024-3400", "CVE-2024-3401"}
    # A baseline release: outer zip holding cves.zip; a delta release: deltaCves/*.json.
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("cves/2024/3xxx/CVE-2024-3402.json", json.dumps(_rec("CVE-2024-3402")))
        z.writestr("cves/2024/3xxx/CVE-2024-3403.json", json.dumps(_rec("CVE-2024-3403")))
    outer = tmp_path / "2025-01-01_all_CVEs_at_midnight.zip"
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("cves.zip", inner.getvalue())
    delta = tmp_path / "2025-01-01_delta_CVEs_at_0100Z.zip"
    with zipfile.ZipFile(delta, "w") as z:
        z.writestr("deltaCves/CVE-2024-3404.json", json.dumps(_rec("CVE-2024-3404")))
    ids = {r.id for r in src.records(Snapshot("cve", [outer, delta]))}
    assert ids == {"CVE-2024-3402", "CVE-2024-3403", "CVE-2024-3404"}


def test_malformed(tmp_path):
    d = tmp_path / "records"
    d.mkdir()
    (d / "CVE-2024-0001.json").write_text(json.dumps(_rec("CVE-2024-0001")))
    (d / "CVE-2024-0002.json").write_text('{"cveMetadata": {"cveId": "CVE-2024-0002"')
    (d / "CVE-2024-0003.json").write_text(json.dumps(_rec("CVE-24-3")))
    (d / "CVE-2024-0004.json").write_bytes(json.dumps(_rec("CVE-2024-0004")).encode().replace(b"desc", b"d\xe9sc"))
    (d / "CVE-2024-0005.json").write_text(json.dumps({"dataType": "CVE_RECORD"}))
    badzip = tmp_path / "broken.zip"
    badzip.write_bytes(b"PK\x03\x04 not really a zip")
    crc = tmp_path / "crc.zip"
    with zipfile.ZipFile(crc, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("CVE-2024-0006.json", json.dumps(_rec("CVE-2024-0006")))
        z.writestr("CVE-2024-0007.json", json.dumps(_rec("CVE-2024-0007")))
    raw = bytearray(crc.read_bytes())
    i = raw.find(b"desc CVE-2024-0006")
    raw[i] = ord("X")  # corrupt the stored bytes: CRC check fails for this member only
    crc.write_bytes(bytes(raw))
    q = Quarantine()
    recs = {r.id for r in CveSource().records(Snapshot("cve", [d, badzip, crc]), q)}
    assert recs == {"CVE-2024-0001", "CVE-2024-0007"}
    errs = {str(i["entry"]): i["error"] for i in q.items}
    assert "invalid JSON" in errs["CVE-2024-0002.json"]
    assert "cveMetadata.cveId" in errs["CVE-2024-0003.json"]
    assert "not valid UTF-8" in errs["CVE-2024-0004.json"]
    assert "cveMetadata" in errs["CVE-2024-0005.json"]
    assert any("broken.zip" in i["file"] for i in q.items)
    assert "CVE-2024-0006.json" in errs and "crc.zip" in errs["CVE-2024-0006.json"]


def test_live_release_and_ids(http_server, tmp_path):
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("deltaCves/CVE-2024-3400.json", json.dumps(_rec("CVE-2024-3400")))
    http_server.add_file("dl/2025-01-01_all_CVEs_at_midnight.zip", zbuf.getvalue())
    http_server.add_file("api/release.json", json.dumps({
        "tag_name": "cve_2025-01-01_at_end_of_day",
        "assets": [{"name": "2025-01-01_all_CVEs_at_midnight.zip",
                    "browser_download_url": http_server.url("dl/2025-01-01_all_CVEs_at_midnight.zip")}]}))
    http_server.add_file("api/cve/CVE-2024-9999", json.dumps(_rec("CVE-2024-9999")))
    with Fetcher(tmp_path, retries=0) as f:
        src = CveSource(releases_api=http_server.url("api/release.json"))
        snap = src.fetch(None, fetcher=f)
        assert snap.version == "cve_2025-01-01_at_end_of_day"
        assert [r.id for r in src.records(snap)] == ["CVE-2024-3400"]
        src = CveSource(ids=["CVE-2024-9999"], cve_api=http_server.url("api/cve/{id}"))
        assert [r.id for r in src.records(src.fetch(None, fetcher=f))] == ["CVE-2024-9999"]


def test_documents(parsed):
    src, snap, q, _ = parsed
    docs = {d.id: d for d in src.documents(snap, q)}
    assert len(docs) == 119 and "cve:CVE-2024-47755" not in docs
    d = docs["cve:CVE-2015-10018"]
    assert "CVSS 3.1" in d.text and "CWE-89" in d.text and d.url.endswith("CVE-2015-10018")


def test_required_fields_and_caps_quarantine_naming_the_file(tmp_path):
    """Issue #14 item 7: a record with no containers is not a vulnerability with an empty
    description; every required field of the schema is checked; absurd sizes are capped."""
    d = tmp_path / "records"
    d.mkdir()
    (d / "CVE-2024-0101.json").write_text(json.dumps(
        {"dataType": "CVE_RECORD", "cveMetadata": {"cveId": "CVE-2024-0101"}}))
    no_refs = _rec("CVE-2024-0102")
    del no_refs["containers"]["cna"]["references"]
    (d / "CVE-2024-0102.json").write_text(json.dumps(no_refs))
    empty_desc = _rec("CVE-2024-0103", descriptions=[{"lang": "en", "value": ""}])
    (d / "CVE-2024-0103.json").write_text(json.dumps(empty_desc))
    (d / "CVE-2024-0104.json").write_text(json.dumps(_rec("CVE-2024-0104", descriptions=[
        {"lang": "en", "value": "overflow " * 2_500_000}])))  # 22.5 MB description
    deep = '{"dataType": "CVE_RECORD", "x": ' + "[" * 200_000 + "]" * 200_000 + "}"
    (d / "CVE-2024-0105.json").write_text(deep)
    (d / "CVE-2024-0106.json").write_text(json.dumps(_rec("CVE-2024-0106")))
    q = Quarantine()
    recs = {r.id: r for r in CveSource().records(Snapshot("cve", [d]), q)}
    assert set(recs) == {"CVE-2024-0104", "CVE-2024-0106"}
    errs = {str(i["entry"]): i["error"] for i in q.items}
    assert "dataVersion" in errs["CVE-2024-0101.json"] and str(d) in errs["CVE-2024-0101.json"]
    assert "containers.cna.references" in errs["CVE-2024-0102.json"]
    assert "descriptions[0].value" in errs["CVE-2024-0103.json"]
    assert "RecursionError" in errs["CVE-2024-0105.json"]
    big = recs["CVE-2024-0104"]
    assert len(big.description) < 70_000 and "truncated: 22,499,999 characters" in big.description
    assert big.attributes["truncated"] == {"description": 22_499_999}  # stripped
    assert "accepted with truncation" in errs["CVE-2024-0104.json"]


def test_kb_sync_quarantines_a_record_without_containers(tmp_path):
    """The KB path: a record with only dataType and cveMetadata.cveId is not a vulnerability
    with an empty description; the KB quarantine names the file."""
    from secfoundry.kb import KnowledgeBase

    d = tmp_path / "mirror" / "cve" / "records"
    d.mkdir(parents=True)
    (d / "CVE-2024-0201.json").write_text(json.dumps({"dataType": "CVE_RECORD", "cveMetadata": {"cveId": "CVE-2024-0201"}}))
    (d / "CVE-2024-0202.json").write_text(json.dumps(_rec("CVE-2024-0202")))
    with KnowledgeBase.open(tmp_path / "kb") as kb:
        rep = kb.sync(mirror=tmp_path / "mirror", sources=["cve"], dense=False)
        assert kb.store.records_by_id("CVE-2024-0202") and not kb.store.records_by_id("CVE-2024-0201")
    assert [q["entry"] for q in rep.quarantine] == ["CVE-2024-0201.json"]
    assert "dataVersion" in rep.quarantine[0]["error"] and str(d) in rep.quarantine[0]["error"]
    assert "CVE-2024-0201.json" in (tmp_path / "kb" / "quarantine" / "cve.jsonl").read_text()
