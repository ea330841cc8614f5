"""Sigma detection (pySigma -> DuckDB) and native alerts."""

from __future__ import annotations

from pathlib import Path

from secfoundry.apps.soc.detect import detect
from secfoundry.apps.soc.ingest import ingest
from secfoundry.apps.soc.rules import load_rules
from secfoundry.apps.soc.sigma_backend import make_backend, referenced_fields, where_clause
from secfoundry.apps.soc.store import Store


def test_backend_dialect() -> None:
    from sigma.collection import SigmaCollection

    from .fixtures import RULES

    q = make_backend().convert(SigmaCollection.from_yaml(RULES["cmdchild.yml"]))[0]
    cond = where_clause(q)
    assert "ILIKE" in cond and "COALESCE" in cond and '"EventID"=\'1\'' in cond
    assert referenced_fields(cond) == ["Channel", "EventID", "ParentImage", "IntegrityLevel"]


def test_sigma_and_native_alerts(tmp_path: Path, inputs: dict[str, Path], rules_dir: Path) -> None:
    with Store(tmp_path / "s.duckdb") as st:
        ingest([str(p) for p in inputs.values()], st)
        rs = load_rules(rules_dir, None, cache=False)
        assert len(rs.rules) == 6 and not rs.errors
        alerts, rep = detect(st, rs)
        names = {a.rule_name for a in alerts if a.source == "sigma"}
        # MSHTA.EXE upper case still matches (Sigma is case-insensitive); absent IntegrityLevel does not
        # drop the cmd child; the zeek rule matches c2.EVIL.example; the Security 1102 rule matches.
        assert names == {"Mshta VBScript Execution", "PowerShell In Run Key", "Child Of Cmd Without System Integrity",
                         "Evil Example DNS", "Security Log Cleared"}
        assert rep.rules_failed == 0 and rep.rules_run == 6
        mshta = next(a for a in alerts if a.rule_name == "Mshta VBScript Execution")
        assert mshta.techniques == ["T1218.005"] and len(mshta.event_ids) == 1 and mshta.host_name == "WKS-7"
        native = {a.rule_id: a for a in alerts if a.source != "sigma"}
        assert set(native) == {"suricata:2034647", "zeek:SSH::Password_Guessing", "wazuh:5712"}
        assert native["wazuh:5712"].techniques == ["T1110"]
        assert native["zeek:SSH::Password_Guessing"].techniques == ["T1110.001"]
        # stored for the next stages
        assert len(st.docs("alerts")) == len(alerts)


def test_rules_without_events_are_skipped_not_run(tmp_path: Path, inputs: dict[str, Path], rules_dir: Path) -> None:
    with Store(tmp_path / "s.duckdb") as st:
        ingest([str(inputs["suricata"])], st)
        _, rep = detect(st, load_rules(rules_dir, None, cache=False))
        assert rep.rules_run == 0 and rep.rules_without_events == 6
