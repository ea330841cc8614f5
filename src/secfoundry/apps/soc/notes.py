"""Case notes: what happened, entities, ATT&CK techniques in kill-chain order, evidence, next steps.

Template notes are built from grounded facts only (the case, its timeline, the KB); every
sentence carries the event ids it rests on. With a model (``llm``), the model rewrites the
summary from the same facts; :func:`check_notes` then rejects any sentence without citations,
citing an event id that does not exist or is not part of the case, or naming an entity (IP,
host, account, executable, technique, CVE) absent from the case — and the template notes are
used instead, saying why.
"""

from __future__ import annotations

import json
import re
from typing import Any

from secfoundry.apps.soc.enrich import KBFacts, tactic_rank
from secfoundry.apps.soc.guard import quote, token
from secfoundry.apps.soc.normalize import basename
from secfoundry.apps.soc.schemas import Alert, Case, CaseNotes, NoteSentence, Triage
from secfoundry.apps.soc.store import Store

MAX_EVIDENCE = 25
MAX_STEPS_PER_TECHNIQUE = 3
CITE = re.compile(r"\[ev:([0-9a-f]{16}(?:\s*,\s*[0-9a-f]{16})*)\]")
_IP = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_TECH = re.compile(r"\bT\d{4}(?:\.\d{3})?\b")
_CVE = re.compile(r"\bCVE-\d{4}-\d{4,7}\b", re.I)
_EXE = re.compile(r"\b[\w\-.]+\.(?:exe|dll|ps1|bat|vbs|hta|sys)\b", re.I)
_HOSTLIKE = re.compile(r"\b[A-Z][A-Z0-9\-]{2,}\d[A-Z0-9\-]*\b")
_ACCOUNT = re.compile(r"\b[\w\-.]+\\[\w\-.$]+")


def _ts(t: Any) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC") if t else "(no timestamp)"


def _cite(ids: list[str]) -> str:
    return "[ev:" + ",".join(ids[:6]) + "]"


def template_notes(case: Case, alerts: dict[str, Alert], triage: dict[str, Triage], kb: Any = None) -> CaseNotes:
    facts = KBFacts(kb)
    members = [alerts[a] for a in case.alerts if a in alerts]
    hosts = sorted({a.host_name for a in members if a.host_name})
    summary: list[NoteSentence] = []
    all_ids = [e for t in case.timeline for e in t.event_ids]
    first_ids = case.timeline[0].event_ids if case.timeline else []
    last_ids = case.timeline[-1].event_ids if case.timeline else []
    summary.append(NoteSentence(
        text=f"{len(members)} alert(s) from {len({a.rule_id for a in members})} detection rule(s) fired"
             + (f" on {', '.join(hosts[:3])}" if hosts else "")
             + f" between {_ts(case.first_seen)} and {_ts(case.last_seen)}.",
        event_ids=list(dict.fromkeys(first_ids + last_ids))))
    for a in sorted(members, key=lambda a: -(triage[a.alert_id].score if a.alert_id in triage else 0))[:5]:
        t = triage.get(a.alert_id)
        tlist = t.techniques if t else a.techniques  # triage's: ids the KB knows, or inferred from it
        techs = ", ".join(f"{x} {facts.technique(x)['name']}" if facts.technique(x)["known"] else x
                          for x in tlist[:3])
        summary.append(NoteSentence(
            text=f"{a.source.capitalize()} rule \"{a.rule_name}\" ({a.level or 'unrated'}) matched {len(a.event_ids)} "
                 f"event(s)" + (f" mapped to {techs}" if techs else "")
                 + (f"; triage: {t.verdict.replace('_', ' ')} ({t.score:.2f}), {t.severity}" if t else "") + ".",
            event_ids=a.event_ids[:6]))
    techniques = []
    for tid in case.techniques:
        info = facts.technique(tid)
        tac = sorted(info["tactics"], key=tactic_rank)
        techniques.append({"id": tid, "name": info["name"], "tactic": tac[0] if tac else "",
                           "known_to_kb": info["known"]})
    techniques.sort(key=lambda t: (tactic_rank(t["tactic"]) if t["tactic"] else 99, t["id"]))
    evidence = []
    for entry in [t for t in case.timeline if t.alert_ids][:MAX_EVIDENCE]:
        evidence.append(NoteSentence(text=f"{_ts(entry.time)} {entry.host or ''} {entry.summary}".strip(),
                                     event_ids=entry.event_ids[:6]))
    steps: list[dict[str, Any]] = []
    for t in techniques:
        steps += facts.mitigations(t["id"])[:MAX_STEPS_PER_TECHNIQUE]
        steps += facts.d3fend(t["id"])[:MAX_STEPS_PER_TECHNIQUE]
    seen: set[str] = set()
    steps = [s for s in steps if not (s["id"] in seen or seen.add(s["id"]))]  # type: ignore[func-returns-value]
    del all_ids
    notes = CaseNotes(case_id=case.id, method="template", summary=summary, entities=case.entities,
                      techniques=techniques, evidence=evidence, next_steps=steps)
    return notes


