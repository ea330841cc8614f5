"""Compliance mapping: findings (review output or any scanner's SARIF) and/or ATT&CK techniques
-> NIST SP 800-53 rev5 controls -> a control coverage report.

- A finding implicates the controls it carries (ComplianceAsCode NIST references, or its CWE's
  controls from ``KBMap.cwe_controls``); the control is *failing* with the finding as evidence.
- A technique implicates the controls that mitigate it in the CTID ATT&CK -> 800-53 mappings
  (KB relations ``<control> mitigates <technique>``); the control is *relevant*.
- With a baseline (the controls an organisation implements), relevant controls in it are
  *covered*, implicated controls outside it are *gaps*.
Every technique and control id is validated against the KB; unknown ones are listed as unmapped.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path

from secfoundry.apps.review.kbmap import KBMap
from secfoundry.apps.review.layer import enrich
from secfoundry.apps.review.schemas import (ComplianceReport, ComplianceRequest, ControlStatus, Evidence, Finding,
                                            ReviewResult, Severity)

_TECH = re.compile(r"\bT\d{4}(?:\.\d{3})?\b")
_CTRL = re.compile(r"\b[A-Z]{2}-\d{1,2}(?:\(\d{1,2}\))?(?![\d(])")


def load_findings(path: str | Path) -> list[Finding]:
    """Review JSON (ReviewResult), a JSON list of findings, or SARIF from any scanner."""
    p = Path(path)
    data = json.loads(p.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "runs" in data:
        from secfoundry.apps.review.sarif import read_sarif

        return read_sarif(p)
    if isinstance(data, dict) and "findings" in data:
        return ReviewResult.model_validate(data).findings
    if isinstance(data, list):
        return [Finding.model_validate(x) for x in data]
    raise ValueError(f"{p}: neither SARIF, a review result nor a list of findings")


def parse_ids(text: str, pattern: re.Pattern[str] = _TECH) -> list[str]:
    """Technique (or control) ids from any text: a list, intel extract-ttps JSON, a report."""
    return list(dict.fromkeys(m.group(0) for m in pattern.finditer(text)))


def parse_controls(text: str) -> list[str]:
    return parse_ids(text.upper(), _CTRL)


def assess(req: ComplianceRequest, kb: KBMap) -> ComplianceReport:
    rep = ComplianceReport(inputs={"findings": len(req.findings), "techniques": len(req.techniques)})
    by: dict[str, ControlStatus] = {}

    def add(ctl: str, ev: Evidence, failing: bool) -> None:
        cs = by.get(ctl)
        if cs is None:
            cs = by[ctl] = ControlStatus(control=ctl, title=kb.control_title(ctl), family=ctl.split("-")[0])
        if failing:
            cs.status = "failing"
            if ev.severity and (cs.max_severity is None or ev.severity.rank > cs.max_severity.rank):
                cs.max_severity = ev.severity
        if len(cs.evidence) < 200:
            cs.evidence.append(ev)

    for f in req.findings:
        if f.llm_verdict == "rejected":
            continue
        if not f.controls:
            f = enrich(f.model_copy(deep=True), kb, guidance=False)
        ref = f"{f.rule_id} @ {f.location.file}:{f.location.start_line}"
        if not f.controls:
            rep.unmapped.append(ref + (f" ({', '.join(f.cwe)})" if f.cwe else " (no CWE)"))
            continue
        via = " + ".join(f.mapping_source) or ", ".join(f.cwe) or f.engine
        for c in f.controls:
            add(c, Evidence(kind="finding", ref=ref, via=f"{', '.join(f.cwe) or f.rule_id} > {via}",
                            severity=f.severity), True)
    for t in req.techniques:
        t = t.strip().upper()
        if kb.available and not kb.known(t):
            rep.unmapped.append(f"{t} (unknown to the KB)")
            continue
        ctls = kb._rel_in(t, "mitigates", "ctid")
        if not ctls and "." in t:
            ctls = kb._rel_in(t.split(".")[0], "mitigates", "ctid")
        valid = kb.valid_controls(list(ctls))
        if not valid:
            rep.unmapped.append(f"{t} (no CTID 800-53 mapping)")
        for c in valid:
            add(c, Evidence(kind="technique", ref=t, via="CTID ATT&CK->800-53 (mitigates)"), False)
    if req.baseline is not None:
        base = set(kb.valid_controls([c.upper() for c in req.baseline]))
        for cs in by.values():
            cs.in_baseline = cs.control in base or cs.control.split("(")[0] in base
            if not cs.in_baseline:
                cs.status = "gap"
            elif cs.status == "relevant":
                cs.status = "covered"
        rep.notes.append(f"baseline: {len(base)} controls")
    order = {"failing": 0, "gap": 1, "relevant": 2, "covered": 3}
    rep.controls = sorted(by.values(), key=lambda c: (order[c.status], -(c.max_severity.rank if c.max_severity else -1),
                                                      -len(c.evidence), _ctl_key(c.control)))
    if kb.rejected:
        rep.notes.append("ids dropped (unknown to the KB): " + ", ".join(sorted(kb.rejected)))
    return rep


def _ctl_key(c: str) -> tuple[str, int, int]:
    m = re.match(r"([A-Z]+)-(\d+)(?:\((\d+)\))?", c)
    return (m.group(1), int(m.group(2)), int(m.group(3) or 0)) if m else (c, 0, 0)


# -- rendering -------------------------------------------------------------------------------------------

def render(rep: ComplianceReport, fmt: str) -> str:
    if fmt == "json":
        return rep.model_dump_json(indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["control", "title", "family", "status", "in_baseline", "max_severity", "evidence_count",
                    "findings", "techniques"])
        for c in rep.controls:
            w.writerow([c.control, c.title, c.family, c.status, "" if c.in_baseline is None else c.in_baseline,
                        c.max_severity.value if c.max_severity else "", len(c.evidence),
                        "; ".join(e.ref for e in c.evidence if e.kind == "finding")[:2000],
                        "; ".join(e.ref for e in c.evidence if e.kind == "technique")[:2000]])
        return buf.getvalue()
    if fmt in ("markdown", "md"):
        return _markdown(rep)
    if fmt == "html":
        return _html(rep)
    raise ValueError(f"unknown format {fmt!r}: markdown, html, json or csv")


def _summary(rep: ComplianceReport) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in rep.controls:
        out[c.status] = out.get(c.status, 0) + 1
    return out


def _esc(s: str) -> str:
    return (s or "").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _markdown(rep: ComplianceReport) -> str:
    s = _summary(rep)
    lines = ["# Control coverage (NIST SP 800-53 rev5)", "",
             f"Inputs: {rep.inputs.get('findings', 0)} findings, {rep.inputs.get('techniques', 0)} techniques. "
             f"Controls: {len(rep.controls)} ({', '.join(f'{v} {k}' for k, v in s.items()) or 'none'}).", "",
             "| control | title | status | max severity | evidence |", "|---|---|---|---|---|"]
    for c in rep.controls:
        ev = "; ".join(_esc(e.ref) for e in c.evidence[:5]) + (f" (+{len(c.evidence) - 5})" if len(c.evidence) > 5 else "")
        lines.append(f"| {c.control} | {_esc(c.title)} | {c.status} | {c.max_severity.value if c.max_severity else ''} | {ev} |")
    if rep.unmapped:
        lines += ["", "## Unmapped inputs", ""] + [f"- {_esc(u)}" for u in rep.unmapped[:200]]
    if rep.notes:
        lines += ["", "## Notes", ""] + [f"- {_esc(n)}" for n in rep.notes]
    return "\n".join(lines) + "\n"


def _html(rep: ComplianceReport) -> str:
    s = _summary(rep)
    rows = []
    colour = {"failing": "#fdd", "gap": "#fec", "relevant": "#eef", "covered": "#dfd"}
    for c in rep.controls:
        ev = "<br>".join(html.escape(f"{e.ref} ({e.via})") for e in c.evidence[:10])
        rows.append(f"<tr style='background:{colour[c.status]}'><td>{html.escape(c.control)}</td>"
                    f"<td>{html.escape(c.title)}</td><td>{c.status}</td>"
                    f"<td>{c.max_severity.value if c.max_severity else ''}</td><td>{len(c.evidence)}</td><td>{ev}</td></tr>")
    unm = "".join(f"<li>{html.escape(u)}</li>" for u in rep.unmapped[:200])
    return ("<!doctype html><meta charset='utf-8'><title>Control coverage</title>"
            "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
            "table{border-collapse:collapse}</style><h1>Control coverage (NIST SP 800-53 rev5)</h1>"
            f"<p>{rep.inputs.get('findings', 0)} findings, {rep.inputs.get('techniques', 0)} techniques; "
            f"{len(rep.controls)} controls: {html.escape(', '.join(f'{v} {k}' for k, v in s.items()))}</p>"
            "<table><tr><th>control</th><th>title</th><th>status</th><th>max severity</th><th>#</th><th>evidence</th></tr>"
            + "".join(rows) + "</table>" + (f"<h2>Unmapped</h2><ul>{unm}</ul>" if unm else "")
            + "".join(f"<p>{html.escape(n)}</p>" for n in rep.notes))
