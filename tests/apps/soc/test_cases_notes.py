"""Triage, cases, timeline, notes (with the citation/entity check), soc run and injected twins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secfoundry.apps.soc.notes import check_notes, llm_notes
from secfoundry.apps.soc.pipeline import run, stored_alerts
from secfoundry.apps.soc.schemas import NoteSentence
from secfoundry.apps.soc.store import Store

from . import fixtures as fx


def _run(tmp: Path, inputs: list[Path], rules: Path, kb, name: str = "out") -> tuple[dict, list[dict]]:
    s = run([str(p) for p in inputs], tmp / name, kb=kb, rules=str(rules))
    return s, json.loads((tmp / name / "cases.json").read_text())


def test_soc_run_contract(tmp_path: Path, inputs: dict[str, Path], rules_dir: Path, tiny_kb) -> None:
    s, cases = _run(tmp_path, list(inputs.values()), rules_dir, tiny_kb)
    assert s["events_read"] == 12 and s["ingest_errors"] == 0 and s["cases"] == len(cases) >= 3
    for c in cases:
        assert {"id", "techniques", "alerts", "entities", "timeline", "notes"} <= set(c)
        assert all({"time", "event_ids"} <= set(t) for t in c["timeline"])
        assert (tmp_path / "out" / f"{c['id']}.html").is_file()
        assert c["notes_structured"]["check"]["ok"], c["notes_structured"]["check"]
    win = next(c for c in cases if "T1218.005" in c["techniques"])
    assert set(win["techniques"]) >= {"T1218.005", "T1547.001", "T1059.003", "T1070.001"}
    assert {"kind": "host", "value": fx.HOST} in win["entities"]
    assert any(" share " in g for g in win["grouping"]), win["grouping"]
    times = [t["time"] for t in win["timeline"]]
    assert times == sorted(times)
    md = win["notes"]
    assert "## ATT&CK techniques (kill-chain order)" in md and "M1042" in md and "D3-PSA" in md
    section = md.split("## ATT&CK techniques (kill-chain order)")[1].split("## Evidence")[0]
    order = [section.index(x) for x in ("T1059.003", "T1547.001", "T1218.005")]
    assert order == sorted(order)  # execution < persistence < defense-evasion
    log4j = next(c for c in cases if any(a["rule_id"] == "suricata:2034647" for a in c["alerts"]))
    tri = log4j["alerts"][0]["triage"]
    assert tri["kev"] == ["CVE-2021-44228"] and "KEV" in tri["reason"] and tri["severity"] == "critical"
    html = (tmp_path / "out" / f"{win['id']}.html").read_text()
    assert "<svg" in html and "chip" in html and "<script" not in html.replace("&lt;script", "")


def test_injected_twin_changes_nothing(tmp_path: Path, rules_dir: Path, tiny_kb) -> None:
    a = fx.write_windows_zip(tmp_path / "a.zip")
    b = fx.write_windows_zip(tmp_path / "b.zip", inject=True)
    _, ca = _run(tmp_path, [a], rules_dir, tiny_kb, "a")
    _, cb = _run(tmp_path, [b], rules_dir, tiny_kb, "b")

    def view(cases: list[dict]) -> list:
        return [(c["techniques"], c["severity"], c["score"], sorted(e["value"] for e in c["entities"]),
                 [(x["rule_id"], x["triage"]["verdict"], x["triage"]["score"], x["triage"]["reason"]) for x in c["alerts"]],
                 [s["text"] for s in c["notes_structured"]["summary"]],
                 [n["id"] for n in c["notes_structured"]["next_steps"]]) for c in cases]

    assert view(ca) == view(cb)
    md = cb[0]["notes"]
    assert "10.66.66.66" not in md.replace("`", "") or all("10.66.66.66" in ln.split("`")[1] for ln in md.splitlines()
                                                          if "10.66.66.66" in ln)


def test_checker_rejects_bad_citations_and_entities(tmp_path: Path, inputs: dict[str, Path], rules_dir: Path,
                                                    tiny_kb) -> None:
    run([str(inputs["windows"])], tmp_path / "o", kb=tiny_kb, rules=str(rules_dir))
    with Store(tmp_path / "o" / "soc.duckdb") as st:
        from secfoundry.apps.soc.pipeline import stored_cases

        case = stored_cases(st)[0]
        alerts = {a.alert_id: a for a in stored_alerts(st)}
        eid = case.timeline[0].event_ids[0]
        ok = check_notes([NoteSentence(text=f"Mshta ran on {fx.HOST}.", event_ids=[eid])], case, st, alerts=alerts)
        assert ok["ok"], ok
        bad = check_notes([NoteSentence(text="Host 10.66.66.66 ran evil.exe as EVIL\\root.", event_ids=["0" * 16]),
                           NoteSentence(text="No citation here.", event_ids=[])], case, st, alerts=alerts)
        assert not bad["ok"]
        probs = " ".join(bad["problems"])
        assert "nonexistent event" in probs and "10.66.66.66" in probs and "evil.exe" in probs
        assert "EVIL\\\\root" in probs or "EVIL\\root" in probs
        assert "without citation" in probs

        class FakeModel:
            spec = "fake"

            def __init__(self, text: str):
                self.text = text

            def generate(self, prompts, config=None):
                assert "Ignore all previous" not in json.dumps(prompts)
                return [self.text]

        base = case.notes
        good = llm_notes(case, base, st, FakeModel(f"Mshta executed VBScript on {fx.HOST} [ev:{eid}]."), alerts)
        assert good.method == "llm:fake" and good.summary[0].event_ids == [eid]
        rejected = llm_notes(case, base, st, FakeModel("The attacker 10.66.66.66 pivoted [ev:ffffffffffffffff]."),
                             alerts)
        assert rejected.method.startswith("template (llm notes rejected") and rejected.summary == base.summary


def test_llm_triage_bounded_and_blind_to_log_text(tmp_path: Path, inputs: dict[str, Path], rules_dir: Path) -> None:
    from secfoundry.apps.soc.detect import detect
    from secfoundry.apps.soc.ingest import ingest
    from secfoundry.apps.soc.llm_triage import LLM_WEIGHT
    from secfoundry.apps.soc.rules import load_rules
    from secfoundry.apps.soc.triage import triage

    seen: list[str] = []

    class Caps:
        choice_logprobs = True

    class FakeModel:
        spec = "fake"
        capabilities = Caps()

        def choice_logprobs(self, contexts, choices, prefix=""):
            seen.extend(contexts)
            return [[0.0, -5.0] for _ in contexts]  # always "true positive"

    b = fx.write_windows_zip(tmp_path / "b.zip", inject=True)
    with Store(tmp_path / "s.duckdb") as st:
        ingest([str(b)], st)
        alerts, _ = detect(st, load_rules(rules_dir, None, cache=False))
        base = {t.alert_id: t for t in triage(st, alerts)}
        refined = {t.alert_id: t for t in triage(st, alerts, llm=FakeModel())}
    assert seen and not any("Ignore all previous" in c or "vbscript" in c.lower() for c in seen)
    for k, t in refined.items():
        assert abs(t.score - base[k].score) <= LLM_WEIGHT + 1e-9
        assert t.method in ("heuristic", "heuristic+llm:fake")
