"""The replication experiment's report: the table with CIs, the targets' verdicts, the loss curve;
``report.md`` and a self-contained ``report.html`` in the run directory."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any


def paired_delta(base: dict[str, list[bool]], cpt: dict[str, list[bool]], k: int, seed: int = 1234,
                 rounds: int = 2000) -> tuple[float, float, float, int]:
    """Continued minus base accuracy (points) on the items both answered, with a paired bootstrap
    95% CI (items resampled together: the same questions, so question difficulty cancels)."""
    from secfoundry.eval.statistics import paired_bootstrap

    ids = sorted(set(base) & set(cpt))
    if not ids:
        return float("nan"), float("nan"), float("nan"), 0
    diffs = [(float(cpt[i][k]) - float(base[i][k])) * 100 for i in ids]
    return (*paired_bootstrap(diffs, seed=seed, rounds=rounds), len(ids))


def verdicts(summary: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, threshold, met?) for the issue's three targets."""
    b, c = summary["base"], summary["cpt"]
    rows = []
    if "security_ppl" in b["ppl"] and "security_ppl" in c["ppl"]:
        d = c["ppl"]["security_ppl"] / b["ppl"]["security_ppl"] - 1
        rows.append(("held-out security perplexity", f"{d:+.1%}", "-20% or better", d <= -0.20))
    if "general_ppl" in b["ppl"] and "general_ppl" in c["ppl"]:
        d = c["ppl"]["general_ppl"] / b["ppl"]["general_ppl"] - 1
        rows.append(("general perplexity", f"{d:+.1%}", "+5% at most", d <= 0.05))
    if "ctibench-mcq" in b["bench"] and "ctibench-mcq" in c["bench"]:
        d = (c["bench"]["ctibench-mcq"]["score"] - b["bench"]["ctibench-mcq"]["score"])
        scale = 100 if b["bench"]["ctibench-mcq"]["score"] <= 1 else 1
        rows.append(("CTIBench-MCQ", f"{d * scale:+.2f} points", "+3 points or more", d * scale >= 3))
    rb, rc = b.get("rotation"), c.get("rotation")
    if rb and rc:
        # The raw gain only counts if it survives the rotation check: otherwise the model just
        # moved to a letter the answer key favours.
        d = rc["variant_mean"] - rb["variant_mean"]
        rows.append((f"CTIBench-MCQ, rotation-averaged (first {rc.get('n')})", f"{d:+.2f} points",
                     "+3 points or more", d >= 3))
    return rows


def render_markdown(summary: dict[str, Any], metrics_path: Path | None = None) -> str:
    b, c = summary["base"], summary["cpt"]
    lines = ["## Replication experiment (SmolLM2-135M continued pretraining)", "",
             f"Command: `{summary.get('command', '')}`", "",
             f"Training: {summary['train']['steps']} steps, {summary['train']['tokens']:,} tokens, "
             f"final train loss {summary['train']['final_loss']:.4f}.", "",
             "| metric | base | continued | change |", "|---|---|---|---|"]
    for k in ("security_ppl", "general_ppl"):
        if k in b["ppl"] and k in c["ppl"]:
            lines.append(f"| held-out {k.replace('_ppl', '')} perplexity | {b['ppl'][k]:.3f} | {c['ppl'][k]:.3f} "
                         f"| {c['ppl'][k] / b['ppl'][k] - 1:+.1%} |")
    for name in sorted(set(b["bench"]) & set(c["bench"])):
        rb, rc = b["bench"][name], c["bench"][name]

        def fmt(r):
            ci = r.get("ci95")
            s = f"{r['score']:.4f}"
            return s + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "") + f" (n={r.get('n')}, valid={r.get('n_valid')})"

        lines.append(f"| {name} (5-shot logprob) | {fmt(rb)} | {fmt(rc)} | {rc['score'] - rb['score']:+.4f} |")
    rb, rc = b.get("rotation"), c.get("rotation")
    if rb and rc:
        def rot(r):
            return (f"{r['variant_mean']:.2f} (rotations " + " / ".join(f"{v:.1f}" for v in r["variant_scores"].values())
                    + f"; right in all: {r['correct_in_every_variant']:.1f}%)")

        lines.append(f"| ctibench-mcq rotation-averaged, first {rc.get('n')} | {rot(rb)} | {rot(rc)} "
                     f"| {rc['variant_mean'] - rb['variant_mean']:+.2f} |")
    ob, oc = b.get("options"), c.get("options")
    if ob and oc:
        for k, (label, key) in enumerate([("accuracy", "accuracy"), ("acc_norm (per byte)", "acc_norm")]):
            if ob.get(key) is None or oc.get(key) is None:
                continue
            dm, lo, hi, n = paired_delta(ob["items"], oc["items"], k)
            lines.append(f"| ctibench-mcq option texts, {label}, first {n} | {ob[key]:.2f} | {oc[key]:.2f} "
                         f"| {dm:+.2f} [{lo:+.2f}, {hi:+.2f}] paired |")
    lines += ["", "| target | measured | threshold | met |", "|---|---|---|---|"]
    for name, got, want, ok in verdicts(summary):
        lines.append(f"| {name} | {got} | {want} | {'yes' if ok else 'no'} |")
    if metrics_path and metrics_path.exists():
        png = loss_curve_png(metrics_path)
        if png:
            (metrics_path.parent / "loss_curve.png").write_bytes(png)
            lines += ["", f"Loss curve: `{metrics_path.parent / 'loss_curve.png'}`"]
    return "\n".join(lines) + "\n"


def loss_curve_png(metrics_path: Path) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    tr = [(r["step"], r["loss"]) for r in recs if "loss" in r]
    ev = [(r["step"], r["eval_security_loss"]) for r in recs if "eval_security_loss" in r]
    gv = [(r["step"], r["eval_general_loss"]) for r in recs if "eval_general_loss" in r]
    if not tr:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*zip(*tr), label="train loss")
    if ev:
        ax.plot(*zip(*ev), "o-", label="held-out security loss")
    if gv:
        ax.plot(*zip(*gv), "s-", label="held-out general loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def render_html(md: str, png: bytes | None) -> str:
    """The Markdown report as one self-contained HTML page (the core report shell), the loss
    curve inlined. The Markdown is ours (numbers and paths); raw HTML in it is not passed through."""
    from markdown_it import MarkdownIt

    from secfoundry.core.report import Page, render_html as render_template

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    return render_template("experiment_report.html.j2", package="secfoundry.experiment",
                           page=Page(title="secfoundry replication experiment"), body=body, loss_png=png)


def write_reports(out: Path) -> str:
    """``report.md``, ``report.html`` and ``train/loss_curve.png`` from ``summary.json`` (and the
    trainer's metrics); returns the Markdown."""
    out = Path(out)
    summary = json.loads((out / "summary.json").read_text())
    metrics = out / "train" / "metrics.jsonl"
    md = render_markdown(summary, metrics)
    png_path = metrics.parent / "loss_curve.png"
    (out / "report.md").write_text(md)
    (out / "report.html").write_text(render_html(md, png_path.read_bytes() if png_path.exists() else None))
    return md
