"""CTID mappings connector: KEV (419 CVEs), NIST 800-53, cloud/VERIS mappings, CSV, bad input, live."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, Remote, Snapshot, registry
from secfoundry.sources.ctid import CTIDMappingsSource, capability_key

from .helpers import parse_mirror


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(CTIDMappingsSource(), mirror)


def test_registered():
    assert registry()["ctid"] is CTIDMappingsSource


def test_kev_counts(parsed, mirror):
    _, snap, _, recs = parsed
    raw = json.loads((mirror / "ctid-mappings" / "kev-07.28.2025_attack-16.1-enterprise.json").read_text())
    cves = {m["capability_id"] for m in raw["mapping_objects"]}
    assert len(cves) == 419 and len(raw["mapping_objects"]) == 1183
    assert cves <= set(recs) and all("kev" in recs[c].attributes["frameworks"] for c in cves)
    kev_rels = sum(1 for c in cves for r in recs[c].relations if r.attributes["framework"] == "kev"
                   and r.attributes["domain"] == "enterprise")
    assert kev_rels == 1183
    # The enterprise file sits loose in the mirror and inside the tarball: read once.
    assert snap.extra["frameworks"]["kev 07/28/2025 (enterprise, ATT&CK 16.1)"]["objects"] == 1183
    assert snap.extra["file_version"] == "mappings-attack-16.1-17.1 2026-01-27; kev-07.28.2025_attack-16.1-enterprise"
    assert "nist_800_53 rev5 (enterprise, ATT&CK 16.1)" in snap.version


def test_kev_record(parsed):
    r = parsed[3]["CVE-2024-34102"]
    assert r.type == "mapping" and r.license == "Apache-2.0" and "XML External Entity" in r.name
    rels = {(x.type, x.target, x.attributes["mapping_type"]) for x in r.relations}
    assert ("maps-to", "T1190", "exploitation_technique") in rels and ("maps-to", "T1059", "primary_impact") in rels
    assert r.attributes["capability_groups"] == ["XML External Entity (XXE)"]


def test_cve_csv(parsed, mirror):
    _, snap, q, recs = parsed
    with (mirror / "ctid-mappings" / "attack-to-cve-mappings.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 839 == snap.extra["csv_rows"]
    r = recs["CVE-2019-15976"]
    got = {(x.target, x.attributes["mapping_type"]) for x in r.relations if x.attributes["framework"] == "attack_to_cve"}
    assert got == {("T1068", "primary_impact"), ("T1059", "secondary_impact"), ("T1190", "exploitation_technique")}
    # Upstream typos such as "T1036." are normalised, not dropped.
    assert all(not x.target.endswith(".") for rec in recs.values() for x in rec.relations)
    # The one upstream VERIS object without a technique is quarantined, naming file and entry.
    assert len(q) == 1 and q.items[0]["entry"] == 359 and "veris-1.4.0_attack-16.1-enterprise.json" in q.items[0]["file"]


def test_nist_and_cloud_mappings(parsed):
    _, snap, _, recs = parsed
    ac2 = recs["AC-2"]
    assert ac2.name == "Account Management" and ac2.attributes["frameworks"] == ["nist_800_53"]
    assert ac2.description and all(x.type == "mitigates" for x in ac2.relations)
    assert sum(1 for r in recs.values() if r.attributes["frameworks"] == ["nist_800_53"]) == 109
    cog = recs["aws:amazon_cognito"]
    x = next(x for x in cog.relations if x.target == "T1078")
    assert x.type == "maps-to" and x.attributes["score_category"] == "protect" and x.attributes["score_value"] == "minimal"
    assert snap.extra["non_mappable"]["nist_800_53"] == 96
    assert snap.extra["attack_checked_against"] == "18.1"
    assert snap.extra["revoked_in_pinned_attack"]["T1574.002"] == 17  # mapped on 16.1, retired by 18.1


def test_capability_keys():
    assert capability_key("kev", "cve-2024-1") == "kev:cve-2024-1"
    assert capability_key("kev", "cve-2024-1234") == "CVE-2024-1234"
    assert capability_key("nist_800_53", "AC-02") == "AC-2" and capability_key("nist_800_53", "SI-04(12)") == "SI-4(12)"
    assert capability_key("veris", "action.hacking.variety.Other") == "veris:action.hacking.variety.Other"


def test_documents(parsed):
    src, snap, _, recs = parsed
    from secfoundry.sources.ctid import mapping_document

    doc = mapping_document(recs["CVE-2024-34102"])
    assert doc.id == "ctid:CVE-2024-34102" and "| T1190 | exploitation_technique | kev |" in doc.text
    assert doc.license == "Apache-2.0" and "kev 07/28/2025" in doc.version


def test_malformed_input(tmp_path):
    d = tmp_path / "ctid-mappings"
    d.mkdir()
    good = {"metadata": {"mapping_framework": "kev", "mapping_framework_version": "1", "attack_version": "16.1",
                         "technology_domain": "enterprise"},
            "mapping_objects": [
                {"capability_id": "CVE-2024-0001", "capability_description": "x", "mapping_type": "primary_impact",
                 "attack_object_id": "T1059", "status": "complete"},
                {"capability_id": "CVE-2024-0002", "mapping_type": "primary_impact", "attack_object_id": "X1",
                 "status": "complete"},
                "not an object"]}
    (d / "kev-1_attack-16.1-enterprise.json").write_text(json.dumps(good), encoding="utf-8")
    (d / "broken_attack-16.1-enterprise.json").write_text('{"metadata": {', encoding="utf-8")
    (d / "attack-to-cve-mappings.csv").write_bytes(
        "CVE ID,Primary Impact,Secondary Impact,Exploitation Technique,Uncategorized,Phase\n"
        "CVE-2020-0001,T1059,,T1190; Tbad,,Phase 1\nnot-a-cve,T1059,,,,Phase 1\n".encode("utf-8"))
    src = CTIDMappingsSource()
    snap = src.fetch(tmp_path)
    q = Quarantine()
    recs = {r.id: r for r in src.records(snap, q)}
    assert set(recs) == {"CVE-2024-0001", "CVE-2020-0001"}
    assert {x.target for x in recs["CVE-2020-0001"].relations} == {"T1059", "T1190"}
    errors = sorted(i["error"] for i in q.items)
    assert len(errors) == 5
    assert any("broken_attack-16.1-enterprise.json: invalid JSON" in e for e in errors)
    assert any("row 1, field 'attack_object_id': malformed attack_object_id 'X1'" in e for e in errors)
    assert any("row 2: mapping object is not a mapping" in e for e in errors)
    assert any("row 2, field 'Exploitation Technique': malformed technique 'TBAD'" in e for e in errors)
    assert any("row 3, field 'CVE ID'" in e for e in errors)


def test_wrong_encoding_csv(tmp_path):
    bad = tmp_path / "attack-to-cve-mappings.csv"
    bad.write_bytes("CVE ID,Primary Impact\nCVE-2020-0001,T1059 caf\xe9\n".encode("latin-1"))
    q = Quarantine()
    assert list(CTIDMappingsSource().records(Snapshot("ctid", [bad]), q)) == []
    assert "not valid UTF-8" in q.items[0]["error"] and str(bad) in q.items[0]["error"]


def test_live(http_server, fast_fetcher, mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(mirror / "ctid-mappings" / "kev-07.28.2025_attack-16.1-enterprise.json",
                arcname="mappings-explorer-main/mappings/kev/attack-16.1/kev-07.28.2025/enterprise/"
                        "kev-07.28.2025_attack-16.1-enterprise.json")
    http_server.add_file("ctid/main.tar.gz", buf.getvalue())
    http_server.add_file("ctid/cve.csv", (mirror / "ctid-mappings" / "attack-to-cve-mappings.csv").read_bytes())
    http_server.fail("ctid/main.tar.gz", [429, 503], retry_after="0")
    monkeypatch.setattr("secfoundry.sources.ctid.REMOTES", (
        Remote(http_server.url("ctid/main.tar.gz"), "mappings-explorer-main.tar.gz"),
        Remote(http_server.url("ctid/cve.csv"), "attack-to-cve-mappings.csv")))
    src = CTIDMappingsSource()
    snap = src.fetch(None, fetcher=fast_fetcher)
    recs = list(src.records(snap))
    assert sum("kev" in r.attributes["frameworks"] for r in recs) == 419 and snap.extra["csv_rows"] == 839
    src.fetch(None, fetcher=fast_fetcher)
    assert "if-none-match" in http_server.requests_to("ctid/cve.csv")[-1].headers


def test_attack_catalog_uses_the_newest_cached_release(tmp_path, monkeypatch):
    from secfoundry.sources._archives import attack_catalog

    def bundle(ids):
        return json.dumps({"type": "bundle", "objects": [
            {"type": "attack-pattern", "external_references": [{"source_name": "mitre-attack", "external_id": i}]}
            for i in ids] + [{"type": "x-mitre-tactic", "x_mitre_shortname": "execution"}]})

    d = tmp_path / "attack"
    d.mkdir()
    (d / "enterprise-attack-9.0.json").write_text(bundle(["T1", "T0001"]))
    (d / "enterprise-attack-10.0.json").write_text(bundle(["T0002"]))
    (d / "enterprise-attack-10.0.json.meta.json").write_text("{}")
    cat = attack_catalog(tmp_path)
    assert cat is not None and cat.version == "10.0" and cat.ids == frozenset({"T0002"})
    assert cat.tactics == frozenset({"execution"})
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "empty-home"))
    assert attack_catalog(tmp_path / "nothing") is None  # no bundle anywhere: ids are not checked
