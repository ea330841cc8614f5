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
        assert len({r.id for r in rs.rules}) == 6 and not rs.errors
        # process_creation/registry rules also run on Security 4688/4657 (pySigma's audit pipeline)
        assert {r.path for r in rs.rules if r.variant == 'security-audit'} == {'mshta.yml', 'runkey.yml', 'cmdchild.yml', 'never.yml'}
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


KEYWORD_RULE = """title: Firewall Service Stopped (keywords)
id: 11111111-1111-4111-8111-000000000007
status: test
logsource: {product: windows, service: system}
detection:
  keywords:
    - 'Windows Firewall service terminated'
    - 'C:\\Temp\\evil*.exe'
  condition: keywords
level: medium
tags: [attack.t1562.004]
"""


def _sec_and_system_events(path: Path) -> Path:
    import json

    base = {"Hostname": "WKS-9", "@timestamp": "2024-05-01T10:00:00.000Z"}
    recs = [
        dict(base, EventID=4688, Channel="Security", NewProcessName="C:\\Windows\\System32\\MSHTA.exe",
             CommandLine='mshta VBScript:Execute("x")', ParentProcessName="C:\\Windows\\explorer.exe",
             SubjectUserName="bob", SubjectDomainName="CORP"),
        dict(base, EventID=4688, Channel="Security", NewProcessName="C:\\Windows\\System32\\notepad.exe",
             CommandLine="notepad vbscript.txt", ParentProcessName="C:\\Windows\\explorer.exe"),
        dict(base, EventID=7034, Channel="System", Message="The WINDOWS FIREWALL service terminated unexpectedly."),
        dict(base, EventID=7045, Channel="System", Message="A service was installed: C:\\Temp\\evil42.exe"),
        dict(base, EventID=7036, Channel="System", Message="The Print Spooler service entered the running state."),
    ]
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return path


def test_security_4688_and_keyword_rules(tmp_path: Path, rules_dir: Path) -> None:
    (rules_dir / "kw.yml").write_text(KEYWORD_RULE)
    with Store(tmp_path / "s.duckdb") as st:
        ingest([str(_sec_and_system_events(tmp_path / "sec.json"))], st)
        rs = load_rules(rules_dir, None, cache=False)
        assert not any("keyword" in k or "FeatureNotSupported" in k for k in rs.skipped)
        alerts, rep = detect(st, rs)
        assert rep.rules_failed == 0
        by = {a.rule_name: a for a in alerts if a.source == "sigma"}
        assert set(by) == {"Mshta VBScript Execution", "Firewall Service Stopped (keywords)"}
        mshta = st.events(by["Mshta VBScript Execution"].event_ids)
        assert [e["event.code"] for e in mshta] == ["4688"]
        kw = st.events(by["Firewall Service Stopped (keywords)"].event_ids)
        assert sorted(e["event.code"] for e in kw) == ["7034", "7045"]  # case-insensitive; backslashes unescaped


def test_case_folding_rewrite_keeps_sigma_semantics(tmp_path: Path) -> None:
    """The rewritten conditions (lowercased columns, substring functions) match what ILIKE + NOCASE did."""
    import duckdb

    from secfoundry.apps.soc.sigma_backend import event_codes, fold_case

    cond = (r"""("EventID"='1' OR "EventID"='2') AND ("Image" ILIKE '%\\MSHTA.exe' ESCAPE '\' """
            r"""OR "CommandLine" ILIKE '%It''s 50\%%' ESCAPE '\' OR "CommandLine" ILIKE 'A_c%' ESCAPE '\' """
            r"""OR regexp_matches("Image", '^C:.*X$'))""")
    c = fold_case(cond)
    assert r"""suffix("Image", '\mshta.exe')""" in c and """contains("CommandLine", 'it''s 50%')""" in c
    assert r""""CommandLine" LIKE 'a_c%'""" in c and """regexp_matches("cs:Image", '^C:.*X$')""" in c
    assert event_codes(c) == ["1", "2"] and event_codes(""""EventID"='1' OR "X"='y'""") is None
    rows = [("1", r"C:\Windows\mshta.EXE", "x"), ("2", r"C:\bin\X", "IT'S 50% DONE"), ("2", r"c:\x", "abcd"),
            ("1", r"C:\y", "it's 50 done"), ("3", r"C:\Windows\mshta.exe", ""), ("1", r"C:\bin\x", "")]
    con = duckdb.connect()
    con.execute('CREATE TABLE t("EventID" VARCHAR, "Image" VARCHAR, "CommandLine" VARCHAR)')
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    con.execute('CREATE TABLE sg AS SELECT "EventID", lower("Image") AS "Image", "Image" AS "cs:Image", '
                'lower("CommandLine") AS "CommandLine" FROM t')
    new = sorted(r[0] for r in con.execute(f'SELECT "cs:Image" FROM sg WHERE {c}').fetchall())
    con.execute("SET default_collation='nocase'")
    old = sorted(r[0] for r in con.execute(f"SELECT \"Image\" FROM t WHERE {cond}").fetchall())
    assert new == old == sorted([r"C:\Windows\mshta.EXE", r"C:\bin\X", r"c:\x"])
