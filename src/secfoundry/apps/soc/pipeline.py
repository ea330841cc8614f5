"""The SOC stages end to end, used by every ``secfoundry soc`` command and by the HTTP service.

    from secfoundry.apps.soc.pipeline import run
    summary = run(["capture.zip", "eve.json"], out="out/", kb=KnowledgeBase.open())

``run`` = ingest -> detect (Sigma + native alerts) -> triage -> cases -> timeline + notes per
case, then ``out/cases.json``, ``out/<case>.html``, ``out/<case>.md`` and ``out/index.html``.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from secfoundry.apps.soc.schemas import Alert, Case, CaseNotes, IngestReport, Triage
from secfoundry.apps.soc.store import Store


def open_kb(path: str | os.PathLike[str] | None = None) -> Any:
    """The KB, or None when there is none (detection then runs every rule; enrichment is minimal)."""
    from secfoundry.kb import KnowledgeBase, default_path

    p = Path(path) if path else default_path()
    if not (p / "kb.sqlite").is_file():
        return None
    from secfoundry.kb.store import Store as KBStore

    kb = KnowledgeBase.open(p)
    kb._store = KBStore(kb.paths.db, readonly=True)  # the SOC app only reads the KB
    return kb


def load_model(spec: str | None) -> Any:
    if not spec:
        return None
    from secfoundry.models import load_model as _load

    return _load(spec)


def detect_stage(store: Store, kb: Any, *, rules: str | None = None, hunting: bool = False,
                 sigma: bool = True) -> tuple[list[Alert], Any, Any]:
    from secfoundry.apps.soc.detect import detect
    from secfoundry.apps.soc.rules import load_rules

    ruleset = load_rules(rules, kb, hunting=hunting) if sigma else None
    alerts, rep = detect(store, ruleset)
    return alerts, rep, ruleset


def stored_alerts(store: Store) -> list[Alert]:
    return [Alert.model_validate(d) for d in store.docs("alerts")]


def stored_triage(store: Store) -> list[Triage]:
    return [Triage.model_validate(d) for d in store.docs("triage")]


def stored_cases(store: Store) -> list[Case]:
    return [Case.model_validate(d) for d in store.docs("cases")]


def case_stage(store: Store, alerts: list[Alert], triage: list[Triage], kb: Any, *, window_min: int = 120,
               min_score: float = 0.35, model: Any = None) -> list[Case]:
    from secfoundry.apps.soc.cases import build_cases
    from secfoundry.apps.soc.notes import make_notes
    from secfoundry.apps.soc.timeline import build_timeline

    cases = build_cases(store, alerts, triage, kb=kb, window=timedelta(minutes=window_min), min_score=min_score)
    by_id = {a.alert_id: a for a in alerts}
    tri = {t.alert_id: t for t in triage}
    for c in cases:
        c.timeline = build_timeline(store, c, by_id)
        c.notes = make_notes(store, c, by_id, tri, kb=kb, model=model)
    store.clear("cases")
    store.put_docs("cases", "id", [(c.id, c.model_dump_json()) for c in cases])
    return cases


def find_case(store: Store, case_id: str) -> Case:
    cases = stored_cases(store)
    for c in cases:
        if c.id == case_id or c.id.startswith(case_id) or c.id.endswith(case_id):
            return c
    raise KeyError(f"no case {case_id!r} (have: {', '.join(c.id for c in cases[:10]) or 'none; run soc cases'})")


def case_json(c: Case, alerts: dict[str, Alert], triage: dict[str, Triage]) -> dict[str, Any]:
    notes: CaseNotes | None = c.notes
    return {
        "id": c.id, "title": c.title, "severity": c.severity, "score": c.score,
        "techniques": c.techniques, "tactics": c.tactics,
        "alerts": [{**alerts[a].model_dump(mode="json"),
                    "triage": triage[a].model_dump(mode="json") if a in triage else None}
                   for a in c.alerts if a in alerts],
        "entities": [e.model_dump() for e in c.entities], "grouping": c.grouping,
        "first_seen": c.first_seen.isoformat() if c.first_seen else None,
        "last_seen": c.last_seen.isoformat() if c.last_seen else None,
        "timeline": [t.model_dump(mode="json") for t in c.timeline],
        "notes": notes.markdown if notes else "",
        "notes_structured": notes.model_dump(mode="json", exclude={"markdown"}) if notes else None,
    }


def write_outputs(out: Path, cases: list[Case], alerts: list[Alert], triage: list[Triage],
                  summary: dict[str, Any]) -> None:
    from secfoundry.apps.soc.report import render_case, render_index

    out.mkdir(parents=True, exist_ok=True)
    by_id = {a.alert_id: a for a in alerts}
    tri = {t.alert_id: t for t in triage}
    docs = [case_json(c, by_id, tri) for c in cases]
    (out / "cases.json").write_text(json.dumps(docs, indent=1, default=str))
    for c in cases:
        if c.notes is not None:
            (out / f"{c.id}.md").write_text(c.notes.markdown)
            (out / f"{c.id}.html").write_text(render_case(c, c.notes, by_id, tri))
    (out / "index.html").write_text(render_index(cases, summary))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))


def run(files: list[str], out: str | os.PathLike[str], *, kb: Any = None, db: str | None = None,
        rules: str | None = None, hunting: bool = False, llm: str | None = None, window_min: int = 120,
        min_score: float = 0.35, fresh: bool = False) -> dict[str, Any]:
    from secfoundry.apps.soc.ingest import ingest
    from secfoundry.apps.soc.triage import triage as run_triage

    out_p = Path(out)
    dbp = Path(db) if db else out_p / "soc.duckdb"
    if fresh and dbp.exists():
        dbp.unlink()
    out_p.mkdir(parents=True, exist_ok=True)
    with Store(dbp) as store:
        rep: IngestReport = ingest(files, store)
        alerts, drep, ruleset = detect_stage(store, kb, rules=rules, hunting=hunting)
        model = load_model(llm)
        tri = run_triage(store, alerts, kb=kb, ruleset=ruleset, llm=model)
        cases = case_stage(store, alerts, tri, kb, window_min=window_min, min_score=min_score, model=model)
        summary = {
            "events_read": rep.read, "events_new": rep.inserted, "duplicates": rep.duplicates,
            "ingest_errors": rep.error_count, "events_in_store": store.count(),
            "sigma_rules_run": drep.rules_run, "sigma_rules_without_events": drep.rules_without_events,
            "sigma_rules_failed": drep.rules_failed, "sigma_rules_skipped": drep.skipped,
            "alerts": len(alerts), "sigma_alerts": drep.sigma_alerts, "native_alerts": drep.native_alerts,
            "cases": len(cases), "llm": llm or "none", "store": str(dbp),
            "clock_notes": [n for f in rep.files for n in f.skew_notes],
        }
        write_outputs(out_p, cases, alerts, tri, summary)
    return summary
