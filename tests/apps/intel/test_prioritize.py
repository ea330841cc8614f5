"""prioritize: scanner formats, EPSS files, KEV from the KB, CISA's SSVC tree, bad rows."""

from __future__ import annotations

import gzip
import json

import pytest

from secfoundry.apps.intel import prioritize_report, ssvc, vulnfeeds
from secfoundry.apps.intel.epss import epss_csv, load_epss
from secfoundry.apps.intel.prioritize import prioritize, read_assets
from secfoundry.core.errors import InputError

from ._attack_fixture import build_kb

EPSS = {"CVE-2024-3400": (0.94, 0.999), "CVE-2021-44228": (0.97, 0.9999), "CVE-2020-1111": (0.01, 0.30),
        "CVE-2022-2222": (0.40, 0.95)}


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    return build_kb(tmp_path_factory.mktemp("prkb"))


@pytest.fixture
def epss_file(tmp_path):
    p = tmp_path / "epss.csv.gz"
    p.write_bytes(gzip.compress(epss_csv(EPSS).encode()))
    return p


def trivy_doc():
    return {"SchemaVersion": 2, "ArtifactName": "web:1.0", "Results": [
        {"Target": "web:1.0 (debian 12)", "Vulnerabilities": [
            {"VulnerabilityID": "CVE-2020-1111", "PkgName": "libfoo", "InstalledVersion": "1.0", "FixedVersion": "1.1",
             "Severity": "MEDIUM", "Description": "A local user can read a temp file.",
             "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N", "V3Score": 3.3}}},
            {"VulnerabilityID": "CVE-2021-44228", "PkgName": "log4j-core", "InstalledVersion": "2.14.1",
             "Description": "JNDI lookups allow remote code execution.",
             "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "V3Score": 10.0}}},
            {"PkgName": "broken-row-without-id"}]}]}


def test_ssvc_tree_matches_cisa_table():
    assert ssvc.decide("none", "no", "partial", "high") == "Track"
    assert ssvc.decide("none", "no", "total", "high") == "Track*"
    assert ssvc.decide("poc", "no", "total", "medium") == "Track*"
    assert ssvc.decide("active", "no", "total", "high") == "Act"
    assert ssvc.decide("active", "yes", "partial", "low") == "Attend"
    assert ssvc.decide("active", "yes", "total", "medium") == "Act"
    with pytest.raises(ValueError):
        ssvc.decide("maybe", "no", "partial")


