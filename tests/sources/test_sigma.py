"""Sigma connector: 3,757 rules from the mirror tarball, ATT&CK tags, unknown ids, bad rules, live."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from secfoundry.sources._archives import AttackCatalog
from secfoundry.sources.base import Quarantine, Remote, Snapshot, registry
from secfoundry.sources.sigma import SigmaSource, parse_tags

from .helpers import make_tgz, parse_mirror


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(SigmaSource(), mirror)


def test_registered():
    assert registry()["sigma"] is SigmaSource


def test_counts_match_the_tarball(parsed, mirror):
    _, snap, q, recs = parsed
    with tarfile.open(mirror / "sigma" / "sigma-rules-yaml.tar.gz") as tar:
        n = sum(1 for m in tar.getmembers() if m.isfile() and re.search(r"(^|/)rules[^/]*/.+\.yml$", m.name))
    assert n == 3757 and len(recs) == 3757 and len(q) == 0
    assert snap.version == "2026-08-05"
    assert {r.license for r in recs.values()} == {"DRL-1.1"}


def test_rule_fields_and_attack_relations(parsed):
    r = parsed[3]["sigma:fb843269-508c-4b76-8b8d-88679db22ce7"]
    assert r.name == "Suspicious Execution of Powershell with Base64" and r.type == "sigma-rule"
    assert [(x.type, x.target) for x in r.relations] == [("detects", "T1059.001")]
    a = r.attributes
    assert a["tactics"] == ["execution"] and a["level"] == "medium" and a["status"] == "test"
    assert a["logsource"] == {"category": "process_creation", "product": "windows"}
    assert a["date"] == "2022-01-02" and a["path"].startswith("rules/windows/")
    assert r.url == "https://github.com/SigmaHQ/sigma/blob/master/" + a["path"]


def test_all_tag_kinds_present(parsed):
    recs = parsed[3].values()
    kinds = {x.type for r in recs for x in r.relations}
    assert {"detects", "related-software", "related-vulnerability", "related-rule"} <= kinds
    n_detect = sum(1 for r in recs if any(x.type == "detects" for x in r.relations))
    assert n_detect > 3000


def test_newer_attack_ids_are_kept_and_reported(parsed):
    _, snap, _, recs = parsed
    unknown = snap.extra["unknown_attack"]
    assert snap.extra["attack_checked_against"] == "18.1"
    assert snap.extra["stats"]["rules"] == 3757 and snap.extra["stats"]["unknown_attack_ids"] == 14
    # Tactics and techniques that ATT&CK v18.1 does not have yet: reported, rules kept.
    assert unknown["attack.stealth"] == 1083 and unknown["attack.defense-impairment"] == 413
    assert unknown["T1685"] == 164
    kept = [r for r in recs.values() if "T1685" in r.attributes["unknown_attack"]]
    assert len(kept) == 164 and all(("detects", "T1685") in {(x.type, x.target) for x in r.relations} for r in kept)


def test_parse_tags_units():
    cat = AttackCatalog("18.1", frozenset({"T1059", "T1059.001", "G0016"}), frozenset({"execution"}), frozenset())
    t = parse_tags(["attack.execution", "attack.t1059.001", "attack.g0016", "attack.s0002", "cve.2021-1675",
                    "car.2013-07-002", "detection.emerging-threats", "attack.stealth"], cat)
    assert t["techniques"] == ["T1059.001"] and t["objects"] == ["G0016", "S0002"]
    assert t["tactics"] == ["execution", "stealth"] and t["cves"] == ["CVE-2021-1675"]
    assert t["car"] == ["CAR-2013-07-002"] and t["other"] == ["detection.emerging-threats"]
    assert t["unknown"] == ["S0002", "attack.stealth"]
    assert parse_tags(["attack.t9999"], None)["unknown"] == []  # no pinned ATT&CK: not checked


def test_documents(parsed):
    src, snap, _, _ = parsed
    doc = next(iter(src.documents(snap)))
    assert doc.id.startswith("sigma:") and doc.license == "DRL-1.1" and doc.version == "2026-08-05"
    assert doc.text.startswith("# Sigma rule: ") and "```yaml\ntitle:" in doc.text


RULE = b"""title: Good
id: 11111111-2222-3333-4444-555555555555
status: test
description: A rule
tags:
    - attack.execution
    - attack.t1059
logsource:
    category: process_creation
detection:
    sel:
        Image|endswith: x.exe
    condition: sel
