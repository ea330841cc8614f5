"""Triage: per alert, KB enrichment, a severity, a true-positive likelihood and a one-line reason.

The score works without a model and only reads structured facts — never the free text of the
logs, so instructions injected into command lines or user agents cannot move it:

- prior from the rule's level (Sigma level / Suricata severity / Wazuh level) and status;
- corroboration: other distinct rules on the same host (or IP pair) within ``window``, more so
  when they map to other ATT&CK tactics (an attack chain, not a single noisy rule);
- volume: a rule firing very often on one host is more likely background noise;
- known-benign hints: a rule's ``falsepositives`` naming the software that produced the event
  (matched against the executable's file name only, not the attacker-controllable command line);
- KEV: a signature naming a CVE in CISA's Known Exploited Vulnerabilities catalog.

With ``--llm SPEC`` the model rates ambiguous alerts from the same facts (see :mod:`.llm_triage`);
its vote moves the score by at most ``LLM_WEIGHT``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import timedelta
from typing import Any

from secfoundry.apps.soc.enrich import (KBFacts, TACTIC_IDS, cves_in, related_rule_techniques,
                                        technique_for_title)
from secfoundry.apps.soc.normalize import basename
from secfoundry.apps.soc.rules import RuleSet
from secfoundry.apps.soc.schemas import Alert, Triage
from secfoundry.apps.soc.store import Store

LEVEL_PRIOR = {"critical": 0.85, "high": 0.7, "medium": 0.5, "low": 0.3, "informational": 0.15, "": 0.4}
TP, FP = 0.6, 0.35
NOISY_EVENTS = 50
_FP_STOP = {"legitimate", "administrator", "admin", "usage", "other", "unknown", "unlikely", "software", "script",
            "scripts", "users", "user", "activity", "tools", "windows", "microsoft", "process", "processes",
            "application", "applications", "installation", "installer", "rare", "some", "certain", "false",
            "positives", "system", "service", "services", "files", "usage.", "cases", "normal", "might", "could"}


def _fp_terms(fps: list[str]) -> set[str]:
    out = set()
    for fp in fps:
        for w in re.findall(r"[A-Za-z][A-Za-z0-9_\-]{4,}", fp):
            if w.lower() not in _FP_STOP:
                out.add(w.lower())
    return out


def severity_of(level: str, score: float, kev: bool) -> str:
    order = ["informational", "low", "medium", "high", "critical"]
    i = order.index(level) if level in order else 2
    if score >= 0.75 and i < 4:
        i += 1
    if score < FP and i > 0:
        i -= 1
    if kev:
        i = min(4, i + 1)
    return order[i]


def verdict_of(score: float) -> str:
    return "true_positive" if score >= TP else "false_positive" if score <= FP else "undetermined"


def triage(store: Store, alerts: list[Alert], *, kb: Any = None, ruleset: RuleSet | None = None,
           window: timedelta = timedelta(minutes=30), llm: Any = None) -> list[Triage]:
    facts = KBFacts(kb)
    rules = {r.id: r for r in (ruleset.rules if ruleset else [])}
    by_host: dict[str, list[Alert]] = defaultdict(list)
    for a in alerts:
        by_host[a.host_name or f"{a.source_ip}>{a.destination_ip}"].append(a)
    exe_of = _executables(store, alerts)
    out: list[Triage] = []
    for a in alerts:
        out.append(_one(a, by_host[a.host_name or f"{a.source_ip}>{a.destination_ip}"], facts, rules.get(a.rule_id),
                        exe_of.get(a.alert_id, set()), window))
    if llm is not None:
        from secfoundry.apps.soc.llm_triage import refine

        out = refine(store, alerts, out, llm)
    store.clear("triage")
    store.put_docs("triage", "alert_id", [(t.alert_id, t.model_dump_json()) for t in out])
    return out


def _executables(store: Store, alerts: list[Alert]) -> dict[str, set[str]]:
    ids = {e: a.alert_id for a in alerts if a.source == "sigma" for e in a.event_ids[:50]}
    out: dict[str, set[str]] = defaultdict(set)
    for ev in store.events(ids, 'event_id, "process.executable", "process.parent.executable"'):
        for k in ("process.executable", "process.parent.executable"):
            if ev.get(k):
                out[ids[ev["event_id"]]].add(basename(ev[k]).lower().removesuffix(".exe"))
    return out


def _one(a: Alert, neighbours: list[Alert], facts: KBFacts, rule: Any, exes: set[str], window: timedelta) -> Triage:
    reasons: list[str] = []
    meta = facts.sigma_rule(a.rule_id) if a.source == "sigma" else None
    level = a.level or (meta or {}).get("level", "")
    score = LEVEL_PRIOR.get(level, 0.4)
    reasons.append(f"{level or 'unrated'} {a.source} rule")
    status = (rule.status if rule else (meta or {}).get("status", ""))
    if status == "stable":
        score += 0.05
    elif status == "experimental":
        score -= 0.03
    # corroboration
    others = [o for o in neighbours if o.alert_id != a.alert_id and o.rule_id != a.rule_id and _near(a, o, window)]
    other_rules = {o.rule_id for o in others}
    own_tactics = set(_tactics(a, facts))
    other_tactics = {t for o in others for t in _tactics(o, facts)} - own_tactics
    if other_rules:
        bonus = min(0.2, 0.05 * len(other_rules)) + min(0.1, 0.05 * len(other_tactics))
        score += bonus
        reasons.append(f"{len(other_rules)} other rule(s) on the same host within {int(window.total_seconds() // 60)} min"
                       + (f" ({', '.join(sorted(other_tactics)[:3])})" if other_tactics else ""))
    else:
        score -= 0.05
        reasons.append("no corroborating alert nearby")
    n = len(a.event_ids)
    if n >= NOISY_EVENTS:
        score -= 0.1
        reasons.append(f"fires often ({n} events): likely background")
    fps = list((rule.falsepositives if rule else []) or (meta or {}).get("falsepositives", []))
    hints = [fp for fp in fps if any(t in exes for t in _fp_terms([fp]))]
    if hints:
        score -= 0.15
        reasons.append(f"known-benign hint matches the executable ({hints[0][:60]})")
    cves = list(dict.fromkeys((rule.cves if rule else []) + (meta or {}).get("cves", []) + cves_in(a.rule_name)))
    kev = [c for c in cves if facts.kev(c)]
    if kev:
        score += 0.15
        reasons.append(f"names {', '.join(kev)} (CISA KEV)")
    score = max(0.01, min(0.99, score))
    techniques = list(a.techniques)
    inferred: list[str] = []
    if not techniques and a.source == "sigma":
        inferred = related_rule_techniques(facts, a.rule_id)
    elif not techniques and a.source == "suricata" and " EXPLOIT " in f" {a.rule_name} " and cves:
        inferred = ["T1190"] if facts.technique("T1190")["known"] else []
    unknown = [t for t in techniques if facts.conn is not None and not facts.technique(t)["known"]]
    if a.source == "sigma" and facts.conn is not None and (unknown or not (techniques or inferred)):
        # Sigma follows ATT&CK's main branch (ids newer than the KB's release) and some rules carry
        # no tags: map the rule's title to the KB's closest technique, and say so.
        hit = technique_for_title(facts, a.rule_name)
        if hit and hit["id"] not in techniques:
            inferred.append(hit["id"])
    if unknown:
        reasons.append(f"{', '.join(unknown)} not in the KB's ATT&CK (newer release)")
    if inferred:
        techniques = list(dict.fromkeys([t for t in techniques if t not in unknown] + inferred))
        reasons.append(f"techniques inferred from the KB: {', '.join(inferred)}")
    tactics = _tactics(a.model_copy(update={"techniques": techniques}), facts)
    desc = (meta or {}).get("description") or (rule.description if rule else "")
    return Triage(alert_id=a.alert_id, severity=severity_of(level, score, bool(kev)), score=round(score, 3),
                  verdict=verdict_of(score), reason="; ".join(reasons), techniques=techniques, tactics=tactics,
                  cves=cves, kev=kev, description=desc[:400], benign_hints=fps[:5])


def _near(a: Alert, b: Alert, window: timedelta) -> bool:
    if a.first_seen is None or b.first_seen is None:
        return a.first_seen is None and b.first_seen is None
    a0, a1 = a.first_seen, a.last_seen or a.first_seen
    b0, b1 = b.first_seen, b.last_seen or b.first_seen
    return a0 - window <= b1 and b0 - window <= a1


def _tactics(a: Alert, facts: KBFacts) -> list[str]:
    tac = [TACTIC_IDS.get(t, t) for t in a.tactics]
    for t in a.techniques:
        tac += facts.technique(t)["tactics"]
    return list(dict.fromkeys(x.lower() for x in tac if x))
