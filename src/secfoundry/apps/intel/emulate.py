"""emulate: a report, an ATT&CK group/software id or a technique list -> an adversary emulation plan.

    from secfoundry.apps.intel.emulate import plan_for
    plan = plan_for(entity="G0016", platform="windows")      # APT29's recorded techniques
    plan = plan_for(techniques=["T1059.001", "T1003.001"])
    plan = plan_for(report="report.md")                       # via extract-ttps

Each step is a current technique (revoked ids mapped), ordered by tactic along the ATT&CK kill
chain; with the Atomic Red Team tests that exercise it (platform-filtered, commands and cleanup)
and the Sigma rules that detect it, both from the KB. A sub-technique without its own tests or
rules falls back to none — the parent's are listed separately (``via_parent``) only for Sigma,
where parent-tagged rules do fire on sub-technique behaviour. Coverage: covered (test + rule),
test-only, detection-only, gap.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from secfoundry.apps.intel.schemas_emulate import AtomicTestRef, EmulationPlan, PlanStep, SigmaRuleRef
from secfoundry.apps.intel.ttps_catalog import TACTIC_ORDER, TECH_RE, AttackCatalog, catalog_for
from secfoundry.core.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from secfoundry.kb.knowledge import KnowledgeBase

_LEVEL = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}
_STATUS = {"stable": 0, "test": 1, "experimental": 2}


def _atomic_tests(kb: "KnowledgeBase", tid: str, platform: str | None) -> list[AtomicTestRef]:
    conn = kb.store.conn
    rows = conn.execute("SELECT r.id, r.name, r.attributes FROM relations l JOIN records r ON r.id = l.src "
                        "WHERE l.type='tests' AND l.dst=? AND r.type='atomic-test' ORDER BY r.id", (tid,)).fetchall()
    out = []
    for r in rows:
        a = json.loads(r["attributes"] or "{}")
        plats = [p.lower() for p in a.get("platforms") or []]
        if platform and platform.lower() not in plats:
            continue
        args = {k: str((v or {}).get("default", "")) for k, v in (a.get("input_arguments") or {}).items()
                if isinstance(v, dict)}
        out.append(AtomicTestRef(id=r["id"], name=r["name"] or "", technique=a.get("technique") or tid,
                                 platforms=plats, executor=a.get("executor") or "",
                                 elevation_required=bool(a.get("elevation_required")),
                                 command=a.get("command") or "", cleanup_command=a.get("cleanup_command") or "",
                                 input_arguments=args, path=a.get("path") or ""))
    out.sort(key=lambda t: (t.executor == "manual" or not t.command, t.elevation_required, t.technique != tid, a_num(t)))
    return out


def a_num(t: AtomicTestRef) -> int:
    m = re.search(r"(\d+)$", t.id)
    return int(m.group(1)) if m else 0


def _sigma_rules(kb: "KnowledgeBase", tid: str, platform: str | None) -> list[SigmaRuleRef]:
    conn = kb.store.conn
    targets = [tid] + ([tid.split(".")[0]] if "." in tid else [])
    out = []
    for target in targets:
        rows = conn.execute("SELECT r.id, r.name, r.attributes FROM relations l JOIN records r ON r.id = l.src "
                            "WHERE l.type='detects' AND l.dst=? AND r.type='sigma-rule' ORDER BY r.id",
                            (target,)).fetchall()
        for r in rows:
            a = json.loads(r["attributes"] or "{}")
            ls = {k: str(v) for k, v in (a.get("logsource") or {}).items()}
            prod = ls.get("product", "").lower()
            if platform and prod and prod not in (platform.lower(), "windows" if platform.lower() == "windows" else ""):
                if not (platform.lower() in ("linux", "macos") and prod in ("linux", "macos", "unix")):
                    continue
            out.append(SigmaRuleRef(id=r["id"], title=r["name"] or "", technique=target, level=a.get("level") or "",
                                    status=a.get("status") or "", logsource=ls, path=a.get("path") or "",
                                    via_parent=target != tid))
    out.sort(key=lambda s: (s.via_parent, _STATUS.get(s.status, 3), _LEVEL.get(s.level, 5), s.title))
    return out


def _coverage(tests: int, rules: int) -> str:
    return "covered" if tests and rules else "test-only" if tests else "detection-only" if rules else "gap"


def _primary_tactic(cat: AttackCatalog, tid: str) -> str:
    t = cat.techniques[tid]
    ranked = sorted(t.tactics, key=lambda x: TACTIC_ORDER.index(x) if x in TACTIC_ORDER else 99)
    return ranked[0] if ranked else ""


def parse_technique_list(value: str | Iterable[str]) -> list[str]:
    """'T1059.001, T1003' / a file of ids / an iterable -> raw ids in order (duplicates dropped)."""
    if isinstance(value, str):
        p = Path(value)
        text = p.read_text(encoding="utf-8", errors="replace") if len(value) < 1024 and p.is_file() else value
        items = re.split(r"[\s,;]+", text)
    else:
        items = list(value)
    return list(dict.fromkeys(i.strip().upper() for i in items if i and i.strip()))


def plan_for(*, techniques: str | Iterable[str] | None = None, entity: str | None = None,
             report: str | Path | None = None, report_text: str | None = None, platform: str | None = None,
             kb: "KnowledgeBase | None" = None, max_tests: int = 3, max_rules: int = 5,
             title: str | None = None) -> EmulationPlan:
    from secfoundry.kb.knowledge import KnowledgeBase

    kb = kb or KnowledgeBase.open()
    cat = catalog_for(kb)
    plan = EmulationPlan(title=title or "", attack_version=cat.version, platform=platform)
    chosen: dict[str, str] = {}  # technique -> source
    if entity:
        eid = entity.strip().upper()
        if eid not in cat.entities:
            ids = kb.store.ids_for_alias(entity.strip())
            eid = next((i for i in ids if i in cat.entities), eid)
        if eid not in cat.entities:
            raise InputError(f"{entity!r} is not an ATT&CK group, software or campaign in the KB", field="entity")
        e = cat.entities[eid]
        plan.title = plan.title or f"Emulation plan: {e.name} ({eid})"
        for t in cat.uses(eid):
            chosen.setdefault(t, f"{e.name} ({eid}) uses it")
    if techniques is not None:
        for raw in parse_technique_list(techniques):
            if not TECH_RE.fullmatch(raw):
                plan.unknown.append(f"{raw[:40]}: not a technique id")
                continue
            cur = cat.current(raw)
            if cur is None:
                plan.unknown.append(f"{raw}: not a current ATT&CK technique (unknown, or revoked without successor)")
                continue
            chosen.setdefault(cur, "input" + (f" ({raw} revoked -> {cur})" if cur != raw else ""))
        plan.title = plan.title or "Emulation plan: technique list"
    if report is not None or report_text is not None:
        from secfoundry.apps.intel.reports import load_report
        from secfoundry.apps.intel.ttps import get_extractor

        rep = load_report(report) if report is not None else load_report(text=report_text or "")
        res = get_extractor(kb).extract(rep)
        for h in res.techniques:
            chosen.setdefault(h.id, f"report: \"{h.spans[0].text[:160]}\"" if h.spans else "report")
        plan.warnings.extend(res.warnings)
        if res.ignored:
            plan.warnings.append(f"{len(res.ignored)} report sentence(s) ignored as instructions to a model")
        plan.title = plan.title or f"Emulation plan: {rep.source}"
    if not chosen and not plan.unknown:
        raise InputError("nothing to plan: give techniques, an ATT&CK group/software id or a report")
    if platform:
        keep = {}
        for t, src in chosen.items():
            plats = [p.lower() for p in cat.techniques[t].platforms]
            if not plats or platform.lower() in plats:
                keep[t] = src
            else:
                plan.warnings.append(f"{t} skipped: not on platform {platform} ({', '.join(plats)})")
        chosen = keep
    order = sorted(chosen, key=lambda t: (cat.tactic_rank(t), t))
    for i, tid in enumerate(order, start=1):
        tests = _atomic_tests(kb, tid, platform)
        rules = _sigma_rules(kb, tid, platform)
        own_rules = [r for r in rules if not r.via_parent]
        step = PlanStep(order=i, technique=tid, name=cat.name(tid), tactic=_primary_tactic(cat, tid),
                        tactics=cat.techniques[tid].tactics, source=chosen[tid], atomic_tests=tests[:max_tests],
                        atomic_total=len(tests), sigma_rules=rules[:max_rules], sigma_total=len(rules),
                        coverage=_coverage(len(tests), len(own_rules) or len(rules)))
        plan.steps.append(step)
        if not tests:
            plan.gaps_no_test.append(tid)
        if not rules:
            plan.gaps_no_detection.append(tid)
    return plan