level: high
"""


def test_malformed_rules_are_quarantined(tmp_path):
    tgz = make_tgz(tmp_path / "sigma.tar.gz", {
        "sigma-master/rules/a/good.yml": RULE,
        "sigma-master/rules/a/broken.yml": b"title: x\ndetection: {sel: [\n",
        "sigma-master/rules/a/latin1.yml": RULE.replace(b"A rule", "r\xe8gle".encode("latin-1")),
        "sigma-master/rules/a/noid.yml": RULE.replace(b"id: 11111111-2222-3333-4444-555555555555\n", b""),
        "sigma-master/rules/a/nodetect.yml": RULE.split(b"detection:")[0].replace(b"1111", b"9999"),
        "sigma-master/README.md": b"# not a rule",
    })
    q = Quarantine()
    recs = list(SigmaSource().records(Snapshot("sigma", [tgz], version="v"), q))
    assert [r.id for r in recs] == ["sigma:11111111-2222-3333-4444-555555555555"]
    assert recs[0].attributes["path"] == "rules/a/good.yml"
    errors = {i["entry"].rsplit("/", 1)[-1]: i["error"] for i in q.items}
    assert set(errors) == {"broken.yml", "latin1.yml", "noid.yml", "nodetect.yml"}
    assert "invalid YAML" in errors["broken.yml"] and "not valid UTF-8" in errors["latin1.yml"]
    assert "field 'id'" in errors["noid.yml"] and "field 'detection'" in errors["nodetect.yml"]


def test_truncated_gzip(tmp_path):
    members = {f"s/rules/r{i}.yml": RULE.replace(b"11111111", f"{i:08d}".encode())
               + b"# " + bytes(range(97, 123)) * 120 + b"\n" for i in range(60)}
    data = make_tgz(tmp_path / "full.tar.gz", members).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    q = Quarantine()
    recs = list(SigmaSource().records(Snapshot("sigma", [cut]), q))
    assert 0 < len(recs) < 60 and len(q) == 1 and "damaged archive" in q.items[0]["error"]


def test_live_download_with_retry_and_304(http_server, fast_fetcher, mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    rules = make_tgz(tmp_path / "m.tar.gz", {"sigma-master/rules/a/good.yml": RULE})
    http_server.add_file("sigma/master.tar.gz", rules.read_bytes())
    http_server.fail("sigma/master.tar.gz", [429], retry_after="0")
    monkeypatch.setattr(SigmaSource, "tarball",
                        Remote(http_server.url("sigma/master.tar.gz"), "sigma-master.tar.gz"))
    src = SigmaSource()
    snap = src.fetch(None, fetcher=fast_fetcher)
    assert snap.files[0] == tmp_path / "home" / "sources" / "sigma" / "sigma-master.tar.gz"
    assert snap.version == "2023-11-14" and snap.origin == http_server.url("sigma/master.tar.gz")
    assert [r.name for r in src.records(snap)] == ["Good"]
    src.fetch(None, fetcher=fast_fetcher)
    reqs = http_server.requests_to("sigma/master.tar.gz")
    assert len(reqs) == 3 and "if-none-match" in reqs[-1].headers  # 429, 200, then a conditional 304


def test_deprecated_folder_is_flagged(tmp_path):
    tgz = make_tgz(tmp_path / "s.tar.gz", {
        "sigma-master/rules/a/good.yml": RULE,
        "sigma-master/deprecated/windows/old.yml": RULE.replace(b"11111111", b"22222222"),
        "sigma-master/tests/not_a_rule.yml": RULE.replace(b"11111111", b"33333333"),
    })
    recs = {r.id: r for r in SigmaSource().records(Snapshot("sigma", [tgz]))}
    assert set(recs) == {"sigma:11111111-2222-3333-4444-555555555555", "sigma:22222222-2222-3333-4444-555555555555"}
    assert recs["sigma:22222222-2222-3333-4444-555555555555"].deprecated
    assert not recs["sigma:11111111-2222-3333-4444-555555555555"].deprecated


def test_yaml_alias_bomb_is_refused(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 13):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]")
    bomb = ("\n".join(lines) + "\n").encode() + RULE.replace(b"11111111", b"44444444")
    tgz = make_tgz(tmp_path / "s.tar.gz", {"s/rules/bomb.yml": bomb, "s/rules/good.yml": RULE})
    q = Quarantine()
    recs = list(SigmaSource().records(Snapshot("sigma", [tgz]), q))
    assert [r.name for r in recs] == ["Good"]
    assert "possible alias bomb" in q.items[0]["error"] and q.items[0]["entry"] == "s/rules/bomb.yml"


def test_live_pinned_ref_and_sha256(http_server, fast_fetcher, monkeypatch, tmp_path):
    import hashlib

    from secfoundry.sources._archives import at_ref
    from secfoundry.core.download import ChecksumError

    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    data = make_tgz(tmp_path / "m.tar.gz", {"sigma-abc123/rules/a/good.yml": RULE}).read_bytes()
    http_server.add_file("SigmaHQ/sigma/archive/abc123.tar.gz", data)
    monkeypatch.setattr(SigmaSource, "tarball", Remote(
        http_server.url("SigmaHQ/sigma/archive/refs/heads/master.tar.gz"), "sigma-master.tar.gz"))
    digest = hashlib.sha256(data).hexdigest()
    src = SigmaSource(ref="abc123", sha256=digest)
    snap = src.fetch(None, fetcher=fast_fetcher)
    assert snap.files[0].name == "sigma-master@abc123.tar.gz" and [r.name for r in src.records(snap)] == ["Good"]
    n = len(http_server.requests)
    src.fetch(None, fetcher=fast_fetcher)
    assert len(http_server.requests) == n  # pinned and verified: no request at all
    with pytest.raises(ChecksumError):
        SigmaSource(ref="abc123", sha256="0" * 64).fetch(None, fetcher=fast_fetcher)
    raw = at_ref(Remote("https://raw.githubusercontent.com/o/r/master/a/b.csv"), "v1.0")
    assert raw.url == "https://raw.githubusercontent.com/o/r/v1.0/a/b.csv" and raw.filename == "b@v1.0.csv"
