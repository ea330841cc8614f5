"""Compare evaluation runs side by side: an HTML page and its Markdown twin.

Every score is shown with its 95% CI (or ± std across trials), n, n_valid and parse failures;
a bar chart (matplotlib, embedded as base64 PNG in the HTML, a PNG file beside the Markdown)
draws the headline scores with their error bars.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secfoundry.core.errors import InputError

# Metrics shown in the details table (besides the headline) when a run has them.
_SKIP_DETAIL = {"score", "n", "n_valid", "parse_failures", "stderr", "ci95", "ci_method", "n_boot", "elapsed_s",
                "answered_now", "requests_per_s", "trials", "shots", "score_std", "stderr_trial0", "ci95_trial0"}


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


def _spread(res: dict[str, Any]) -> tuple[str, tuple[float, float] | None]:
    """Text and (low, high) error-bar extent around the score."""
    s = res.get("score")
    if res.get("score_std") is not None and s is not None:
        sd = float(res["score_std"])
        return f"± {fmt_score(sd)} (std, {res.get('trials')} trials)", (sd, sd)
    ci = res.get("ci95")
    if ci and s is not None:
        return f"[{fmt_score(ci[0])}, {fmt_score(ci[1])}]", (max(0.0, s - ci[0]), max(0.0, ci[1] - s))
    return "", None


def _counts(res: dict[str, Any]) -> str:
    return f"n={res.get('n', '–')}, valid={res.get('n_valid', '–')}, parse fail={res.get('parse_failures', '–')}"


def chart_png(runs: list[Run], benchmarks: list[str]) -> bytes | None:
    """Grouped bars (one per run) with error bars; lower-is-better metrics in their own panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, list[str]]] = []
    hib = [b for b in benchmarks if _meta(runs, b).get("higher_is_better", True)]
    lib = [b for b in benchmarks if b not in hib]
    if hib:
        panels.append(("higher is better", hib))
    if lib:
        panels.append(("lower is better", lib))
    if not panels:
        return None
    widths = [max(3.0, 0.9 * len(bs) * max(1, len(runs)) * 0.45 + 1.5) for _t, bs in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(sum(widths) + 1, 4.6),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    width = 0.8 / max(1, len(runs))
    for ax, (title, bs) in zip(axes[0], panels):
        for j, run in enumerate(runs):
            xs, ys, lo, hi = [], [], [], []
            for i, b in enumerate(bs):
                res = run.results.get(b)
                if not res or res.get("score") is None:
                    continue
                xs.append(i + (j - (len(runs) - 1) / 2) * width)
                ys.append(float(res["score"]))
                _t, err = _spread(res)
                lo.append(err[0] if err else 0.0)
                hi.append(err[1] if err else 0.0)
            ax.bar(xs, ys, width=width * 0.95, yerr=[lo, hi], capsize=2, label=run.label if ax is axes[0][0] else None)
        ax.set_xticks(range(len(bs)))
        # "*": generated base-style because logprob mode does not apply (see mode_fallback)
        ax.set_xticklabels([b + (" *" if any((r.results.get(b) or {}).get("mode_fallback") for r in runs) else "")
                            for b in bs], rotation=35, ha="right", fontsize=8)
        heads = sorted({str(_meta(runs, b).get("headline", "score")) for b in bs})
        ax.set_ylabel(", ".join(heads))
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="upper center", ncol=min(3, len(runs)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _meta(runs: list[Run], b: str) -> dict[str, Any]:
    for r in runs:
        if b in r.results:
            return r.results[b]
    return {}


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


def render_markdown(runs: list[Run], benchmarks: list[str], png_name: str | None) -> str:
    lines = ["# Evaluation report", "", "## Runs", "", "| # | run | model | protocol | instruct | items/benchmark | started |",
             "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(runs, 1):
        p, run = r.config.get("protocol", {}), r.config.get("run", {})
        lines.append(f"| {i} | `{r.path}` | {(r.config.get('model') or {}).get('spec', '–')} | "
                     f"{p.get('name', '–')}, {p.get('mode', '–')}, {shots_text(r.config, r.results)}, T={p.get('temperature', '–')}, "
                     f"{p.get('trials', 1)} trial(s){', permuted' if p.get('permute') else ''} | {r.config.get('instruct', '–')} | "
                     f"{run.get('limit') or 'all'} | {r.config.get('started', '–')} |")
    lines += ["", "## Scores", "",
              "Each cell: headline score, 95% bootstrap CI (or ± std across trials), then n / n_valid / parse failures.",
              "", "| benchmark | metric | " + " | ".join(f"{i}: {r.label}" for i, r in enumerate(runs, 1)) + " |",
              "|---|---|" + "---|" * len(runs)]
    for b in benchmarks:
        m = _meta(runs, b)
        cells = []
        for r in runs:
            res = r.results.get(b)
            if not res:
                cells.append("–")
                continue
            txt, _e = _spread(res)
            cells.append(f"**{fmt_score(res.get('score'))}** {txt}<br>{_counts(res)}")
        arrow = "↑" if m.get("higher_is_better", True) else "↓"
        star = " \\*" if any((r.results.get(b) or {}).get("mode_fallback") for r in runs) else ""
        lines.append(f"| {b}{star} | {m.get('headline', 'score')} {arrow} | " + " | ".join(cells) + " |")
    if any((r.results.get(b) or {}).get("mode_fallback") for r in runs for b in benchmarks):
        lines += ["", "\\* not single-answer multiple choice: generated base-style in a logprob run (`mode_fallback`)."]
    if png_name:
        lines += ["", f"![scores]({png_name})"]
    lines += ["", "## All metrics", ""]
    for b in benchmarks:
        keys = _detail_metrics(runs, b)
        if not keys:
            continue
        lines += [f"### {b}", "", "| metric | " + " | ".join(str(i) for i in range(1, len(runs) + 1)) + " |",
                  "|---|" + "---|" * len(runs)]
        for k in keys:
            lines.append(f"| {k} | " + " | ".join(fmt_score(r.results.get(b, {}).get(k)) for r in runs) + " |")
        for k, vals in _permute_rows([r.results.get(b, {}).get("permute") for r in runs]):
            lines.append(f"| permute: {k} | " + " | ".join(fmt_score(v) for v in vals) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px}th{background:#f3f3f3}
.s{font-weight:600;font-size:14px}.c{color:#555;font-size:11px}code{font-size:12px}"""


def render_html(runs: list[Run], benchmarks: list[str], png: bytes | None) -> str:
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>secfoundry evaluation report</title>"
           f"<style>{_CSS}</style></head><body><h1>Evaluation report</h1><h2>Runs</h2><table>"
           "<tr><th>#</th><th>run</th><th>model</th><th>protocol</th><th>instruct</th><th>items/benchmark</th>"
           "<th>started</th></tr>"]
    for i, r in enumerate(runs, 1):
        p, run = r.config.get("protocol", {}), r.config.get("run", {})
        model = r.config.get("model") or {}
        out.append(f"<tr><td>{i}</td><td><code>{e(str(r.path))}</code></td><td>{e(str(model.get('spec', '–')))}</td>"
                   f"<td>{e(str(p.get('name', '–')))}, {e(str(p.get('mode', '–')))}, {e(shots_text(r.config, r.results))}, "
                   f"T={p.get('temperature', '–')}, {p.get('trials', 1)} trial(s){', permuted' if p.get('permute') else ''}</td>"
                   f"<td>{e(str(r.config.get('instruct', '–')))}</td><td>{e(str(run.get('limit') or 'all'))}</td>"
                   f"<td>{e(str(r.config.get('started', '–')))}</td></tr>")
    out.append("</table><h2>Scores</h2><p>Each cell: headline score, 95% bootstrap CI (or ± std across trials), "
               "then n / n_valid / parse failures.</p><table><tr><th>benchmark</th><th>metric</th>")
    out += [f"<th>{i}: {e(r.label)}</th>" for i, r in enumerate(runs, 1)]
    out.append("</tr>")
    for b in benchmarks:
        m = _meta(runs, b)
        arrow = "↑" if m.get("higher_is_better", True) else "↓"
        star = " *" if any((r.results.get(b) or {}).get("mode_fallback") for r in runs) else ""
        out.append(f"<tr><td>{e(b + star)}</td><td>{e(str(m.get('headline', 'score')))} {arrow}</td>")
        for r in runs:
            res = r.results.get(b)
            if not res:
                out.append("<td>–</td>")
                continue
            txt, _e = _spread(res)
            out.append(f"<td><span class='s'>{fmt_score(res.get('score'))}</span> {e(txt)}"
                       f"<br><span class='c'>{e(_counts(res))}</span></td>")
        out.append("</tr>")
    out.append("</table>")
    if any((r.results.get(b) or {}).get("mode_fallback") for r in runs for b in benchmarks):
        out.append("<p>* not single-answer multiple choice: generated base-style in a logprob run "
                   "(<code>mode_fallback</code>).</p>")
    if png:
        out.append(f"<img alt='scores with 95% CI' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    out.append("<h2>All metrics</h2>")
    for b in benchmarks:
        keys = _detail_metrics(runs, b)
        if not keys:
            continue
        out.append(f"<h3>{e(b)}</h3><table><tr><th>metric</th>" + "".join(f"<th>{i}</th>" for i in range(1, len(runs) + 1))
                   + "</tr>")
        for k in keys:
            out.append(f"<tr><td>{e(k)}</td>" + "".join(f"<td>{fmt_score(r.results.get(b, {}).get(k))}</td>" for r in runs)
                       + "</tr>")
        for k, vals in _permute_rows([r.results.get(b, {}).get("permute") for r in runs]):
            out.append(f"<tr><td>permute: {e(k)}</td>" + "".join(f"<td>{fmt_score(v)}</td>" for v in vals) + "</tr>")
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out)


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
    png = chart_png(runs, benchmarks)
    written = []
    if png:
        png_path.write_bytes(png)
        written.append(png_path)
    html_path.write_text(render_html(runs, benchmarks, png), encoding="utf-8")
    md_path.write_text(render_markdown(runs, benchmarks, png_path.name if png else None), encoding="utf-8")
    return [html_path, md_path] + written