def test_predicted_points():
    p = ssvc.predict_points(vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", kev=True)
    assert (p.exploitation, p.automatable, p.technical_impact) == ("active", "yes", "total")
    p = ssvc.predict_points(vector="CVSS:3.1/AV:L/AC:H/PR:L/UI:R/S:U/C:L/I:N/A:N",
                            description="The exploit has been disclosed to the public and may be used.")
    assert (p.exploitation, p.automatable, p.technical_impact) == ("poc", "no", "partial")


def test_trivy_ranked_with_kev_epss_and_reasons(kb, epss_file, tmp_path):
    f = tmp_path / "trivy.json"
    f.write_text(json.dumps(trivy_doc()))
    res = prioritize(f, kb=kb, epss=str(epss_file), criticality="high", predict_missing_cvss=False)
    assert res.format == "trivy"
    assert [r.id for r in res.rows] == ["CVE-2021-44228", "CVE-2020-1111"]
    top = res.rows[0]
    assert top.kev and top.decision == "Act" and top.epss == pytest.approx(0.97) and top.cvss_score == 10.0
    assert "KEV" in top.reason and "EPSS 0.97" in top.reason
    assert res.rows[1].decision == "Track" and res.rows[1].rank == 2
    assert len(res.errors) == 1 and "Results[0].Vulnerabilities[2]" in res.errors[0] and "trivy.json" in res.errors[0]
    for fmt in ("csv", "json", "markdown"):
        out = tmp_path / f"ranked.{ {'markdown': 'md'}.get(fmt, fmt)}"
        assert prioritize_report.write(res, out) == fmt
        assert "CVE-2021-44228" in out.read_text()


def test_grype_and_cyclonedx_vex(kb, tmp_path):
    grype = {"matches": [{"vulnerability": {"id": "GHSA-aaaa-bbbb-cccc", "severity": "High", "cvss": []},
                          "relatedVulnerabilities": [{"id": "CVE-2024-3400", "description": "Command injection.",
                                                      "cvss": [{"version": "3.1", "vector":
                                                                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
                                                                "metrics": {"baseScore": 10.0}}]}],
                          "artifact": {"name": "panos", "version": "10.2"}},
                         {"vulnerability": {}}]}
    g = tmp_path / "grype.json"
    g.write_text(json.dumps(grype))
    res = prioritize(g, kb=kb, epss="none", predict_missing_cvss=False)
    assert res.format == "grype" and res.rows[0].id == "CVE-2024-3400" and res.rows[0].kev
    assert "GHSA-aaaa-bbbb-cccc" in res.rows[0].aliases and len(res.errors) == 1
    vex = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"bom-ref": "pkg:a", "name": "a"}],
           "vulnerabilities": [
               {"id": "CVE-2021-44228", "affects": [{"ref": "pkg:a"}],
                "analysis": {"state": "not_affected", "justification": "code_not_reachable"},
                "ratings": [{"method": "CVSSv31", "vector": "AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "score": 10}]},
               {"id": "CVE-2020-1111", "analysis": {"state": "exploitable"}}]}
    v = tmp_path / "vex.json"
    v.write_text(json.dumps(vex))
    res = prioritize(v, kb=kb, epss="none", predict_missing_cvss=False)
    assert res.format == "cyclonedx"
    assert res.rows[-1].id == "CVE-2021-44228" and "not_affected" in res.rows[-1].reason  # VEX: ranked last
    assert res.rows[-1].cvss_vector.startswith("CVSS:3.1/AV:N")


def test_ids_and_csv_with_bad_rows_and_assets(kb, epss_file, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("CVE-2020-1111 CVE-2024-3400\n# comment\nnot-an-id\nCVE-2022-2222\n")
    res = prioritize(ids, kb=kb, epss=str(epss_file), predict_missing_cvss=False)
    assert [r.id for r in res.rows][0] == "CVE-2024-3400"
    assert any("line 3" in e and "not-an-id" in e for e in res.errors)
    c = tmp_path / "v.csv"
    c.write_text("cve,asset,vector,criticality\nCVE-2022-2222,db1,CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H,\n"
                 "CVE-2020-1111,db1,,ultra\n,db2,,\nCVE-2021-44228,lab,AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H,\n")
    assets = tmp_path / "assets.csv"
    assets.write_text("asset,exposure,criticality\ndb1,internet,high\nlab,isolated,low\n")
    res = prioritize(c, kb=kb, epss=str(epss_file), assets=read_assets(assets), predict_missing_cvss=False)
    assert {r.id for r in res.rows} == {"CVE-2022-2222", "CVE-2021-44228"}
    assert any("row 3" in e and "criticality" in e for e in res.errors)
    assert any("row 4" in e and "empty id" in e for e in res.errors)
    db = next(r for r in res.rows if r.id == "CVE-2022-2222")
    assert db.mission_wellbeing == "high" and db.exploitation == "poc" and db.decision == "Attend"
    lab = next(r for r in res.rows if r.id == "CVE-2021-44228")
    assert lab.automatable == "no" and "isolated" in lab.reason  # not automatable on an isolated asset


def test_bad_inputs_fail_clearly(kb, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"Results": [')
    with pytest.raises(InputError, match="bad.json.*JSON"):
        prioritize(bad, kb=kb, epss="none")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty.csv.*empty"):
        vulnfeeds.read_vulns(empty)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("name,score\nfoo,1\n")
    with pytest.raises(InputError, match="nocol.csv.*id column"):
        vulnfeeds.read_vulns(nocol, format="csv")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("CVE-2020-1111 é".encode("cp1252"))
    with pytest.raises(InputError, match="latin.txt.*UTF-8"):
        vulnfeeds.read_vulns(latin)
    with pytest.raises(InputError, match="unknown format"):
        vulnfeeds.read_vulns(latin, format="xlsx")


def test_epss_file_format_and_bad_rows(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text(epss_csv(EPSS) + "CVE-2020-9,notanumber,0.1\n")
    t = load_epss(p)
    assert t.model_version == "v2025.03.14" and t.get("cve-2024-3400") == pytest.approx((0.94, 0.999))
    assert len(t.errors) == 1 and "row" in t.errors[0]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n")
    with pytest.raises(InputError, match="expected cve,epss,percentile"):
        load_epss(bad)


def test_cli_prioritize(kb, epss_file, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from secfoundry.cli import app

    monkeypatch.setenv("SECFOUNDRY_KB", str(kb.paths.db))
    f = tmp_path / "trivy.json"
    f.write_text(json.dumps(trivy_doc()))
    out = tmp_path / "ranked.csv"
    r = CliRunner().invoke(app, ["intel", "prioritize", "--input", str(f), "--epss", str(epss_file), "--out", str(out),
                                 "--no-predict-cvss"])
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("rank,id,decision") and lines[1].startswith("1,CVE-2021-44228,Act")
    r = CliRunner().invoke(app, ["intel", "prioritize", "--input", str(f), "--exposure", "moon"])
    assert r.exit_code == 2 and "--exposure" in r.output
