"""NIST SP 800-53 rev5 OSCAL connector: controls, enhancements, parameters, baselines, bad input, live."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, registry
from secfoundry.core.download import Fetcher
from secfoundry.sources.nist80053 import NIST80053Source, canonical_id, control_record

from .helpers import parse_mirror


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(NIST80053Source(), mirror)


def _walk(controls):
    for c in controls:
        yield c
        yield from _walk(c.get("controls", []))


def test_registered():
    assert registry()["nist80053"] is NIST80053Source


def test_counts_match_the_catalogs(parsed, mirror):
    _, snap, q, recs = parsed
    d = mirror / "nist-800-53"
    ids = set()
    for name in ("HIGH", "PRIVACY"):
        cat = json.loads(gzip.decompress(
            (d / f"NIST_SP-800-53_rev5_{name}-baseline-resolved-profile_catalog-min.json.gz").read_bytes()))
        ids |= {c["id"] for g in cat["catalog"]["groups"] for c in _walk(g["controls"])}
    assert len(ids) == 424 == len(recs) and len(q) == 0
    assert {canonical_id(i) for i in ids} == set(recs)
    assert snap.version == "5.1.1+u4"
    assert snap.extra["baselines"] == {"LOW": 149, "MODERATE": 287, "HIGH": 370, "PRIVACY": 96}
    # The derived compact file in the mirror lists the same controls.
    compact = [json.loads(line) for line in (d / "nist-800-53-rev5-high+privacy.compact.jsonl").open()]
    assert {canonical_id(c["oscal_id"]) for c in compact} == set(recs)


def test_control_and_enhancement(parsed):
    recs = parsed[3]
    ac2 = recs["AC-2"]
    assert ac2.name == "Account Management" and ac2.type == "control" and ac2.license == "CC0-1.0"
    assert ac2.attributes["family"] == "Access Control" and ac2.attributes["baselines"] == ["LOW", "MODERATE", "HIGH"]
    assert ac2.description.startswith("a. Define and document the types of accounts allowed")
    assert "c. Require [Assignment: organization-defined prerequisites and criteria] for group and role membership;" \
        in ac2.description
    assert "\n  1. Authorized users of the system;" in ac2.description
    assert ("related-control", "AC-3") in {(x.type, x.target) for x in ac2.relations}
    assert ac2.attributes["guidance"].startswith("Examples of system account types")
    enh = recs["AC-2(1)"]
    assert enh.name == "Automated System Account Management" and enh.attributes["enhancement"]
    assert ("child-of", "AC-2") in {(x.type, x.target) for x in enh.relations}
    assert enh.description == "Support the management of system accounts using [Assignment: organization-defined " \
                              "automated mechanisms]."
    assert enh.attributes["baselines"] == ["MODERATE", "HIGH"]


def test_selection_parameters(parsed):
    ac1 = parsed[3]["AC-1"]
    assert "[Selection (one or more): organization-level; mission/business process-level; system-level]" in ac1.description
    assert "{{" not in " ".join(r.description for r in parsed[3].values())


def test_privacy_only_controls(parsed):
    pt = [r for r in parsed[3].values() if r.attributes["family"].startswith("Personally Identifiable Information")]
    assert len(pt) == 13 and all(r.attributes["baselines"] == ["PRIVACY"] for r in pt if r.id.startswith("PT-"))


def test_documents(parsed):
    src, snap, _, _ = parsed
    doc = next(d for d in src.documents(snap) if d.id == "nist80053:AC-2(1)")
    assert doc.text.startswith("# AC-2(1): Automated System Account Management")
    assert "- **Enhancement of**: AC-2" in doc.text and "## Discussion" in doc.text
    assert doc.license == "CC0-1.0" and doc.version == "5.1.1+u4"


def test_canonical_ids():
    assert canonical_id("ac-2") == "AC-2" and canonical_id("ac-2.1") == "AC-2(1)" and canonical_id("SI-04.12") == "SI-4(12)"
    with pytest.raises(ValueError):
        canonical_id("not-a-control")


def test_withdrawn_control():
    ctl = {"id": "ac-13", "title": "Supervision and Review — Access Control",
           "props": [{"name": "label", "value": "AC-13"}, {"name": "status", "value": "withdrawn"}],
           "links": [{"href": "#ac-2", "rel": "incorporated-into"}, {"href": "#au-6", "rel": "incorporated-into"}]}
    r = control_record(ctl, family="Access Control", parent=None, file="f", version="v")
    assert r.deprecated and r.replaced_by == "AC-2"
    assert [(x.type, x.target) for x in r.relations] == [("incorporated-into", "AC-2"), ("incorporated-into", "AU-6")]


def test_malformed_input_is_quarantined(tmp_path, mirror):
    d = tmp_path / "nist-800-53"
    d.mkdir()
    good = {"catalog": {"metadata": {"version": "9"}, "groups": [{"id": "ac", "title": "Access Control", "controls": [
        {"id": "ac-1", "title": "One", "parts": [{"name": "statement", "prose": "Do it."}]},
        {"id": "bogus id", "title": "Bad"},
        {"id": "ac-2", "title": "Two", "controls": [{"id": "ac-2.1", "title": "Two one"}]},
    ]}]}}
    (d / "A_catalog.json").write_text(json.dumps(good), encoding="utf-8")
    (d / "B_catalog.json").write_text('{"catalog": {"groups": [', encoding="utf-8")
    data = (mirror / "nist-800-53" / "NIST_SP-800-53_rev5_PRIVACY-baseline-resolved-profile_catalog-min.json.gz").read_bytes()
    (d / "C_catalog.json.gz").write_bytes(data[: len(data) // 3])
    (d / "LOW-baseline_profile.json").write_text(json.dumps(
        {"profile": {"metadata": {"title": "LOW IMPACT BASELINE"},
                     "imports": [{"include-controls": [{"with-ids": ["ac-1", "zz-9", "ac-2.1"]}]}]}}), encoding="utf-8")
    (d / "D_profile.json").write_text(json.dumps({"something": "else"}), encoding="utf-8")
    src = NIST80053Source()
    snap = src.fetch(tmp_path)
    q = Quarantine()
    recs = {r.id: r for r in src.records(snap, q)}
    assert set(recs) == {"AC-1", "AC-2", "AC-2(1)"}
    assert recs["AC-1"].attributes["baselines"] == ["LOW"] and recs["AC-2(1)"].attributes["baselines"] == ["LOW"]
    assert snap.extra["baseline_ids_without_text"] == {"LOW": ["ZZ-9"]}
    errors = {(Path(i["file"]).name, i["entry"]): i["error"] for i in q.items}
    assert set(errors) == {("A_catalog.json", "bogus id"), ("B_catalog.json", None), ("C_catalog.json.gz", None),
                           ("D_profile.json", None)}
    assert "invalid JSON at line 1" in errors[("B_catalog.json", None)]
    assert "cannot read" in errors[("C_catalog.json.gz", None)]
    assert "neither an OSCAL catalog nor a profile" in errors[("D_profile.json", None)]


def test_live(http_server, mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    d = mirror / "nist-800-53"
    http_server.add_file("rev5/NIST_SP-800-53_rev5_catalog.json", gzip.decompress(
        (d / "NIST_SP-800-53_rev5_PRIVACY-baseline-resolved-profile_catalog-min.json.gz").read_bytes()))
    http_server.add_file("rev5/NIST_SP-800-53_rev5_LOW-baseline_profile.json",
                         (d / "NIST_SP-800-53_rev5_LOW-baseline_profile.json").read_bytes())
    http_server.fail("rev5/NIST_SP-800-53_rev5_catalog.json", [429], retry_after="0")
    from secfoundry.sources.base import Remote

    monkeypatch.setattr("secfoundry.sources.nist80053.REMOTES", (
        Remote(http_server.url("rev5/NIST_SP-800-53_rev5_catalog.json")),
        Remote(http_server.url("rev5/NIST_SP-800-53_rev5_LOW-baseline_profile.json"))))
    with Fetcher(tmp_path / "dl", retries=2, backoff=0.0, sleep=lambda s: None) as f:
        src = NIST80053Source()
        snap = src.fetch(None, fetcher=f)
        recs = {r.id: r for r in src.records(snap)}
    assert len(recs) == 102 and snap.version == "5.1.1+u4" and recs["AC-1"].attributes["baselines"] == ["LOW"]
    assert len(http_server.requests_to("rev5/NIST_SP-800-53_rev5_catalog.json")) == 2
