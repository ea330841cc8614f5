"""The CLI end to end on fixtures, and the real shared samples (fail loudly under CI=true if missing)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from secfoundry.cli import app

from .conftest import shared_soc


def test_cli_stages(tmp_path: Path, inputs: dict[str, Path], rules_dir: Path) -> None:
    r = CliRunner()
    db = str(tmp_path / "c.duckdb")
    res = r.invoke(app, ["soc", "ingest", *map(str, inputs.values()), "--db", db])
    assert res.exit_code == 0, res.output
    assert "12 events read, 12 new" in res.output
    res = r.invoke(app, ["soc", "detect", "--db", db, "--rules", str(rules_dir), "--kb", str(tmp_path / "nokb")])
    assert res.exit_code == 0 and "5 Sigma" in res.output, res.output
    res = r.invoke(app, ["soc", "triage", "--db", db, "--kb", str(tmp_path / "nokb")])
    assert res.exit_code == 0 and "true_positive" in res.output, res.output
    res = r.invoke(app, ["soc", "cases", "--db", db, "--kb", str(tmp_path / "nokb"), "--json"])
    assert res.exit_code == 0, res.output
    cases = json.loads(res.output[res.output.index("["):])
    cid = cases[0]["id"]
    res = r.invoke(app, ["soc", "timeline", cid[:9], "--db", db])
    assert res.exit_code == 0 and "UTC" not in res.output and "[" in res.output, res.output
    res = r.invoke(app, ["soc", "notes", cid, "--db", db, "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.output)["case_id"] == cid
    res = r.invoke(app, ["soc", "notes", cid, "--db", db])
    assert res.exit_code == 0 and res.output.startswith(f"# {cid}")
    out = tmp_path / "run"
    res = r.invoke(app, ["soc", "run", str(inputs["windows"]), "--out", str(out), "--rules", str(rules_dir),
                         "--kb", str(tmp_path / "nokb")])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "cases.json").read_text()) and (out / "index.html").is_file()


def test_cli_stdin(tmp_path: Path) -> None:
    from . import fixtures as fx

    data = "\n".join(json.dumps(x) for x in fx.SURICATA) + "\n"
    res = CliRunner().invoke(app, ["soc", "ingest", "-", "--db", str(tmp_path / "s.duckdb")], input=data)
    assert res.exit_code == 0 and "2 events read, 2 new" in res.output, res.output


def test_shared_samples_ingest_and_detect(tmp_path: Path) -> None:
    soc = shared_soc()
    assert soc is not None
    from secfoundry.apps.soc.detect import detect
    from secfoundry.apps.soc.ingest import ingest
    from secfoundry.apps.soc.rules import load_rules
    from secfoundry.apps.soc.store import Store

    mirror = soc.parent / "mirror" / "sigma"
    otrf = soc / "alerts" / "windows" / "otrf-security-datasets"
    with Store(tmp_path / "s.duckdb") as st:
        rep = ingest([str(otrf / "cmd_mshta_vbscript_execute_psh.zip"), str(soc / "alerts" / "suricata"),
                      str(soc / "alerts" / "zeek")], st)
        assert rep.error_count == 0 and rep.read > 5000
        assert any("+4h00m" in n for f in rep.files for n in f.skew_notes)
        rs = load_rules(mirror, None, only="mshta")
        alerts, drep = detect(st, rs)
        assert drep.rules_failed == 0
        techs = {t for a in alerts for t in a.techniques}
        assert "T1218.005" in techs  # the recording's labelled technique (SDWIN-201022025808)
        assert {a.source for a in alerts} >= {"sigma", "suricata", "zeek"}
