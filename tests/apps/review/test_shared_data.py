"""A few real upstream fixtures from ../shared/data/soc (fail under CI=true when missing)."""

from __future__ import annotations

import json
from pathlib import Path

from secfoundry.apps.review import config_engines
from secfoundry.apps.review.code_engines import run_bandit
from secfoundry.apps.review.files import Target, walk

from .conftest import require_engine, require_shared


def _manifest(soc: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (soc / name / "manifest.jsonl").read_text().splitlines() if x.strip()]


def test_bandit_examples_match_upstream_labels() -> None:
    soc = require_shared()
    require_engine("bandit")
    rows = [m for m in _manifest(soc, "code") if Path(m["path"]).name in ("eval.py", "subprocess_shell.py", "okay.py")]
    assert len(rows) == 3
    w = walk([str(soc / m["path"]) for m in rows], "code")
    found, run, _ = run_bandit(w.targets)
    got = {(Path(f.location.file).name, f.location.start_line, f.cwe[0]) for f in found if f.cwe}
    want = {(Path(m["path"]).name, f["line"], f["cwe"]) for m in rows for f in m.get("findings", [])}
    assert want <= got
    assert not any(Path(f.location.file).name == "okay.py" for f in found)


def test_gixy_fixtures_positive_and_false_positive() -> None:
    soc = require_shared()
    require_engine("gixy")
    rows = [m for m in _manifest(soc, "configs") if m.get("check_id") == "gixy:alias_traversal" and m["path"].endswith(".conf")]
    assert rows
    targets = [Target(path=(soc / m["path"]).resolve(), rel=m["path"], kind="nginx") for m in rows]
    found, run, _ = config_engines.run_gixy(targets)
    hits = {f.location.file for f in found if f.rule_id == "gixy:alias_traversal"}
    for m in rows:
        assert (m["path"] in hits) == bool(m["expected_finding"]), m["path"]
