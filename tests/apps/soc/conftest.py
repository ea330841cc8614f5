"""Fixtures for the SOC tests: a private SECFOUNDRY_HOME, a tiny KB, tiny rules and inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from . import fixtures as fx


@pytest.fixture(autouse=True)
def soc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SECFOUNDRY_HOME", str(home))
    monkeypatch.delenv("SECFOUNDRY_SOC_DB", raising=False)
    monkeypatch.delenv("SECFOUNDRY_KB", raising=False)
    monkeypatch.delenv("SECFOUNDRY_MIRROR", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_kb(tmp_path_factory: pytest.TempPathFactory):
    from secfoundry.kb import KnowledgeBase
    from tests.kb._kbsynth import make_source, write_source

    root = tmp_path_factory.mktemp("soc_kb")
    mirror = root / "mirror"
    recs = fx.kb_records()
    for name, rows in recs.items():
        write_source(mirror, name, rows, "1")
    kb = KnowledgeBase.open(root / "kb", embedder="hashing")
    kb.sync(mirror, sources=list(recs), connectors={n: make_source(n) for n in recs}, dense=False)
    return kb


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    return fx.write_rules(tmp_path / "rules")


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "in"
    d.mkdir()
    out = {"windows": fx.write_windows_zip(d / "win.zip")}
    (d / "eve.json").write_text("\n".join(json.dumps(r) for r in fx.SURICATA) + "\n")
    out["suricata"] = d / "eve.json"
    (d / "notice.log").write_text(fx.ZEEK_NOTICE_TSV)
    out["zeek_tsv"] = d / "notice.log"
    (d / "dns.json").write_text("\n".join(json.dumps(r) for r in fx.ZEEK_DNS_JSON) + "\n")
    out["zeek_json"] = d / "dns.json"
    (d / "alerts.json").write_text("\n".join(json.dumps(r) for r in fx.WAZUH) + "\n")
    out["wazuh"] = d / "alerts.json"
    (d / "ecs.ndjson").write_text("\n".join(json.dumps(r) for r in fx.ECS) + "\n")
    out["ecs"] = d / "ecs.ndjson"
    return out


def shared_soc() -> Path | None:
    p = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "soc"
    if p.is_dir():
        return p
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"shared SOC data missing at {p} (CI=true: tests that need it must not skip)")
    pytest.skip("shared SOC data not available")
    return None
