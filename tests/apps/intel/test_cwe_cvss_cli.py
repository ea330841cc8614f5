"""CLI contracts of map-cwe / predict-cvss, bad input (rows named, others processed)."""

from __future__ import annotations

import gzip
import json

import pytest
from typer.testing import CliRunner

from secfoundry.apps.intel.inputs import read_cve_jsonl
from secfoundry.cli import app

from tests.apps.intel._cve_fixture import cve_env  # noqa: F401


@pytest.fixture
def env(cve_env, monkeypatch, tmp_path):
    # the CLI builds (and caches) its own model from the fixture records and KB
    monkeypatch.setenv("SECFOUNDRY_HOME", str(cve_env["tmp"] / "home"))
    monkeypatch.setenv("SECFOUNDRY_KB", str(cve_env["kb"]))
    monkeypatch.setenv("SECFOUNDRY_CVE_RECORDS", str(cve_env["records"]))
    monkeypatch.setenv("SECFOUNDRY_DATA", str(tmp_path / "no-benchmarks"))
    return cve_env


def _bad_input(tmp_path):
    p = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": "CVE-2024-0001", "description": "SQL injection via the id parameter of a.php "
                                                                 "leads to sql injection."}).encode(),
             b"{not json",
             json.dumps({"id": "CVE-2024-0002"}).encode(),
             b'{"id": "CVE-2024-0003", "description": "caf\xe9"}',
             json.dumps([1, 2]).encode(),
             json.dumps({"id": "CVE-2024-0004", "description": "x" * 30_000}).encode(),
             json.dumps({"description": "Cross-site scripting (XSS) in the search page of Foo CMS."}).encode()]
    p.write_bytes(b"\n".join(lines) + b"\n")
    return p


def test_read_errors_name_rows(tmp_path):
    rows, errors = read_cve_jsonl(_bad_input(tmp_path))
    assert [r for r, _ in rows] == [1, 7]
    msgs = [str(e) for e in errors]
    assert [e.row for e in errors] == [2, 3, 4, 5, 6]
    assert all("in.jsonl" in m for m in msgs)
    assert "not JSON" in msgs[0] and "description" in msgs[1] and "UTF-8" in msgs[2]
    assert "JSON object" in msgs[3] and "limit" in msgs[4]


def test_map_cwe_batch_contract(env, tmp_path):
    out = tmp_path / "pred.jsonl"
    r = CliRunner().invoke(app, ["intel", "map-cwe", "--input", str(_bad_input(tmp_path)), "--out", str(out)])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["CVE-2024-0001", "row-7"]
    assert lines[0]["cwe"][0] == "CWE-89" and lines[1]["cwe"][0] == "CWE-79"
    assert len(lines[0]["scores"]) == len(lines[0]["cwe"])
    assert "row 2" in r.output and "5 bad row(s) skipped" in r.output


def test_predict_cvss_batch_contract(env, tmp_path):
    src = tmp_path / "in.jsonl.gz"
    with gzip.open(src, "wt") as fh:
        fh.write(json.dumps({"id": "CVE-2024-0009", "description": "Use after free in Orion Desk allows remote "
                                                                    "attackers to execute code.", "x": 1}) + "\n")
    out = tmp_path / "pred.jsonl"
    r = CliRunner().invoke(app, ["intel", "predict-cvss", "--input", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["id"] == "CVE-2024-0009" and line["vector"].startswith("CVSS:3.1/") and 0 <= line["score"] <= 10
    assert set(line["metrics"]) == {"AV", "AC", "PR", "UI", "S", "C", "I", "A"}


def test_single_text_id_and_json5(env, tmp_path):
    run = CliRunner().invoke
    text = "Stack-based buffer overflow in Qux Gateway via a long argument."
    r = run(app, ["intel", "map-cwe", text])  # NVD's level by default: CWE-121 rolls up to CWE-787
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["cwe"][:2] == ["CWE-787", "CWE-121"] and d["candidates"][0]["signals"]["rolled_up"] > 0
    r = run(app, ["intel", "map-cwe", "--level", "cna", text])
    assert r.exit_code == 0 and json.loads(r.output)["cwe"][0] == "CWE-121"
    r = run(app, ["intel", "map-cwe", "CVE-2023-1001"])  # a record of the fixture: looked up, itself excluded
    d = json.loads(r.output)
    assert r.exit_code == 0 and d["id"] == "CVE-2023-1001" and d["excluded"] == 1 and d["recorded"] == ["CWE-89"]
    r = run(app, ["intel", "map-cwe", "CVE-2031-99999"])
    assert r.exit_code == 2 and "unknown CVE id CVE-2031-99999" in r.output
    j5 = tmp_path / "CVE-2024-5555.json"
    j5.write_text(json.dumps({"dataType": "CVE_RECORD", "cveMetadata": {"cveId": "CVE-2024-5555"},
                              "containers": {"cna": {"descriptions": [
                                  {"lang": "en", "value": "Path traversal in Pico Store allows reading "
                                                          "arbitrary files via ../ sequences."}]}}}))
    r = run(app, ["intel", "predict-cvss", str(j5)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["id"] == "CVE-2024-5555"
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{")
    r = run(app, ["intel", "map-cwe", str(bad)])
    assert r.exit_code == 2 and "bad.json" in r.output
    r = run(app, ["intel", "map-cwe"])
    assert r.exit_code == 2


def _first_json(output: str) -> dict:
    """The first JSON object in the CLI's output (log lines may come around it)."""
    return json.JSONDecoder().raw_decode(output[output.index("{"):])[0]


def test_fit_dense_and_convention_options(env):
    """`intel fit --dense` builds map-cwe's dense part next to the model; map-cwe then reports its
    signals; predict-cvss takes --convention (unknown ones are refused)."""
    r = CliRunner().invoke(app, ["intel", "fit", "--dense", "--embedder", "hashing"])
    assert r.exit_code == 0, r.output
    manifest = _first_json(r.output)
    assert manifest["dense"]["embedder"].startswith("hashing") and manifest["dense"]["rows"] > 0
    import os

    os.environ["SECFOUNDRY_INTEL_EMBEDDER"] = "hashing"
    try:
        r = CliRunner().invoke(app, ["intel", "map-cwe", "Cross-site scripting (XSS) in the search page of Foo CMS."])
    finally:
        del os.environ["SECFOUNDRY_INTEL_EMBEDDER"]
    assert r.exit_code == 0, r.output
    out = _first_json(r.output)
    assert out["cwe"][0] == "CWE-79" and "dense_lr" in out["candidates"][0]["signals"]
    text = "Path traversal in Atlas HR 3.3 allows remote attackers to read arbitrary files via ../ sequences."
    a = CliRunner().invoke(app, ["intel", "predict-cvss", text, "--convention", "adp"])
    assert a.exit_code == 0, a.output
    assert _first_json(a.output)["vector"].startswith("CVSS:3.1/")
    bad = CliRunner().invoke(app, ["intel", "predict-cvss", text, "--convention", "nvd"])
    assert bad.exit_code != 0 and "convention" in bad.output
