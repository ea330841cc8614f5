"""CAPEC connector: counts against the bundle, CWE/ATT&CK links, deprecated flags, malformed input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, Snapshot, registry
from secfoundry.sources.capec import CapecSource, html_to_text
from secfoundry.core.download import Fetcher

from .helpers import parse_mirror


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(CapecSource(), mirror)


def test_registered():
    assert registry()["capec"] is CapecSource


def test_counts_against_file(parsed, mirror):
    src, snap, q, recs = parsed
    bundle = json.loads(gzip.decompress((mirror / "capec" / "stix-capec.json.gz").read_bytes()))
    aps = [o for o in bundle["objects"] if o["type"] == "attack-pattern"]
    assert len(recs) == len(aps) == 615
    assert snap.extra["stats"]["objects"] == len(bundle["objects"])
    assert sum(r.deprecated for r in recs.values()) == sum(o.get("x_capec_status") == "Deprecated" for o in aps)
    assert snap.version == "3.9" and len(q) == 0


def test_links_to_cwe_and_attack(parsed):
    *_, recs = parsed
    sqli = recs["CAPEC-66"]
    rels = {(r.type, r.target) for r in sqli.relations}
    assert ("related-weakness", "CWE-89") in rels and ("child-of", "CAPEC-248") in rels
    assert ("parent-of", "CAPEC-7") in rels
    techs = [r for rec in recs.values() for r in rec.relations if r.type == "related-technique"]
    assert len(techs) == 272 and all(r.target.startswith("T") for r in techs)
    assert recs["CAPEC-87"].attributes["mitigations"]


def test_deprecated(parsed):
    *_, recs = parsed
    assert recs["CAPEC-409"].deprecated and recs["CAPEC-409"].replaced_by == "CAPEC-118"


def test_documents(parsed):
    src, snap, q, _ = parsed
    docs = {d.id: d for d in src.documents(snap, q)}
    d = docs["capec:CAPEC-87"]
    assert "## Execution Flow" in d.text and "<" not in d.text.split("## Example")[0]
    assert d.url == "https://capec.mitre.org/data/definitions/87.html" and d.version == "3.9"
    assert "capec:CAPEC-409" not in docs


def test_html_to_text():
    assert html_to_text("<xhtml:p>A &amp; B</xhtml:p><ul><li>x</li><li>y</li></ul>") == "A & B\n- x\n- y"


def test_malformed(tmp_path):
    good = {"type": "attack-pattern", "id": "attack-pattern--1", "name": "P", "description": "d",
            "x_capec_version": "9.0", "x_capec_child_of_refs": ["attack-pattern--gone"],
            "external_references": [{"source_name": "capec", "external_id": "CAPEC-1"},
                                    {"source_name": "ATTACK", "external_id": "T99999"}]}
    noid = {"type": "attack-pattern", "id": "attack-pattern--2", "name": "no capec id"}
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"type": "bundle", "id": "bundle--x", "objects": [good, noid, 7]}))
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    notbundle = tmp_path / "nb.json"
    notbundle.write_text("[1, 2]")
    q = Quarantine()
    snap = Snapshot("capec", [f, bad, notbundle])
    recs = {r.id: r for r in CapecSource().records(snap, q)}
    assert set(recs) == {"CAPEC-1"}
    assert recs["CAPEC-1"].relations[0].target == "T99999"  # odd ATT&CK ids kept, reported
    assert snap.extra["stats"]["unusual_attack_ids"] == 1 and snap.extra["stats"]["dangling_refs"] == 1
    errs = [i["error"] for i in q.items]
    assert any("bad.json.gz" in e and "cannot read" in e for e in errs)
    assert any("nb.json" in e and "not a STIX 2.1 bundle" in e for e in errs)
    assert any("without a CAPEC external id" in e for e in errs)
    assert any(i["entry"] == 2 for i in q.items)


def test_live(http_server, tmp_path, mirror):
    http_server.add_file("capec/2.1/stix-capec.json", gzip.decompress((mirror / "capec" / "stix-capec.json.gz").read_bytes()))
    http_server.fail("capec/2.1/stix-capec.json", [503], retry_after="0")
    src = CapecSource(url=http_server.url("capec/2.1/stix-capec.json"))
    with Fetcher(tmp_path, retries=2, backoff=0.01) as f:
        snap = src.fetch(None, fetcher=f)
    assert sum(1 for _ in src.records(snap)) == 615
