"""D3FEND connector: techniques, tactics, parents, ATT&CK counters via artifacts; bad Turtle; live."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from secfoundry.sources.base import Quarantine, Remote, Snapshot, registry
from secfoundry.sources.d3fend import D3FENDSource, parse_ontology, technique_document

from .helpers import parse_mirror


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(D3FENDSource(), mirror)


def test_registered():
    assert registry()["d3fend"] is D3FENDSource


def test_count_matches_the_ontology_text(parsed, mirror):
    _, snap, q, recs = parsed
    text = gzip.decompress((mirror / "d3fend" / "d3fend-protege.ttl.gz").read_bytes()).decode()
    ids = set(re.findall(r':d3fend-id "(D3-[A-Z0-9]+)"', text))
    assert len(ids) == 250 == len(recs) and set(recs) == ids and len(q) == 0
    assert snap.version.startswith("sha256:")
    tactics = {r.attributes["tactic"] for r in recs.values()}
    assert {"Model", "Harden", "Detect", "Isolate", "Deceive", "Evict", "Restore"} <= tactics


def test_account_locking(parsed):
    r = parsed[3]["D3-AL"]
    assert r.name == "Account Locking" and r.type == "d3fend-technique" and r.license == "MIT"
    assert r.description == "The process of temporarily disabling user accounts on a system or domain."
    assert r.attributes["tactic"] == "Evict" and r.attributes["kb_article"].startswith("## How it works")
    assert r.attributes["artifacts"] == [{"property": "disables", "artifact": "User Account"}]
    rels = {(x.type, x.target): x.attributes for x in r.relations}
    assert ("child-of", "D3-CE") in rels
    assert rels[("counters", "T1078")] == {"artifacts": ["User Account"], "defensive": ["disables"],
                                           "offensive": ["uses"]}
    assert rels[("counters", "T1078.002")]["offensive_artifacts"] == ["DomainUserAccount"]
    assert r.url == "https://d3fend.mitre.org/technique/d3f:AccountLocking/"


def test_counter_links_overall(parsed):
    recs = parsed[3].values()
    counters = [x for r in recs for x in r.relations if x.type == "counters"]
    assert len(counters) > 2500
    assert all(re.match(r"^T\d{4}(\.\d{3})?$", x.target) for x in counters)


def test_documents(parsed):
    _, snap, _, recs = parsed
    doc = technique_document(recs["D3-AL"])  # what documents() yields per record, without a re-parse
    assert doc.text.startswith("# D3-AL: Account Locking") and "### How it works" in doc.text
    assert "## Counters ATT&CK techniques" in doc.text and "- T1078 (via User Account)" in doc.text
    assert doc.license == "MIT" and doc.version == snap.version


MINI = """@prefix : <http://d3fend.mitre.org/ontologies/d3fend.owl#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .

:Harden a :DefensiveTactic, owl:Class ; rdfs:label "Harden" .
:FileArtifact a owl:Class ; rdfs:label "File" .
:ConfigFile a owl:Class ; rdfs:subClassOf :FileArtifact ; rdfs:label "Config File" .
:Parent a owl:Class ; rdfs:label "Parent Technique" ; :d3fend-id "D3-P" ;
    rdfs:subClassOf [ a owl:Restriction ; owl:onProperty :enables ; owl:someValuesFrom :Harden ] .
:Child a owl:Class ; rdfs:label "Child Technique" ; :d3fend-id "D3-C" ; :definition "Protects files." ;
    :synonym "Kiddo" ;
    rdfs:subClassOf :Parent, [ a owl:Restriction ; owl:onProperty :hardens ; owl:someValuesFrom :FileArtifact ] .
:Algo a owl:Class ; :d3fend-id "D3A-X" ; rdfs:label "Some algorithm" .
:T9001 a owl:Class ; rdfs:label "Edit config" ; :attack-id "T9001" ;
    rdfs:subClassOf [ a owl:Restriction ; owl:onProperty :modifies ; owl:someValuesFrom :ConfigFile ] .
:T9002 a owl:Class ; rdfs:label "Old" ; :attack-id "T9002" ; owl:deprecated "true"^^xsd:boolean ;
    rdfs:subClassOf [ a owl:Restriction ; owl:onProperty :modifies ; owl:someValuesFrom :FileArtifact ] .
"""


def test_inference_on_a_small_ontology():
    recs = {r.id: r for r in parse_ontology(MINI, file="mini.ttl", version="v")}
    assert set(recs) == {"D3-P", "D3-C"}  # D3A-* ids are not techniques
    child = recs["D3-C"]
    assert child.attributes["tactic"] == "Harden" and child.aliases == ["Kiddo"]
    assert [(x.type, x.target) for x in child.relations] == [("child-of", "D3-P"), ("counters", "T9001")]
    assert child.relations[1].attributes["offensive_artifacts"] == ["ConfigFile"]  # matched via subclass
    assert recs["D3-P"].relations == []  # no artifact of its own; deprecated T9002 never linked


def test_broken_and_truncated_files_are_quarantined(tmp_path, mirror):
    bad = tmp_path / "bad.ttl"
    bad.write_text(MINI.replace(':Child a owl:Class ;', ':Child a owl:Class ; "dangling literal" ;'), encoding="utf-8")
    data = (mirror / "d3fend" / "d3fend-protege.ttl.gz").read_bytes()
    cut = tmp_path / "cut.ttl.gz"
    cut.write_bytes(data[: len(data) // 2])
    latin = tmp_path / "latin.ttl"
    latin.write_bytes(MINI.replace("Protects files.", "Prot\xe8ge").encode("latin-1"))
    good = tmp_path / "good.ttl"
    good.write_text(MINI, encoding="utf-8")
    q = Quarantine()
    recs = list(D3FENDSource().records(Snapshot("d3fend", [bad, cut, latin, good], version="v"), q))
    assert sorted(r.id for r in recs) == ["D3-C", "D3-P"]  # the good file still parses
    errors = {Path(i["file"]).name: i["error"] for i in q.items}
    assert set(errors) == {"bad.ttl", "cut.ttl.gz", "latin.ttl"}
    assert "invalid Turtle" in errors["bad.ttl"] and "cannot read" in errors["cut.ttl.gz"]
    assert "not valid UTF-8" in errors["latin.ttl"]


def test_live_download_304(http_server, fast_fetcher, monkeypatch, tmp_path):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    http_server.add_file("ontologies/d3fend.ttl", MINI)
    http_server.fail("ontologies/d3fend.ttl", [502], retry_after="0")
    monkeypatch.setattr("secfoundry.sources.d3fend.D3FEND_TTL", Remote(http_server.url("ontologies/d3fend.ttl")))
    src = D3FENDSource()
    snap = src.fetch(None, fetcher=fast_fetcher)
    assert snap.files == [tmp_path / "home" / "sources" / "d3fend" / "d3fend.ttl"]
    assert sorted(r.id for r in src.records(snap)) == ["D3-C", "D3-P"]
    assert [d.id for d in src.documents(snap)] == ["d3fend:D3-C", "d3fend:D3-P"]
    snap2 = src.fetch(None, fetcher=fast_fetcher)
    assert snap2.version == snap.version and "if-none-match" in http_server.requests_to("ontologies/d3fend.ttl")[-1].headers
