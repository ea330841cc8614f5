"""ATT&CK connector: mirror counts, flags, relations, documents, malformed input, live mode."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from secfoundry.sources.attack import AttackSource, clean_text, index_versions
from secfoundry.sources.base import Quarantine, Snapshot, registry
from secfoundry.core.download import Fetcher

from .helpers import parse_mirror


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(AttackSource(), mirror)


def test_registered():
    assert registry()["attack"] is AttackSource


def test_mirror_counts_against_files(parsed, mirror):
    src, snap, q, recs = parsed
    stats = snap.extra["stats"]
    assert stats["objects:enterprise-attack-18.1.json.gz"] == 24771
    for f in [mirror / "attack" / "mobile-attack-18.1.json.gz", mirror / "attack" / "ics-attack-18.1.json.gz"]:
        n = len(json.loads(gzip.decompress(f.read_bytes()))["objects"])
        assert stats[f"objects:{f.name}"] == n
    assert snap.version == "18.1"
    assert len(q) == 0
    # Enterprise v18.1 alone: 835 attack-patterns; with mobile (190) and ics (95) = 1,120.
    assert stats["type:technique"] == 1120
    assert stats["type:tactic"] == 40
    assert stats["relations:uses"] > 18000 and stats["relations:detects"] > 800
    assert all(r.version == "18.1" and r.license for r in recs.values())


def test_technique_and_subtechnique(parsed):
    *_, recs = parsed
    ps = recs["T1059.001"]
    assert ps.name == "PowerShell" and ps.type == "technique"
    assert ps.attributes["is_subtechnique"] and "Windows" in ps.attributes["platforms"]
    rels = {(r.type, r.target) for r in ps.relations}
    assert ("subtechnique-of", "T1059") in rels and ("in-tactic", "TA0002") in rels
    assert ps.url == "https://attack.mitre.org/techniques/T1059/001"
    assert "(Citation:" not in ps.description


def test_revoked_and_deprecated_flagged(parsed):
    *_, recs = parsed
    old = recs["T1066"]
    assert old.revoked and old.replaced_by == "T1027.005"
    assert any(r.type == "revoked-by" and r.target == "T1027.005" for r in old.relations)
    legacy = recs["T1066-mitigation"]  # a deprecated mitigation that reused a technique id
    assert legacy.type == "mitigation" and legacy.deprecated
    assert not recs["T1059.001"].revoked and not recs["T1059.001"].deprecated


def test_relations_carry_stix_id_and_procedure_text(parsed):
    *_, recs = parsed
    uses = [r for r in recs["G0016"].relations if r.type == "uses"]
    assert len(uses) > 50
    with_text = [r for r in uses if r.attributes.get("description")]
    assert with_text and all(r.attributes["stix_id"].startswith("relationship--") for r in uses)
    # The procedure-examples dataset was made from these same relationships.
    mits = [r for r in recs["M1036"].relations if r.type == "mitigates"]
    assert mits and all(r.target.startswith("T") for r in mits)
    det = recs["DET0103"]
    assert {r.type for r in det.relations} >= {"detects", "has-analytic"}
    an = next(r.target for r in det.relations if r.type == "has-analytic")
    assert any(r.type == "uses-data-component" for r in recs[an].relations)


def test_procedure_dataset_sentences_are_relations(parsed, datasets_dir):
    *_, recs = parsed
    raws = set()
    for r in recs.values():
        for rel in r.relations:
            if rel.type == "uses" and rel.attributes.get("description"):
                raws.add(rel.attributes["description"])
    with (datasets_dir / "attack-procedure-examples.jsonl").open() as f:
        sample = [json.loads(next(f)) for _ in range(200)]
    hits = sum(s["raw"].strip() in raws for s in sample)
    assert hits >= 190


def test_ics_assets_and_mobile(parsed):
    *_, recs = parsed
    assert recs["A0001"].type == "asset"
    assert "ics-attack" in recs["A0001"].attributes["domains"]
    mobile = [r for r in recs.values() if "mobile-attack" in r.attributes.get("domains", []) and r.type == "technique"]
    assert len(mobile) == 190


def test_stix2_accepts_sample_objects(mirror):
    import stix2

    bundle = json.loads(gzip.decompress((mirror / "attack" / "ics-attack-18.1.json.gz").read_bytes()))
    seen = set()
    for obj in bundle["objects"]:
        if obj["type"] in {"attack-pattern", "intrusion-set", "malware", "relationship", "course-of-action"} \
                and obj["type"] not in seen:
            seen.add(obj["type"])
            parsed = stix2.parse(obj, allow_custom=True, version="2.1")
            assert parsed.id == obj["id"]
    assert len(seen) == 5


def test_documents(parsed):
    src, snap, q, recs = parsed
    docs = {d.id: d for d in src.documents(snap, q)}
    d = docs["attack:T1003.001"]
    assert d.title == "T1003.001: LSASS Memory" and d.url.startswith("https://attack.mitre.org/")
    assert d.version == "18.1" and d.license == src.license and d.source == "attack"
    assert "## Procedure examples" in d.text and "(Citation:" not in d.text
    assert "attack:T1066" not in docs  # revoked objects stay out of the corpus
    assert "## Analytics" in docs["attack:DET0103"].text


def test_clean_text():
    assert clean_text("Use <code>net use</code>.(Citation: X 2020) Done") == "Use `net use`. Done"


def _bundle(objects):
    return {"type": "bundle", "id": "bundle--1", "objects": objects}


def _tech(sid, tid, **kw):
    return {"type": "attack-pattern", "id": f"attack-pattern--{sid}", "name": f"Tech {tid}",
            "description": "d", "external_references": [{"source_name": "mitre-attack", "external_id": tid}],
            "x_mitre_domains": ["enterprise-attack"], **kw}


def test_malformed_inputs_are_quarantined_and_rest_goes_on(tmp_path):
    good = tmp_path / "enterprise-attack-18.1.json"
    good.write_text(json.dumps(_bundle([
        _tech("1", "T9001"),
        _tech("2", "T9002", x_mitre_is_subtechnique=True),
        {"type": "attack-pattern", "name": "no id"},  # broken object
        {"type": "x-mitre-new-thing", "id": "x-mitre-new-thing--1",
         "external_references": [{"source_name": "mitre-attack", "external_id": "NT0001"}]},
        {"type": "relationship", "id": "relationship--1", "relationship_type": "uses",
         "source_ref": "attack-pattern--1", "target_ref": "attack-pattern--missing"},
        {"type": "relationship", "id": "relationship--2", "relationship_type": "subtechnique-of",
         "source_ref": "attack-pattern--2", "target_ref": "attack-pattern--1"},
    ])))
    trunc = tmp_path / "mobile-attack-18.1.json.gz"
    trunc.write_bytes(gzip.compress(json.dumps(_bundle([_tech(str(i), f"T8{i:03d}") for i in range(2000)])).encode())[:3000])
    notjson = tmp_path / "ics-attack-18.1.json"
    notjson.write_text('{"type": "bundle", "objects": [')
    q = Quarantine()
    src = AttackSource()
    snap = Snapshot("attack", [good, trunc, notjson])
    recs = {r.id: r for r in src.records(snap, q)}
    assert set(recs) == {"T9001", "T9002", "NT0001"}
    assert recs["T9002"].relations[0].target == "T9001"
    assert recs["NT0001"].type == "new-thing"  # unknown types kept and reported
    assert snap.extra["stats"]["unknown_types"] == {"x-mitre-new-thing": 1}
    errors = {(Path(i["file"]).name, str(i["entry"])): i["error"] for i in q.items}
    assert any(f == "mobile-attack-18.1.json.gz" and "Compressed file ended" in e for (f, _), e in errors.items())
    assert any(f == "ics-attack-18.1.json" and "invalid JSON" in e for (f, _), e in errors.items())
    assert ("enterprise-attack-18.1.json", "2") in errors
    assert any(entry == "relationship--1" and "missing" in e for (_, entry), e in errors.items())


def test_live_fetch_from_loopback(http_server, tmp_path, mirror):
    for d in ("enterprise-attack", "mobile-attack"):
        http_server.add_file(f"{d}/{d}-18.1.json", json.dumps(_bundle([_tech(d, "T9" + d[:3])])))
    http_server.add_file("index.json", (mirror / "attack" / "index.json").read_bytes())
    src = AttackSource(domains=("enterprise-attack", "mobile-attack"), base_url=http_server.base)
    with Fetcher(tmp_path, retries=1, backoff=0.01) as f:
        assert "18.1" in src.available_versions(f)["enterprise-attack"]
        snap = src.fetch(None, fetcher=f)
        assert snap.origin.startswith(http_server.base)
        assert [p.name for p in snap.files] == ["enterprise-attack-18.1.json", "mobile-attack-18.1.json"]
        assert {r.id for r in src.records(snap)} == {"T9ent", "T9mob"}
        src.fetch(None, fetcher=f)  # second sync: conditional requests, answered 304
    assert "if-none-match" in http_server.requests_to("enterprise-attack/enterprise-attack-18.1.json")[-1].headers


def test_index_versions(mirror):
    idx = json.loads((mirror / "attack" / "index.json").read_text())
    v = index_versions(idx)
    assert set(v) == {"enterprise-attack", "mobile-attack", "ics-attack"}
    assert v["enterprise-attack"]["18.1"].endswith("enterprise-attack-18.1.json")