def render_markdown(case: Case, notes: CaseNotes) -> str:
    L = [f"# {case.id}: {case.title}", "",
         f"**Severity** {case.severity} · **score** {case.score:.2f} · **alerts** {len(case.alerts)} · "
         f"**window** {_ts(case.first_seen)} → {_ts(case.last_seen)} · notes: {notes.method}", "",
         "## What happened", ""]
    L += [f"- {s.text} {_cite(s.event_ids)}" for s in notes.summary]
    L += ["", "## Entities", ""]
    L += [f"- {e.kind}: {quote(e.value, 80)}" for e in notes.entities[:40]]
    L += ["", "## ATT&CK techniques (kill-chain order)", ""]
    L += [f"- **{t['tactic'] or 'unknown tactic'}** — {t['id']} {t['name']}" for t in notes.techniques] or ["- none mapped"]
    L += ["", "## Evidence", ""]
    L += [f"- {_evidence_md(s.text)} {_cite(s.event_ids)}" for s in notes.evidence]
    L += ["", "## Why these alerts are one case", ""] + [f"- {g}" for g in case.grouping[:20]]
    L += ["", "## Recommended next steps", ""]
    L += [f"- {'ATT&CK mitigation' if s['kind'] == 'mitigation' else 'D3FEND'} {s['id']} {s['name']} (for {s['for']})"
          for s in notes.next_steps] or ["- no KB recommendations for these techniques"]
    if notes.check:
        L += ["", f"_Citation check: {json.dumps(notes.check, default=str)}_"]
    return "\n".join(L) + "\n"


def _evidence_md(text: str) -> str:
    head, sep, tail = text.partition(": ")
    # The part after the first ": " can hold a command line: shown as code, never as prose.
    return f"{head}{sep}{quote(tail)}" if sep else quote(text)


def allowed_terms(case: Case, store: Store, alerts: dict[str, Alert] | None = None, kb: Any = None) -> set[str]:
    """What a note may name: the case's entities, its techniques, and whatever its own grounded
    texts (timeline lines from its events, its rules' names, its techniques' KB names) mention."""
    allowed = {e.value.lower() for e in case.entities}
    grounded = [t.summary for t in case.timeline]
    grounded += [alerts[a].rule_name for a in case.alerts if alerts and a in alerts]
    facts = KBFacts(kb)
    grounded += [facts.technique(t)["name"] for t in case.techniques]
    allowed |= {m.lower() for g in grounded for m in entity_mentions(g)}
    allowed |= {e.value.lower().split("\\")[-1] for e in case.entities}
    allowed |= {e.value.lower().split(".")[0] for e in case.entities if e.kind == "host"}
    allowed |= {t.lower() for t in case.techniques}
    allowed |= {t.split(".")[0].lower() for t in case.techniques}
    ids = [e for t in case.timeline for e in t.event_ids]
    for ev in store.events(ids, 'event_id, "process.executable", "process.parent.executable"'):
        for k in ("process.executable", "process.parent.executable"):
            if ev.get(k):
                allowed.add(basename(ev[k]).lower())
    return allowed


