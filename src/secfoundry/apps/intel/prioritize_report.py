"""The ranked table out: CSV, JSON or Markdown (chosen by the output file's suffix or ``fmt``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from secfoundry.apps.intel.schemas_prioritize import COLUMNS, PrioritizeResult


def to_csv(res: PrioritizeResult) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in res.rows:
        d = r.model_dump()
        d["aliases"] = " ".join(r.aliases)
        w.writerow({k: ("" if d.get(k) is None else d.get(k)) for k in COLUMNS})
    return buf.getvalue()


def _md_cell(v: object) -> str:
    return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")


def to_markdown(res: PrioritizeResult) -> str:
    lines = [f"# Vulnerability priorities ({len(res.rows)} rows, input {res.format})", ""]
    if res.counts:
        lines.append("Decisions: " + ", ".join(f"{k} {v}" for k, v in res.counts.items()) +
                     (f"; EPSS scores of {res.epss_date}" if res.epss_date else "; no EPSS"))
        lines.append("")
    cols = ["rank", "id", "decision", "kev", "epss", "cvss_score", "package", "asset", "reason"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for r in res.rows:
        d = r.model_dump()
        lines.append("| " + " | ".join(_md_cell(d[c]) for c in cols) + " |")
    if res.errors:
        lines += ["", "## Skipped input rows", ""] + [f"- {_md_cell(e)}" for e in res.errors]
    if res.warnings:
        lines += ["", "## Warnings", ""] + [f"- {_md_cell(w)}" for w in res.warnings]
    return "\n".join(lines) + "\n"


def render(res: PrioritizeResult, fmt: str) -> str:
    if fmt == "csv":
        return to_csv(res)
    if fmt in ("md", "markdown"):
        return to_markdown(res)
    if fmt == "json":
        return json.dumps(res.model_dump(), indent=1) + "\n"
    raise ValueError(f"unknown output format {fmt!r} (csv, json, markdown)")


def write(res: PrioritizeResult, out: str | Path, fmt: str | None = None) -> str:
    p = Path(out)
    fmt = fmt or {".json": "json", ".md": "markdown", ".markdown": "markdown"}.get(p.suffix.lower(), "csv")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render(res, fmt), encoding="utf-8")
    return fmt
