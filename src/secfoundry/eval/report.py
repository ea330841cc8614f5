"""Compare evaluation runs side by side: an HTML page (figure beside a score table) and a Markdown twin.

Every score is shown with its 95% CI (or ± std across trials), n, n_valid and parse failures.
The figure (``eval/report_chart.py``) has one panel per metric family (accuracy-type and F1:
higher is better; deviations such as CVSS MAD: lower is better), models side by side in one
colour each, and the legend inside the figure. The HTML is rendered from the jinja2 template
``eval/templates/report.html.j2`` on the shared report shell (``core/report.py``; autoescaped:
model names and paths are text, never markup).
Scores graded by an LLM judge name the judge; a run judged by the embedded default model is
marked low-trust in the figure and in both tables.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secfoundry.core.errors import InputError
from secfoundry.eval.report_chart import (FALLBACK_MARK, FAMILIES, LOW_TRUST_MARK, TITLES, Series, chart_png,
                                          family_of, panels, spread)

# Metrics shown in the details table (besides the headline) when a run has them.
_SKIP_DETAIL = {"score", "n", "n_valid", "parse_failures", "stderr", "ci95", "ci_method", "n_boot", "elapsed_s",
                "answered_now", "requests_per_s", "trials", "shots", "score_std", "stderr_trial0", "ci95_trial0"}
TEMPLATE = "report.html.j2"  # eval/templates/, on the shared shell core/templates/base.html.j2
# The page is wider than the shell's default so the figure and the score table sit side by side.
_CSS = """body{max-width:none;margin:1.5em 2em}
h1{margin:0 0 .2em}.sub{color:#555;margin:0 0 1.2em;font-size:13px}
table{border-collapse:collapse;margin:.6em 0 1.2em}
td,th{border:1px solid #d4d4d4;padding:4px 8px;vertical-align:top;font-size:13px;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;white-space:nowrap}
.side{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.side figure{margin:0;flex:1 1 640px;max-width:820px}.side figure img{width:100%;height:auto;border:1px solid #eee}
.side .tablebox{flex:1 1 760px;max-width:100%;overflow-x:auto}
figcaption{font-size:12px;color:#555}
.s{font-weight:600;font-size:14px}.best .s{color:#0b6b0b}.best .s::after{content:" ★";font-size:11px}
.c{color:#555;font-size:11px;display:block}.fam td{background:#fafafa;font-weight:600;font-size:12px;color:#333}
.lt{display:inline-block;background:#fde2b5;color:#7a4600;border-radius:3px;padding:0 4px;font-size:11px;margin-top:2px}
.sw{display:inline-block;width:.9em;height:.9em;border-radius:2px;vertical-align:-2px;margin-right:4px}
.b{white-space:nowrap}.notes{font-size:12px;color:#444}code{font-size:12px}details{margin:.3em 0}summary{cursor:pointer;font-weight:600}"""


@dataclass
class Run:
    path: Path
    label: str
    config: dict[str, Any]
    results: dict[str, Any]


def fmt_score(v: Any) -> str:
    """Four significant digits: 61.32, 1.908, 0.4123 (tasks pick their own scale)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, bool) or isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


def load_run(path: Path) -> Run:
    path = Path(path)
    res_path = path / "results.json"
    if not res_path.is_file():
        raise InputError("no results.json (is this a run directory?)", file=str(res_path))
    try:
        results = json.loads(res_path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise InputError(f"invalid JSON: {e}", file=str(res_path)) from e
    if not isinstance(results, dict):
        raise InputError("expected an object keyed by benchmark", file=str(res_path))
    results = {k: v for k, v in results.items() if isinstance(v, dict)}
    cfg_path = path / "config.json"
    config: dict[str, Any] = {}
    if cfg_path.is_file():
        try:
            config = json.loads(cfg_path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise InputError(f"invalid JSON: {e}", file=str(cfg_path)) from e
    return Run(path=path, label=_label(path, config, results), config=config, results=results)


def shots_text(config: dict[str, Any], results: dict[str, Any]) -> str:
    """"5-shot", or e.g. "0/5-shot" when benchmarks used different task defaults."""
    explicit = (config.get("protocol") or {}).get("shots")
    if explicit is not None:
        return f"{explicit}-shot"
    seen = sorted({r.get("shots") for r in results.values() if isinstance(r, dict) and r.get("shots") is not None})
    return ("/".join(str(x) for x in seen) + "-shot") if seen else "default-shot"


def _label(path: Path, config: dict[str, Any], results: dict[str, Any]) -> str:
    run = config.get("run", {})
    proto = config.get("protocol", {})
    model = (config.get("model") or {}).get("spec") or run.get("model") or path.name
    bits = [str(model)]
    if proto:
        bits.append(f"{proto.get('name')}/{proto.get('mode')}/{shots_text(config, results)}")
        if (proto.get("trials") or 1) > 1:
            bits.append(f"{proto['trials']}×T={proto.get('temperature')}")
    return " ".join(bits)


def _unique_labels(runs: list[Run]) -> None:
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.label] = seen.get(r.label, 0) + 1
    for r in runs:
        if seen[r.label] > 1:
            r.label = f"{r.label} ({r.path.name})"


def _benchmarks(runs: list[Run]) -> list[str]:
    out: list[str] = []
    for r in runs:
        out.extend(b for b in r.results if b not in out)
    return out


def _spread_text(res: dict[str, Any]) -> str:
    if res.get("score") is None:
        return ""
    if res.get("score_std") is not None:
        return f"± {fmt_score(float(res['score_std']))} (std, {res.get('trials')} trials)"
    ci = res.get("ci95")
    if ci and len(ci) == 2:
        return f"[{fmt_score(ci[0])}, {fmt_score(ci[1])}]"
    return ""


def _counts(res: dict[str, Any]) -> str:
    return f"n={res.get('n', '–')}, valid={res.get('n_valid', '–')}, parse fail={res.get('parse_failures', '–')}"


def _judge_text(res: dict[str, Any]) -> str:
    if not res.get("judge"):
        return ""
    return f"judge: {res['judge']}" + (" (embedded default: low trust)" if res.get("judge_low_trust") else "")


def score_rows(runs: list[Run], benchmarks: list[str]) -> list[dict[str, Any]]:
    """One row per (metric family, benchmark): a cell per run (None when that run has no score
    of that family), the best score of the row flagged when two or more runs have one."""
    rows = []
    for fam, bs in panels([Series(r.label, r.results) for r in runs], benchmarks):
        for b in bs:
            cells: list[dict[str, Any] | None] = []
            for r in runs:
                res = r.results.get(b)
                if not res or res.get("score") is None or family_of(res) != fam:
                    cells.append(None)
                    continue
                cells.append({"score": float(res["score"]), "text": fmt_score(res["score"]),
                              "spread": _spread_text(res), "counts": _counts(res),
                              "counts_short": f"n {res.get('n', '–')} · valid {res.get('n_valid', '–')} · "
                                              f"fail {res.get('parse_failures', '–')}", "judge": _judge_text(res),
                              "low_trust": bool(res.get("judge_low_trust")), "fallback": bool(res.get("mode_fallback")),
                              "best": False})
            scored = [c for c in cells if c]
            if len(scored) > 1:
                best = (max if fam != "deviation" else min)(c["score"] for c in scored)
                for c in scored:
                    c["best"] = c["score"] == best
            heads = sorted({str(r.results[b].get("headline", "score")) for r in runs
                            if isinstance(r.results.get(b), dict) and r.results[b].get("score") is not None
                            and family_of(r.results[b]) == fam})
            marks = (" " + FALLBACK_MARK if any(c and c["fallback"] for c in cells) else "") + (
                " " + LOW_TRUST_MARK if any(c and c["low_trust"] for c in cells) else "")
            rows.append({"family": fam, "family_title": TITLES[fam], "benchmark": b, "marks": marks,
                         "metric": ", ".join(heads), "arrow": "↓" if fam == "deviation" else "↑", "cells": cells})
    # benchmarks without any score (every run failed) still get a row
    listed = {row["benchmark"] for row in rows}
    for b in benchmarks:
        if b not in listed:
            rows.append({"family": "", "family_title": "no score", "benchmark": b, "marks": "", "metric": "–",
                         "arrow": "", "cells": [None for _ in runs]})
    return rows


def _detail_metrics(runs: list[Run], b: str) -> list[str]:
    keys: list[str] = []
    for r in runs:
        res = r.results.get(b, {})
        keys.extend(k for k, v in res.items()
                    if k not in _SKIP_DETAIL and k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool))
    return keys


def _flat(d: dict[str, Any], pre: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k == "std":
            continue
        if isinstance(v, dict):
            out.update(_flat(v, f"{pre}{k}."))
        else:
            out[pre + k] = v
    return out


def _permute_rows(perm: list[dict[str, Any] | None]) -> list[tuple[str, list[Any]]]:
    """Permutation figures of each run, nested dicts flattened (variant_scores.rot1, ...)."""
    flat = [_flat(p) if p else {} for p in perm]
    keys: list[str] = []
    for f in flat:
        keys.extend(k for k in f if k not in keys)
    return [(k, [f.get(k) for f in flat]) for k in keys]


def detail_tables(runs: list[Run], benchmarks: list[str]) -> list[dict[str, Any]]:
    out = []
    for b in benchmarks:
        rows = [(k, [fmt_score(r.results.get(b, {}).get(k)) for r in runs]) for k in _detail_metrics(runs, b)]
        rows += [(f"permute: {k}", [fmt_score(v) for v in vals])
                 for k, vals in _permute_rows([r.results.get(b, {}).get("permute") for r in runs])]
        judges = [str(r.results.get(b, {}).get("judge") or "–") for r in runs]
        if any(j != "–" for j in judges):
            rows.append(("judge", judges))
        if rows:
            out.append({"benchmark": b, "rows": rows})
    return out


def run_rows(runs: list[Run]) -> list[dict[str, Any]]:
    out = []
    for i, r in enumerate(runs, 1):
        p, run = r.config.get("protocol", {}), r.config.get("run", {})
        judges = sorted({str(res.get("judge")) for res in r.results.values() if res.get("judge")})
        out.append({"n": i, "label": r.label, "path": str(r.path), "model": str((r.config.get("model") or {}).get("spec", "–")),
                    "protocol": f"{p.get('name', '–')}, {p.get('mode', '–')}, {shots_text(r.config, r.results)}, "
                                f"T={p.get('temperature', '–')}, {p.get('trials', 1)} trial(s)"
                                + (", permuted" if p.get("permute") else ""),
                    "instruct": str(r.config.get("instruct", "–")), "limit": str(run.get("limit") or "all"),
                    "judge": ", ".join(judges) or "–", "started": str(r.config.get("started", "–"))})
    return out


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    notes = []
    if any(FALLBACK_MARK in row["marks"] for row in rows):
        notes.append(f"{FALLBACK_MARK} not single-answer multiple choice: generated base-style in a logprob run "
                     "(mode_fallback).")
    if any(LOW_TRUST_MARK in row["marks"] for row in rows):
        notes.append(f"{LOW_TRUST_MARK} graded by an LLM judge that is the embedded default model (SmolLM2-135M): "
                     "low trust; rerun with a strong judge (--judge openai:...) before quoting the number.")
    return notes


def render_markdown(runs: list[Run], benchmarks: list[str], png_name: str | None) -> str:
    lines = ["# Evaluation report", "", "## Runs", "",
             "| # | run | model | protocol | instruct | items/benchmark | judge | started |", "|---|---|---|---|---|---|---|---|"]
    for rr in run_rows(runs):
        lines.append(f"| {rr['n']} | `{rr['path']}` | {rr['model']} | {rr['protocol']} | {rr['instruct']} | "
                     f"{rr['limit']} | {rr['judge']} | {rr['started']} |")
    rows = score_rows(runs, benchmarks)
    lines += ["", "## Scores", "",
              "Each cell: headline score, 95% bootstrap CI (or ± std across trials), then n / n_valid / parse failures. "
              "↑ higher is better, ↓ lower is better; **bold**: best of the row.",
              "", "| benchmark | metric | " + " | ".join(f"{i}: {r.label}" for i, r in enumerate(runs, 1)) + " |",
              "|---|---|" + "---|" * len(runs)]
    for row in rows:
        cells = []
        for c in row["cells"]:
            if c is None:
                cells.append("–")
                continue
            score = f"**{c['text']}**" if c["best"] else c["text"]
            extra = f"<br>{c['judge']}" if c["judge"] else ""
            cells.append(f"{score} {c['spread']}<br>{c['counts']}{extra}")
        mark = row["marks"].replace("*", "\\*")
        lines.append(f"| {row['benchmark']}{mark} | {row['metric']} {row['arrow']} | " + " | ".join(cells) + " |")
    notes = _notes(rows)
    if notes:
        lines += [""] + [n.replace("*", "\\*", 1) for n in notes]
    if png_name:
        lines += ["", f"![scores]({png_name})"]
    lines += ["", "## All metrics", ""]
    for t in detail_tables(runs, benchmarks):
        lines += [f"### {t['benchmark']}", "", "| metric | " + " | ".join(str(i) for i in range(1, len(runs) + 1)) + " |",
                  "|---|" + "---|" * len(runs)]
        lines += [f"| {k} | " + " | ".join(vals) + " |" for k, vals in t["rows"]]
        lines.append("")
    return "\n".join(lines) + "\n"


def render_html(runs: list[Run], benchmarks: list[str], png: bytes | None) -> str:
    from secfoundry.core.report import Page
    from secfoundry.core.report import render_html as render_page

    rows = score_rows(runs, benchmarks)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
              "#17becf"]  # matplotlib tab10, the figure's colours
    return render_page(
        TEMPLATE, package="secfoundry.eval",
        page=Page(title="secfoundry evaluation report", heading="Evaluation report", css=_CSS),
        runs=run_rows(runs), colors=colors, rows=rows, notes=_notes(rows), details=detail_tables(runs, benchmarks),
        png=base64.b64encode(png).decode() if png else None, families=FAMILIES,
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


def write_report(run_dirs: list[Path], out: Path) -> list[Path]:
    """Write ``out`` (.html or .md) and its twin; returns the paths written."""
    if not run_dirs:
        raise InputError("no run directories given")
    runs = [load_run(Path(d)) for d in run_dirs]
    _unique_labels(runs)
    benchmarks = _benchmarks(runs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    html_path = out if out.suffix.lower() in (".html", ".htm") else out.with_suffix(".html")
    md_path = out if out.suffix.lower() == ".md" else out.with_suffix(".md")
    png_path = out.with_suffix(".png")
    png = chart_png([Series(f"{i}: {r.label}", r.results) for i, r in enumerate(runs, 1)], benchmarks)
    written = []
    if png:
        png_path.write_bytes(png)
        written.append(png_path)
    html_path.write_text(render_html(runs, benchmarks, png), encoding="utf-8")
    md_path.write_text(render_markdown(runs, benchmarks, png_path.name if png else None), encoding="utf-8")
    return [html_path, md_path] + written
