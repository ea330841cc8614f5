"""Model-assisted triage: the model rates alerts the heuristic left undetermined (or near a
threshold) as true or false positive, from structured facts only.

The prompt holds the rule's name, level and description from the KB, the ATT&CK techniques, the
heuristic's own reason and executable names reduced by :func:`guard.token` — never command lines,
user agents or messages, so text an attacker planted in a log cannot address the model. The vote
moves the heuristic score by at most ``LLM_WEIGHT``; the final verdict uses the same thresholds.
"""

from __future__ import annotations

import math
from typing import Any

from secfoundry.apps.soc.guard import token
from secfoundry.apps.soc.normalize import basename
from secfoundry.apps.soc.schemas import Alert, Triage
from secfoundry.apps.soc.store import Store
from secfoundry.apps.soc.triage import FP, TP, verdict_of

LLM_WEIGHT = 0.15
MAX_ALERTS = 40
MARGIN = 0.12


def _facts(a: Alert, t: Triage, exes: list[str]) -> str:
    return "\n".join([
        f"Rule: {a.rule_name} (source {a.source}, level {a.level or 'unrated'})",
        f"Rule description: {t.description[:300]}",
        f"ATT&CK: {', '.join(t.techniques) or 'none'}; tactics: {', '.join(t.tactics) or 'none'}",
        f"Events matched: {len(a.event_ids)}",
        f"Executables: {', '.join(exes) or 'n/a'}",
        f"Known false positives of the rule: {'; '.join(t.benign_hints)[:200] or 'none listed'}",
        f"Context: {t.reason}",
    ])


def refine(store: Store, alerts: list[Alert], triage: list[Triage], model: Any) -> list[Triage]:
    by_id = {a.alert_id: a for a in alerts}
    todo = [t for t in triage if FP - MARGIN < t.score < TP + MARGIN][:MAX_ALERTS]
    if not todo:
        return triage
    prompts = []
    for t in todo:
        a = by_id[t.alert_id]
        evs = store.events(a.event_ids[:10], 'event_id, "process.executable"')
        exes = sorted({token(basename(e["process.executable"] or "")) for e in evs if e.get("process.executable")})[:5]
        prompts.append("You are a SOC analyst. Decide whether this alert is a true positive (real malicious "
                       "activity) or a false positive.\n" + _facts(a, t, exes) +
                       "\nAnswer with one letter. A = true positive, B = false positive.\nAnswer:")
    spec = getattr(model, "spec", "?")
    try:
        if model.capabilities.choice_logprobs:
            lps = model.choice_logprobs(prompts, [" A", " B"])
        else:
            from secfoundry.models import GenerationConfig

            outs = model.generate(prompts, GenerationConfig(max_new_tokens=2, temperature=0.0))
            lps = [[0.0, -9.0] if o.strip().upper().startswith("A") else [-9.0, 0.0] if o.strip().upper().startswith("B")
                   else [0.0, 0.0] for o in outs]
    except Exception:  # noqa: BLE001 - a failing model leaves the heuristic triage as it is
        return triage
    updated = {}
    for t, (la, lb) in zip(todo, lps):
        m = max(la, lb)
        p = math.exp(la - m) / (math.exp(la - m) + math.exp(lb - m))
        score = max(0.01, min(0.99, t.score + LLM_WEIGHT * (2 * p - 1)))
        updated[t.alert_id] = t.model_copy(update={
            "score": round(score, 3), "verdict": verdict_of(score), "method": f"heuristic+llm:{spec}",
            "reason": f"{t.reason}; model: {'true' if p >= 0.5 else 'false'} positive (p={p:.2f})"})
    return [updated.get(t.alert_id, t) for t in triage]
