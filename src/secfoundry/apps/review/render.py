"""Review result -> JSON / Markdown / SARIF text, and the CI gate."""

from __future__ import annotations

import json
from collections import Counter

from secfoundry.apps.review.schemas import ReviewResult, Severity

FORMATS = ("sarif", "json", "markdown")


def render(result: ReviewResult, fmt: str) -> str:
    if fmt == "sarif":
        from secfoundry.apps.review.sarif import to_sarif

        return json.dumps(to_sarif(result), indent=2)
    if fmt == "json":
        return result.model_dump_json(indent=2)
    if fmt in ("markdown", "md"):
        return markdown(result)
    raise ValueError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")


def _md(text: str) -> str:
    """Untrusted text (code, config, engine messages) as inert Markdown: no HTML, no links."""
    return (text or "").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|").replace("\n", " ")


def markdown(r: ReviewResult) -> str:
    shown = [f for f in r.findings if f.llm_verdict != "rejected"]
    sev = Counter(f.severity.value for f in shown)
    lines = [f"# secfoundry review {r.kind}: {r.root}", "",
             f"{r.files_reviewed} files reviewed, {len(shown)} findings "
             f"({', '.join(f'{sev[s]} {s}' for s in ('critical', 'high', 'medium', 'low', 'info') if sev[s]) or 'none'}), "
             f"{len(r.skipped)} skipped.", "", "| engine | version | files | findings | status |", "|---|---|---|---|---|"]
    for e in r.engines:
        lines.append(f"| {e.engine} | {_md(e.version)} | {e.files} | {e.findings} | {e.status}{': ' + _md(e.note) if e.note else ''} |")
    lines += ["", "## Findings", ""]
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
    for f in sorted(shown, key=lambda f: (order[f.severity.value], f.location.file, f.location.start_line)):
        loc = f"{f.location.file}:{f.location.start_line}" + (
            f"-{f.location.end_line}" if f.location.end_line and f.location.end_line != f.location.start_line else "")
        lines.append(f"### [{f.severity.value.upper()}] {_md(f.title or f.rule_id)} — `{loc}`")
        lines.append("")
        lines.append(f"- rule: `{f.rule_id}` ({f.engine})" + (f", LLM: {f.llm_verdict}" if f.llm_verdict != "unreviewed" else ""))
        for label, ids in (("CWE", f.cwe), ("NIST SP 800-53", f.controls), ("ComplianceAsCode", f.compliance_rules)):
            if ids:
                lines.append(f"- {label}: {', '.join(ids)}")
        for prefix, text, cap in (("", f.message, None), ("why: ", f.explanation, 600), ("fix: ", f.fix, 600)):
            if text:
                lines.append(f"- {prefix}{_md(text[:cap])}")
        for g in f.guidance[:3]:
            lines.append(f"- see: {_md(g.title)} ({g.source_id})")
        if f.location.snippet:
            lines += ["", "```", f.location.snippet.replace("```", "ʼʼʼ")[:400], "```"]
        lines.append("")
    if r.skipped:
        lines += ["## Skipped", ""] + [f"- `{_md(s.path)}`: {_md(s.reason)}" for s in r.skipped] + [""]
    if r.notes:
        lines += ["## Notes", ""] + [f"- {_md(n)}" for n in r.notes] + [""]
    return "\n".join(lines)


def gate(result: ReviewResult, fail_on: str | None) -> int:
    """Exit status for CI: 1 when a (not LLM-rejected) finding is at or above ``fail_on``."""
    if not fail_on or fail_on.lower() == "never":
        return 0
    return 1 if result.at_or_above(Severity.parse(fail_on)) else 0