def check_notes(sentences: list[NoteSentence], case: Case, store: Store, allowed: set[str] | None = None,
                alerts: dict[str, Alert] | None = None, kb: Any = None) -> dict[str, Any]:
    """Cited ids must exist and belong to the case; named entities must be the case's."""
    case_ids = {e for t in case.timeline for e in t.event_ids}
    cited = [e for s in sentences for e in s.event_ids]
    existing = store.existing_ids(cited)
    allowed = allowed if allowed is not None else allowed_terms(case, store, alerts, kb)
    problems: list[str] = []
    for s in sentences:
        if not s.event_ids:
            problems.append(f"sentence without citation: {s.text[:60]!r}")
        for e in s.event_ids:
            if e not in existing:
                problems.append(f"cites nonexistent event {e}")
            elif e not in case_ids:
                problems.append(f"cites event {e} outside the case")
        for term in entity_mentions(s.text):
            if term.lower() not in allowed:
                problems.append(f"names {term!r}, not an entity of the case")
    return {"ok": not problems, "sentences": len(sentences), "cited": len(set(cited)),
            "cited_existing": len(existing & set(cited)), "problems": problems[:20]}


def entity_mentions(text: str) -> list[str]:
    out = _IP.findall(text) + _TECH.findall(text) + _CVE.findall(text) + _EXE.findall(text) + _ACCOUNT.findall(text)
    out += [h for h in _HOSTLIKE.findall(text) if not _TECH.fullmatch(h) and not h.startswith("CVE")]
    return list(dict.fromkeys(out))


def llm_notes(case: Case, notes: CaseNotes, store: Store, model: Any, alerts: dict[str, Alert] | None = None,
              kb: Any = None) -> CaseNotes:
    """Ask the model for a short summary from the grounded facts; keep it only if it checks out."""
    from secfoundry.models import GenerationConfig

    facts = [{"ids": s.event_ids[:3], "fact": s.text} for s in notes.summary + notes.evidence[:8]]
    for f in facts:  # untrusted values never reach the model: evidence summaries reduced to tokens
        f["fact"] = " ".join(token(w, 60) for w in f["fact"].split()[:40])
    prompt = [
        {"role": "system", "content": "You write SOC case notes. Use only the facts given. End every sentence with "
                                      "its evidence as [ev:ID] using the ids of the facts it rests on. Do not name "
                                      "hosts, users, IPs, files or techniques that are not in the facts."},
        {"role": "user", "content": "Facts (JSON):\n" + json.dumps(facts, ensure_ascii=True)
                                    + "\n\nWrite 2 to 4 sentences summarizing what happened."},
    ]
    try:
        text = model.generate([prompt], GenerationConfig(max_new_tokens=220, temperature=0.0))[0]
    except Exception as e:  # noqa: BLE001 - a broken backend falls back to the template
        return _fallback(notes, f"model error: {type(e).__name__}")
    sentences = []
    for raw in re.split(r"(?<=[.\]])\s+(?=[A-Z])", text.strip()):
        ids = [i.strip() for m in CITE.findall(raw) for i in m.split(",")]
        body = CITE.sub("", raw).strip()
        if body:
            sentences.append(NoteSentence(text=body, event_ids=ids))
    if not sentences:
        return _fallback(notes, "empty model output")
    check = check_notes(sentences, case, store, alerts=alerts, kb=kb)
    if not check["ok"]:
        return _fallback(notes, "; ".join(check["problems"][:3]))
    out = notes.model_copy(deep=True)
    out.summary = sentences
    out.method = f"llm:{getattr(model, 'spec', '?')}"
    return out


def _fallback(notes: CaseNotes, why: str) -> CaseNotes:
    out = notes.model_copy(deep=True)
    out.method = f"template (llm notes rejected: {why[:200]})"
    return out


def make_notes(store: Store, case: Case, alerts: dict[str, Alert], triage: dict[str, Triage], *, kb: Any = None,
               model: Any = None) -> CaseNotes:
    notes = template_notes(case, alerts, triage, kb)
    if model is not None:
        notes = llm_notes(case, notes, store, model, alerts, kb)
    notes.check = check_notes(notes.summary + notes.evidence, case, store, alerts=alerts, kb=kb)
    notes.markdown = render_markdown(case, notes)
    return notes
