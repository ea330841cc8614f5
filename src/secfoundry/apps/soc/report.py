"""HTML report per case (timeline chart as inline SVG, technique chips, alerts, notes) and an
index page, rendered with the shared report shell (:mod:`secfoundry.core.report`). All log text
is autoescaped by jinja2."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from secfoundry.apps.soc.enrich import TACTIC_ORDER, tactic_rank
from secfoundry.apps.soc.schemas import Alert, Case, CaseNotes, Triage

PALETTE = ["#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#d9d9d9",
           "#bc80bd", "#ccebc5", "#ffed6f", "#a6cee3", "#1f78b4", "#b2df8a", "#33a02c"]
CSS = (".chip{display:inline-block;border-radius:10px;padding:2px 8px;margin:2px;font-size:12px;border:1px solid #aaa}"
       ".sev{padding:2px 6px;border-radius:4px;color:#fff;background:#777}.sev-high{background:#d9534f}"
       ".sev-critical{background:#8b0000}.sev-medium{background:#f0ad4e}.sev-low{background:#5bc0de}"
       "tr.hit td{background:#fff7e6}")


def tactic_color(tactic: str) -> str:
    r = tactic_rank(tactic)
    return PALETTE[r % len(PALETTE)] if r < len(TACTIC_ORDER) else "#eeeeee"


def chart(case: Case, alerts: dict[str, Alert], width: int = 1100) -> dict[str, Any] | None:
    pts = [t for t in case.timeline if t.time is not None]
    if not pts:
        return None
    hosts = sorted({t.host or "?" for t in pts})[:12]
    left, lane_h = 170, 26
    height = 40 + lane_h * len(hosts)
    t0, t1 = min(t.time for t in pts), max(t.time for t in pts)  # type: ignore[type-var]
    span = max((t1 - t0).total_seconds(), 1.0)
    tech_tactic: dict[str, str] = {}

    def x(t: datetime) -> float:
        return round(left + (width - left - 20) * (t - t0).total_seconds() / span, 1)

    points = []
    for t in pts:
        if (t.host or "?") not in hosts:
            continue
        tac = ""
        for aid in t.alert_ids:
            a = alerts.get(aid)
            if a and a.tactics:
                tac = a.tactics[0]
        points.append({"x": x(t.time), "y": 20 + lane_h * hosts.index(t.host or "?"), "r": 6 if t.alert_ids else 3,
                       "color": tactic_color(tac) if t.alert_ids else "#999", "title": f"{t.time} {t.summary[:200]}"})
    ticks = [{"x": x(t0), "label": t0.strftime("%m-%d %H:%M:%S")}, {"x": x(t1), "label": t1.strftime("%m-%d %H:%M:%S")}]
    del tech_tactic
    return {"width": width, "height": height, "left": left, "points": points, "ticks": ticks,
            "lanes": [{"name": h[:24], "y": 20 + lane_h * i} for i, h in enumerate(hosts)]}


def render_case(case: Case, notes: CaseNotes, alerts: dict[str, Alert], triage: dict[str, Triage]) -> str:
    from secfoundry.core.report import Page, render_html

    rows = []
    for aid in case.alerts:
        a, t = alerts.get(aid), triage.get(aid)
        if a is None:
            continue
        rows.append({"alert_id": aid, "rule_name": a.rule_name, "rule_id": a.rule_id, "level": a.level,
                     "verdict": t.verdict if t else "", "score": f"{t.score:.2f}" if t else "",
                     "techniques": a.techniques, "reason": t.reason if t else "", "events": len(a.event_ids)})
    techniques = [{**t, "color": tactic_color(t.get("tactic", ""))} for t in notes.techniques]
    fmt = lambda d: d.strftime("%Y-%m-%d %H:%M:%S UTC") if d else "–"  # noqa: E731
    return render_html("soc_case.html.j2", package="secfoundry.apps.soc",
                       page=Page(title=f"{case.id} {case.title}", heading=f"{case.id}: {case.title}", css=CSS),
                       case=case, notes=notes, techniques=techniques, chart=chart(case, alerts),
                       timeline=case.timeline, alerts=rows, first=fmt(case.first_seen), last=fmt(case.last_seen))


def render_index(cases: list[Case], summary: dict[str, Any]) -> str:
    from secfoundry.core.report import Page, Table, render_html

    t = Table("Cases", ["case", "severity", "score", "alerts", "techniques", "first seen", "title"],
              [[c.id, c.severity, f"{c.score:.2f}", str(len(c.alerts)), ", ".join(c.techniques[:8]),
                str(c.first_seen or "–"), c.title] for c in cases])
    facts = [(k, str(v)) for k, v in summary.items()]
    return render_html("soc_index.html.j2", package="secfoundry.apps.soc",
                       page=Page(title="SOC cases", heading="SOC cases", css=CSS), table=t, facts=facts,
                       links=[(c.id, f"{c.id}.html") for c in cases])
