"""Atomic Red Team connector: one record per test (GUID), index.csv tactics, bad input, live."""

from __future__ import annotations

import csv
import tarfile
from pathlib import Path

import pytest

from secfoundry.sources.atomic import AtomicSource, read_index
from secfoundry.sources.base import Quarantine, Remote, Snapshot, registry

from .helpers import make_tgz, parse_mirror


@pytest.fixture(scope="module")
def parsed(mirror: Path):
    return parse_mirror(AtomicSource(), mirror)


def test_registered():
    assert registry()["atomic"] is AtomicSource


def test_counts_match_yaml_and_index(parsed, mirror):
    _, snap, q, recs = parsed
    with (mirror / "atomic-red-team" / "index.csv").open(encoding="utf-8") as f:
        guids = {row["Test GUID"] for row in csv.DictReader(f)}
    assert len(recs) == 1819 == len(guids) and len(q) == 0
    assert {r.removeprefix("atomic:") for r in recs} == guids
    assert snap.extra["index_tests"] == 1819 and snap.extra["index_only_tests"] == []
    assert snap.version == "2026-08-17"
    with tarfile.open(mirror / "atomic-red-team" / "atomics-yaml.tar.gz") as tar:
        techniques = {m.name.split("/")[1] for m in tar.getmembers() if m.name.endswith(".yaml")}
    assert len(techniques) == 341 == len({r.attributes["technique"] for r in recs.values()})


def test_test_record(parsed):
    r = parsed[3]["atomic:c3e35b58-fe1c-480b-b540-7600fb612563"]
    assert r.name == "Office Application Startup Test Persistence (HKCU)" and r.type == "atomic-test"
    assert [(x.type, x.target) for x in r.relations] == [("tests", "T1137.002")]
    a = r.attributes
    assert a["platforms"] == ["windows"] and a["executor"] == "powershell" and a["test_number"] == 1
    assert "New-Object -COMObject" in a["command"] and a["cleanup_command"].startswith("Stop-Process")
    assert len(a["dependencies"]) == 2 and a["tactics"] == ["persistence"]
    assert r.license == "MIT" and r.url.endswith("atomics/T1137.002/T1137.002.md")


def test_newer_techniques_reported(parsed):
    _, snap, _, recs = parsed
    assert snap.extra["attack_checked_against"] == "18.1"
    assert snap.extra["unknown_attack"]["T1685"] == 77
    assert sum(r.attributes["technique"] == "T1685" for r in recs.values()) == 77


def test_documents(parsed):
    src, snap, _, _ = parsed
    doc = next(d for d in src.documents(snap) if d.id == "atomic:c3e35b58-fe1c-480b-b540-7600fb612563")
    assert doc.text.startswith("# Atomic test: Office Application Startup Test Persistence (HKCU)")
    assert "```powershell" in doc.text and "- **ATT&CK technique**: T1137.002" in doc.text
    assert doc.license == "MIT" and doc.version == "2026-08-17"


TECH = b"""attack_technique: T1059.001
display_name: 'Command and Scripting Interpreter: PowerShell'
atomic_tests:
- name: Good test
  auto_generated_guid: 11111111-2222-3333-4444-555555555555
  description: runs a thing
  supported_platforms: [windows]
  input_arguments:
    path: {description: where, type: path, default: C:\\x}
  executor: {name: powershell, command: 'Write-Host hi', elevation_required: true}
- name: No GUID
  description: bad
  supported_platforms: [windows]
  executor: {name: powershell, command: x}
- name: No executor
  auto_generated_guid: 66666666-2222-3333-4444-555555555555
  supported_platforms: [linux]
"""


