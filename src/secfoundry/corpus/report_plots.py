"""Matplotlib figures for the corpus report, returned as PNG bytes (Agg backend, no display)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from secfoundry.corpus.report_data import RunReport
from secfoundry.corpus.report_profiles import LEN_EDGES


def _fig(w: float = 7.5, h: float = 3.6):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.subplots(figsize=(w, h), dpi=100)


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def funnel(rep: RunReport) -> bytes | None:
    phs = [p for p in rep.phases if p.status != "pending"]
    if not phs:
        return None
    plt, (fig, ax) = _fig(7.5, 0.5 + 0.35 * (len(rep.phases) + 1))
    labels = ["collected (in)"] + [p.dirname for p in rep.phases]
    vals = [rep.phases[0].docs_in if rep.phases[0].status != "pending" else 0] + \
           [p.docs_out if p.status != "pending" else 0 for p in rep.phases]
    colors = ["#7f7f7f"] + ["#1f77b4" if p.status == "done" else ("#ff7f0e" if p.status == "partial" else "#dddddd")
                            for p in rep.phases]
    y = np.arange(len(labels))[::-1]
    ax.barh(y, vals, color=colors)
    ax.set_yticks(y, labels, fontsize=8)
    for yy, v in zip(y, vals):
        ax.text(v, yy, f" {v:,}", va="center", fontsize=7)
    ax.set_xlabel("documents (out of each phase; orange = partial, grey = pending)")
    ax.margins(x=0.15)
    return _png(plt, fig)


def length_histograms(rep: RunReport) -> bytes | None:
    series: list[tuple[str, list[int]]] = []
    for stage, phs in rep.stages():
        last = [p for p in phs if p.status != "pending" and p.out.docs]
        if last:
            series.append((f"{stage} out ({last[-1].out.docs:,})", last[-1].out.length_hist))
    dropped = np.zeros(len(LEN_EDGES) - 1, dtype=np.int64)
    for p in rep.phases:
        if p.excluded.length_hist:
            dropped += np.asarray(p.excluded.length_hist, dtype=np.int64)
    if dropped.sum():
        series.append((f"dropped, all stages ({int(dropped.sum()):,})", dropped.tolist()))
    if not series:
        return None
    plt, (fig, ax) = _fig()
    centers = 10 ** ((LEN_EDGES[:-1] + LEN_EDGES[1:]) / 2)
    for label, h in series:
        h = np.asarray(h, dtype=float)
        ax.step(centers, h / max(1.0, h.sum()), where="mid", label=label, linestyle="--" if label.startswith("dropped") else "-")
    ax.set_xscale("log")
    ax.set_xlabel("document length (characters, log scale)")
    ax.set_ylabel("fraction of documents")
    ax.legend(fontsize=7)
    return _png(plt, fig)


def languages(rep: RunReport, top: int = 15) -> bytes | None:
    if not rep.langs:
        return None
    items = sorted(rep.langs.items(), key=lambda kv: -kv[1])
    head, rest = items[:top], sum(v for _, v in items[top:])
    if rest:
        head.append(("other", rest))
    plt, (fig, ax) = _fig(7.5, 3.2)
    ax.bar([k for k, _ in head], [v for _, v in head], color="#2ca02c")
    ax.set_yscale("log")
    ax.set_ylabel("documents (log)")
    ax.set_xlabel("language ('und' = too little prose to judge)" if rep.lang_from == "langid"
                  else "language (sample detected by the report)")
    ax.tick_params(axis="x", labelsize=8, rotation=45)
    return _png(plt, fig)


def keep_rates(rows: list[dict[str, Any]]) -> bytes | None:
    rows = [r for r in rows if r.get("keep_rate") is not None]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: r["keep_rate"])
    plt, (fig, ax) = _fig(7.5, 0.6 + 0.28 * len(rows))
    y = np.arange(len(rows))
    rates = [100 * r["keep_rate"] for r in rows]
    ax.barh(y, rates, color=["#d62728" if v < 50 else "#1f77b4" for v in rates])
    ax.set_yticks(y, [f"{r['source']} ({r['collected']:,})" for r in rows], fontsize=7)
    for yy, v in zip(y, rates):
        ax.text(v, yy, f" {v:.1f}%", va="center", fontsize=7)
    ax.set_xlim(0, 115)
    ax.set_xlabel("documents kept end to end (% of collected, upsampled copies not counted)")
    return _png(plt, fig)


def tokens_per_source(rep: RunReport) -> bytes | None:
    src = {s: v["train"] + v["test"] for s, v in rep.tokens.sources.items() if v["train"] + v["test"] > 0}
    if not src:
        return None
    items = sorted(src.items(), key=lambda kv: kv[1])
    plt, (fig, ax) = _fig(7.5, 0.6 + 0.28 * len(items))
    y = np.arange(len(items))
    ax.barh(y, [v for _, v in items], color="#9467bd")
    ax.set_yticks(y, [k for k, _ in items], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("tokens (packed shards)" if rep.tokens.measured else "tokens, estimated as characters / 4")
    return _png(plt, fig)
