"""CLI via typer's CliRunner on real, small sources from the shared mirror (kev, capec, cwe),
and the real all-MiniLM-L6-v2 embedder on a handful of texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secfoundry.cli import app
from secfoundry.kb import KnowledgeBase

runner = CliRunner()


@pytest.fixture(scope="module")
def real_kb(tmp_path_factory, mirror: Path) -> Path:
    db = tmp_path_factory.mktemp("realkb") / "kb"
    res = runner.invoke(app, ["kb", "sync", "--mirror", str(mirror), "--sources", "kev,capec,cwe", "--db", str(db),
                              "--embedder", "hashing"])
    assert res.exit_code == 0, res.output
    assert "kev" in res.output and "synced" in res.output and "dense index" in res.output
    return db


def test_sync_counts_match_files(real_kb: Path) -> None:
    st = KnowledgeBase.open(real_kb).status()
    counts = {s.name: s.records for s in st.sources}
    assert counts["kev"] == 1404  # the catalog's 1,404 entries
    assert counts["cwe"] == 1426 and counts["capec"] > 500
    assert {s.name: s.version for s in st.sources}["cwe"] == "4.14"


def test_cli_status_show_search_validate(real_kb: Path) -> None:
    out = runner.invoke(app, ["kb", "status", "--db", str(real_kb)])
    assert out.exit_code == 0 and "1404" in out.output and "capec" in out.output
    st = json.loads(runner.invoke(app, ["kb", "status", "--db", str(real_kb), "--json"]).output)
    assert st["counts"]["records"] > 3000 and st["dense"]["state"] == "fresh"

    out = runner.invoke(app, ["kb", "show", "CWE-79", "--db", str(real_kb)])
    assert out.exit_code == 0 and "Improper Neutralization of Input" in out.output
    cwe = json.loads(runner.invoke(app, ["kb", "show", "cwe-79", "--db", str(real_kb), "--json"]).output)
    assert cwe["id"] == "CWE-79" and cwe["type"] == "weakness"
    assert "CWE-74" in [r["id"] for r in cwe["sections"]["parents"]]
    assert any(r["id"].startswith("CAPEC-") for r in cwe["sections"]["related_attack_patterns"])

    capec = json.loads(runner.invoke(app, ["kb", "show", "CAPEC-66", "--db", str(real_kb), "--json"]).output)
    assert capec["name"] == "SQL Injection" and "CWE-89" in json.dumps(capec["sections"])

    kev = json.loads(runner.invoke(app, ["kb", "show", "CVE-2024-3400", "--db", str(real_kb), "--json"]).output)
    assert kev["kev"]["date_added"] == "2024-04-12" and kev["sources"][0]["source"] == "kev"

    out = runner.invoke(app, ["kb", "show", "CVE-1900-0001", "--db", str(real_kb)])
    assert out.exit_code == 1 and "not in the knowledge base" in out.output

    hits = json.loads(runner.invoke(app, ["kb", "search", "SQL injection in a login form", "--type", "cwe",
                                          "--k", "5", "--db", str(real_kb), "--json"]).output)
    assert len(hits) == 5 and "CWE-89" in [h["id"] for h in hits] and {h["type"] for h in hits} == {"weakness"}
    out = runner.invoke(app, ["kb", "search", "cross site scripting", "--db", str(real_kb)])
    assert out.exit_code == 0 and "CWE-79" in out.output

    lines = runner.invoke(app, ["kb", "search", "-", "--type", "cwe", "--k", "3", "--db", str(real_kb)],
                          input="sql injection\n\ncross site scripting\n").output.strip().splitlines()
    batch = [json.loads(x) for x in lines]
    assert [b["query"] for b in batch] == ["sql injection", "cross site scripting"]
    assert batch[0]["hits"][0]["id"] == "CWE-89" and len(batch[1]["hits"]) == 3

    val = json.loads(runner.invoke(app, ["kb", "validate", "cwe79", "CWE-99999", "--db", str(real_kb),
                                         "--json"]).output)
    assert val[0]["canonical"] == "CWE-79" and val[0]["known"] and val[1]["known"] is False
    out = runner.invoke(app, ["kb", "validate", "t1059.1", "--syntax-only"])
    assert out.exit_code == 0 and "T1059.001" in out.output


def test_cli_resync_is_incremental(real_kb: Path, mirror: Path) -> None:
    res = runner.invoke(app, ["kb", "sync", "--mirror", str(mirror), "--sources", "kev,capec,cwe", "--db",
                              str(real_kb), "--embedder", "hashing", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert [r["status"] for r in report["results"]] == ["unchanged"] * 3 and report["dense"] is None


def test_epss_merges_into_cve(real_kb: Path, tmp_path: Path) -> None:
    """EPSS is not mirrored upstream: a small file in its format, synced next to KEV."""
    d = tmp_path / "mirror" / "epss"
    d.mkdir(parents=True)
    (d / "epss_scores-2025-08-25.csv").write_text(
        "#model_version:v2025.03.14,score_date:2025-08-25T12:55:00Z\ncve,epss,percentile\n"
        "CVE-2024-3400,0.94335,0.99961\nCVE-2021-44228,0.94358,0.99995\n")
    res = runner.invoke(app, ["kb", "sync", "--mirror", str(tmp_path / "mirror"), "--sources", "epss", "--db",
                              str(real_kb), "--embedder", "hashing"])
    assert res.exit_code == 0, res.output
    e = json.loads(runner.invoke(app, ["kb", "show", "CVE-2024-3400", "--db", str(real_kb), "--json"]).output)
    assert e["epss"]["epss"] == pytest.approx(0.94335) and e["kev"]["date_added"] == "2024-04-12"
    assert {s["source"] for s in e["sources"]} == {"kev", "epss"} and e["name"].startswith("Palo Alto")
    out = runner.invoke(app, ["kb", "show", "CVE-2024-3400", "--db", str(real_kb)]).output
    assert "EPSS: 0.94335" in out and "Known Exploited" in out


def test_cli_unknown_source(tmp_path: Path, mirror: Path) -> None:
    res = runner.invoke(app, ["kb", "sync", "--mirror", str(mirror), "--sources", "nope", "--db", str(tmp_path)])
    assert res.exit_code == 2 and "unknown source" in res.output


def test_minilm_embedder_dense_lane(tmp_path: Path) -> None:
    """The real model, offline, on a tiny store: semantic neighbours and the persisted index."""
    from secfoundry.kb.dense import DensePolicy, MiniLMEmbedder, build
    from secfoundry.core.records import Record
    from secfoundry.kb.search import Searcher
    from secfoundry.kb.store import SourceRow, Store

    emb = MiniLMEmbedder(max_seq_length=64)
    st = Store(tmp_path / "kb.sqlite")
    st.replace_source(SourceRow(name="s"), iter([
        Record("T1003.001", "technique", "LSASS Memory", "Adversaries read the memory of the LSASS process to obtain "
               "password hashes.", "s"),
        Record("CWE-89", "weakness", "SQL Injection", "Untrusted input changes the meaning of a database query.", "s"),
        Record("T1566", "technique", "Phishing", "Adversaries send emails with malicious attachments or links.", "s"),
    ]))
    index, stats = build(st, emb, tmp_path / "dense", DensePolicy())
    assert stats.embedded == 3 and index.vectors.shape == (3, 384)
    s = Searcher(st, index, emb)
    hits = s.search("stealing credentials from windows process memory", k=3, lanes=("dense",))
    assert hits[0].id == "T1003.001"
    hits = s.search("malicious e-mail attachment", type="technique", k=1, lanes=("dense",))
    assert [h.id for h in hits] == ["T1566"]
