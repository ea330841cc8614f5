"""The report's figure: one panel per metric family, models side by side, 95% CIs, legend inside.

Families (a run's result decides, so CTIBench-VSP can sit in "accuracy" under FAITH's per-item
score and in "deviation" under the official MAD):

* ``accuracy`` - higher is better, percentages on a fixed 0-100 axis (accuracy, lenient or
  normalised accuracy, correct-actor share, VSP score, judge scores);
* ``f1`` - higher is better, percentages on a fixed 0-100 axis (micro/macro F1);
* ``deviation`` - lower is better, in the metric's own units (CVSS MAD).

Benchmarks are rows (horizontal bars), so a dozen names stay readable without rotated labels;
each model has one colour in every panel and its number is the column of the HTML/Markdown table.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Sequence

FAMILIES = ("accuracy", "f1", "deviation")
TITLES = {
    "accuracy": "Accuracy-type scores (%) - higher is better",
    "f1": "F1 (%) - higher is better",
    "deviation": "Deviation (e.g. CVSS MAD, score points) - lower is better",
}
LOW_TRUST_MARK = "†"
FALLBACK_MARK = "*"


def family_of(res: dict[str, Any]) -> str:
    """The metric family of one run's result for one benchmark."""
    if not res.get("higher_is_better", True):
        return "deviation"
    if "f1" in str(res.get("headline", "")).lower():
        return "f1"
    return "accuracy"


def spread(res: dict[str, Any]) -> tuple[float, float] | None:
    """(below, above) error-bar extent around the score: ± std across trials, else the 95% CI."""
    s = res.get("score")
    if s is None:
        return None
    if res.get("score_std") is not None:
        sd = float(res["score_std"])
        return sd, sd
    ci = res.get("ci95") or res.get("ci95_trial0")
    if ci and len(ci) == 2 and ci[0] is not None and ci[1] is not None:
        return max(0.0, float(s) - float(ci[0])), max(0.0, float(ci[1]) - float(s))
    return None


@dataclass
class Series:
    label: str  # "1: model protocol..."
    results: dict[str, dict[str, Any]]  # benchmark -> result


def panels(series: Sequence[Series], benchmarks: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(family, benchmarks having at least one result of that family), in family order."""
    out = []
    for fam in FAMILIES:
        bs = [b for b in benchmarks
              if any(isinstance(s.results.get(b), dict) and s.results[b].get("score") is not None
                     and family_of(s.results[b]) == fam for s in series)]
        if bs:
            out.append((fam, bs))
    return out


def _tick(b: str, series: Sequence[Series]) -> str:
    marks = ""
    if any((s.results.get(b) or {}).get("mode_fallback") for s in series):
        marks += " " + FALLBACK_MARK
    if any((s.results.get(b) or {}).get("judge_low_trust") for s in series):
        marks += " " + LOW_TRUST_MARK
    return b + marks


def chart_png(series: Sequence[Series], benchmarks: Sequence[str], dpi: int = 110) -> bytes | None:
    """PNG bytes of the figure, or None when there is no score to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pans = panels(series, benchmarks)
    if not pans:
        return None
    n = max(1, len(series))
    row_h = 0.16 * n + 0.22  # inches per benchmark
    heights = [max(1.3, row_h * len(bs) + 0.7) for _f, bs in pans]
    longest = max((len(s.label) for s in series), default=10)
    ncol = 1 if longest > 48 else min(3, n)
    legend_h = 0.25 * ((n + ncol - 1) // ncol) + 0.3
    notes = _notes(series, benchmarks)
    fig, axes = plt.subplots(len(pans), 1, figsize=(10.5, sum(heights) + legend_h + 0.3 * len(notes)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False, layout="constrained")
    colors = plt.get_cmap("tab10").colors
    bar_h = 0.8 / n
    handles = []
    for ax, (fam, bs) in zip(axes[:, 0], pans):
        top = 0.0
        for j, s in enumerate(series):
            ys, xs, lo, hi, weak = [], [], [], [], []
            for i, b in enumerate(bs):
                res = s.results.get(b)
                if not isinstance(res, dict) or res.get("score") is None or family_of(res) != fam:
                    continue
                y = i + (j - (n - 1) / 2) * bar_h
                err = spread(res)
                ys.append(y)
                xs.append(float(res["score"]))
                lo.append(err[0] if err else 0.0)
                hi.append(err[1] if err else 0.0)
                weak.append(bool(res.get("judge_low_trust")))
            if not ys:
                continue
            bars = ax.barh(ys, xs, height=bar_h * 0.92, xerr=[lo, hi], color=colors[j % len(colors)],
                           error_kw={"elinewidth": 0.9, "capsize": 2, "ecolor": "#333"}, label=s.label)
            for patch, w in zip(bars.patches, weak):
                if w:  # graded by the embedded default judge: hatched, like the † in the labels
                    patch.set_hatch("///")
                    patch.set_edgecolor("white")
            if len(handles) <= j:
                handles.append(bars)
            for y, x, h in zip(ys, xs, hi):
                top = max(top, x + h)
                ax.text(x + h, y, f" {x:.4g}", va="center", ha="left", fontsize=8, color="#222")
        ax.set_yticks(range(len(bs)))
        ax.set_yticklabels([_tick(b, series) for b in bs], fontsize=9.5)
        ax.set_ylim(len(bs) - 0.5, -0.5)  # first benchmark on top
        heads = sorted({str((s.results.get(b) or {}).get("headline", "score")) for s in series for b in bs
                        if isinstance(s.results.get(b), dict) and family_of(s.results[b]) == fam})
        ax.set_title(f"{TITLES[fam]}   [{', '.join(heads)}]", fontsize=10.5, loc="left")
        if fam in ("accuracy", "f1"):
            ax.set_xlim(0, 100 if top <= 100 else top * 1.08)
        else:
            ax.set_xlim(0, max(top, 1e-9) * 1.18)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    # Inside the figure, above the panels; constrained layout keeps room for it.
    labels = [h.get_label() for h in handles]
    fig.legend(handles, labels, loc="outside upper left", ncol=ncol, fontsize=9, frameon=False,
               title="models (error bars: 95% CI, or ± std across trials)", title_fontsize=9, alignment="left")
    if notes:
        fig.supxlabel("\n".join(notes), fontsize=7.5, x=0.01, ha="left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def _notes(series: Sequence[Series], benchmarks: Sequence[str]) -> list[str]:
    notes = []
    if any((s.results.get(b) or {}).get("mode_fallback") for s in series for b in benchmarks):
        notes.append(f"{FALLBACK_MARK} not single-answer multiple choice: generated base-style in a logprob run")
    if any((s.results.get(b) or {}).get("judge_low_trust") for s in series for b in benchmarks):
        notes.append(f"{LOW_TRUST_MARK} graded by the embedded default model as judge: low trust, "
                     "use a strong judge (--judge) for a reportable number")
    return notes