def test_malformed_input(tmp_path):
    tgz = make_tgz(tmp_path / "atomics.tar.gz", {
        "art/atomics/T1059.001/T1059.001.yaml": TECH,
        "art/atomics/T1003/T1003.yaml": b"attack_technique: T1003\natomic_tests: [\n",
        "art/atomics/T1005/T1005.yaml": b"attack_technique: nope\natomic_tests: []\n",
        "art/atomics/T1006/T1006.yaml": "attack_technique: T1006\ndisplay_name: d\xe9j\xe0\n".encode("cp1252"),
    })
    index = tmp_path / "index.csv"
    index.write_text("Tactic,Technique #,Technique Name,Test #,Test Name,Test GUID,Executor Name\n"
                     "execution,T1059.001,PowerShell,1,Good test,11111111-2222-3333-4444-555555555555,powershell\n"
                     "execution,T1059.001,PowerShell,2,Broken,not-a-guid,powershell\n", encoding="utf-8")
    q = Quarantine()
    recs = list(AtomicSource().records(Snapshot("atomic", [tgz, index]), q))
    assert [r.id for r in recs] == ["atomic:11111111-2222-3333-4444-555555555555"]
    assert recs[0].attributes["elevation_required"] is True and recs[0].attributes["tactics"] == ["execution"]
    assert recs[0].attributes["input_arguments"]["path"]["default"] == "C:\\x"
    errors = [i["error"] for i in q.items]
    assert len(errors) == 6
    assert any("row 3, field 'Test GUID'" in e for e in errors)
    assert any("T1059.001.yaml#test2, field 'auto_generated_guid'" in e for e in errors)
    assert any("T1059.001.yaml#test3, field 'executor'" in e for e in errors)
    assert any("T1003.yaml: invalid YAML" in e for e in errors)
    assert any("field 'attack_technique'" in e for e in errors)
    assert any("T1006.yaml: not valid UTF-8" in e for e in errors)


def test_index_with_wrong_encoding(tmp_path):
    bad = tmp_path / "index.csv"
    bad.write_bytes("Tactic,Technique #,Test GUID\nd\xe9fense,T1,x\n".encode("latin-1"))
    q = Quarantine()
    assert read_index(bad, q) == {}
    assert "not valid UTF-8" in q.items[0]["error"] and str(bad) in q.items[0]["error"]


def test_live(http_server, fast_fetcher, monkeypatch, tmp_path):
    monkeypatch.setenv("SECFOUNDRY_HOME", str(tmp_path / "home"))
    http_server.add_file("art/master.tar.gz", make_tgz(tmp_path / "a.tar.gz",
                                                       {"x/atomics/T1059.001/T1059.001.yaml": TECH}).read_bytes())
    http_server.add_file("art/index.csv", "Tactic,Technique #,Test GUID\n"
                         "execution,T1059.001,11111111-2222-3333-4444-555555555555\n")
    http_server.fail("art/index.csv", [500], retry_after="0")
    monkeypatch.setattr(AtomicSource, "tarball",
                        Remote(http_server.url("art/master.tar.gz"), "atomic-red-team-master.tar.gz"))
    monkeypatch.setattr(AtomicSource, "raw_files", (Remote(http_server.url("art/index.csv")),))
    src = AtomicSource()
    snap = src.fetch(None, fetcher=fast_fetcher)
    assert [p.name for p in snap.files] == ["atomic-red-team-master.tar.gz", "index.csv"]
    q = Quarantine()
    recs = list(src.records(snap, q))
    assert [r.attributes["tactics"] for r in recs] == [["execution"]] and len(q) == 2  # the two bad tests
    assert len(http_server.requests_to("art/index.csv")) == 2


def test_oversized_member_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("secfoundry.sources._archives.MAX_MEMBER_BYTES", 1000)
    tgz = make_tgz(tmp_path / "a.tar.gz", {"x/atomics/T1059.001/T1059.001.yaml": TECH,
                                           "x/atomics/T1003/T1003.yaml": b"#" * 5000})
    q = Quarantine()
    recs = list(AtomicSource().records(Snapshot("atomic", [tgz]), q))
    assert len(recs) == 1 and any("T1003.yaml: member is 5000 bytes, over the 1000 byte limit" in i["error"] for i in q.items)
