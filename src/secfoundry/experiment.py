"""The replication experiment: does continued pretraining on our corpus make the embedded model
better at security without making it worse at everything else?

corpus quickstart -> evaluate base -> continued pretraining -> evaluate the result with the same
harness settings -> report (table with CIs, loss curve) appended to RESULTS.md. Every step
resumes: the corpus runner, the eval runner (samples.jsonl) and the trainer (checkpoints).
"""

from __future__ import annotations

import base64
import io
import json
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ReplicateConfig:
    out: Path = Path("runs/replicate")
    corpus_recipe: Path = REPO / "configs" / "corpus" / "quickstart.yaml"
    train_recipe: Path = REPO / "configs" / "train" / "smollm2-135m-cpt.yaml"
    mirror: str | None = None
    # Reuse a finished corpus run (a directory with shards/) instead of building one: lever runs
    # share one corpus so only the training settings differ.
    corpus_dir: Path | None = None
    # Reuse the base model's perplexities and benchmark answers from an earlier experiment with the
    # same corpus and eval settings (the base model does not change between lever runs).
    base_from: Path | None = None
    benchmarks: list[str] = field(default_factory=lambda: ["ctibench-mcq", "cybermetric-500", "seceval"])
    shots: int = 5  # FAITH base-model protocol for both models: same prompts, logprob letters
    eval_limit: int | None = None
    # CTIBench-MCQ rotation check on the first N questions (each asked with its options rotated
    # 0-3 places): a 135M model's letter scores mostly measure which letter it prefers, and the
    # rotation-averaged accuracy is the part that is not position bias. 0 = skip.
    permute_limit: int = 400
    # CTIBench-MCQ scored by the option texts' log-likelihood (accuracy, and acc_norm: per byte)
    # on the first N questions, same 5-shot prompts. Small models are usually measured this way
    # ("cloze" formulation) because they cannot yet bind an answer to a letter. 0 = skip.
    option_limit: int = 400
    ppl_batches: int = 16  # held-out batches of 8 rows per set (sources interleaved); 0: every row
    train_overrides: list[str] = field(default_factory=list)
    results_md: Path | None = REPO / "RESULTS.md"


def general_heldout(recipe: Path, out: Path, seq_len: int, take: int = 60) -> Path | None:
    """Pack general text the corpus never saw: the documents after the recipe's ``max_docs`` of
    each general-text file (same distributions as the replay, disjoint documents)."""
    import yaml

    from secfoundry.corpus.collect.general import general_files, iter_general_documents
    from secfoundry.corpus.prepare.pack import PackConfig, pack_partition, write_manifest

    if (out / "manifest.json").exists():
        return out
    spec = yaml.safe_load(Path(recipe).read_text())
    rows = []
    for inp in spec.get("inputs", []):
        if inp.get("kind") != "general":
            continue
        skip = int(inp.get("max_docs") or 0)
        base = Path(inp["path"])
        for f in general_files(str(base if base.is_absolute() else Path.cwd() / base)):
            for i, d in enumerate(iter_general_documents(f)):
                if i >= skip + take:
                    break
                if i >= skip:
                    rows.append({"id": d.id, "text": d.text, "source": d.source, "license": d.license})
    if not rows:
        return None
    cfg = PackConfig(seq_len=seq_len, test_fraction=1.0)
    pack_partition(rows, out, "heldout", cfg)
    write_manifest(out, cfg, extra={"what": f"general-text documents after max_docs, {take} per file"})
    return out


def heldout_perplexities(model_dir: str | Path, shards: Path, seq_len: int, batch: int = 8,
                         max_batches: int = 0, general_shards: Path | None = None) -> dict[str, float]:
    """Security (corpus test split) and general (held-out general text when given, else the
    corpus test split's general:* sources) perplexity of an HF model directory."""
    import torch
    from transformers import AutoModelForCausalLM

    from secfoundry.train.data import is_general
    from secfoundry.train.trainer import heldout_loss

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), torch_dtype=torch.float32)
    model.eval()
    out = {}
    sets = [("security", shards, lambda s: not is_general(s)),
            ("general", general_shards, None) if general_shards else ("general", shards, is_general)]
    for name, sh, sel in sets:
        loss = heldout_loss(model, sh, "test", seq_len, batch, max_batches, sel)
        if loss is not None:
            out[f"{name}_loss"] = loss
            out[f"{name}_ppl"] = math.exp(loss)
    return out


def _run_eval(model_dir: Path, cfg: ReplicateConfig, out: Path, benchmarks: list[str], limit: int | None,
              **extra: Any) -> dict[str, Any]:
    """One harness run with the experiment's fixed settings (FAITH 5-shot logprob, base prompts)."""
    from secfoundry.eval.runner import RunConfig, run_eval

    # absolute: a relative --out (the default runs/replicate) is not a valid local model spec
    rc = RunConfig(model=f"hf:{Path(model_dir).resolve()}", benchmarks=benchmarks, out=out, protocol="faith",
                   mode="logprob", shots=cfg.shots, instruct=False, limit=limit, **extra)
    return run_eval(rc).results


def _eval(model_dir: Path, cfg: ReplicateConfig, out: Path) -> dict[str, Any]:
    return _run_eval(model_dir, cfg, out, list(cfg.benchmarks), cfg.eval_limit)


def _option_scoring(model_dir: Path, cfg: ReplicateConfig, out: Path) -> dict[str, Any] | None:
    """CTIBench-MCQ with the option texts scored (--score-options) on the first ``option_limit``
    questions; returns accuracy, acc_norm and the per-item picks (for paired comparison)."""
    if not cfg.option_limit or "ctibench-mcq" not in cfg.benchmarks:
        return None
    r = _run_eval(model_dir, cfg, out, ["ctibench-mcq"], cfg.option_limit, score_options=True)["ctibench-mcq"]
    from secfoundry.eval.samples import read_samples

    items = {s.item_id: [s.correct, s.lenient_correct] for s in read_samples(out, "ctibench-mcq")}
    return {"accuracy": r["accuracy"], "acc_norm": r.get("acc_norm"), "n": r["n"], "items": items}


def paired_delta(base: dict[str, list[bool]], cpt: dict[str, list[bool]], k: int, seed: int = 1234,
                 rounds: int = 2000) -> tuple[float, float, float, int]:
    """Continued minus base accuracy (points) on the items both answered, with a paired bootstrap
    95% CI (items resampled together: the same questions, so question difficulty cancels)."""
    import numpy as np

    ids = sorted(set(base) & set(cpt))
    if not ids:
        return float("nan"), float("nan"), float("nan"), 0
    d = np.array([float(cpt[i][k]) - float(base[i][k]) for i in ids]) * 100
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(rounds, len(d)))].mean(axis=1)
    return float(d.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)), len(ids)


def _rotation_check(model_dir: Path, cfg: ReplicateConfig, out: Path) -> dict[str, Any] | None:
    """CTIBench-MCQ with --permute on the first ``permute_limit`` questions (same prompts as _eval)."""
    if not cfg.permute_limit or "ctibench-mcq" not in cfg.benchmarks:
        return None
    return _run_eval(model_dir, cfg, out, ["ctibench-mcq"], cfg.permute_limit, permute=True)["ctibench-mcq"].get("permute")


def replicate(cfg: ReplicateConfig, say=print) -> dict[str, Any]:
    from secfoundry.corpus.pipeline import run_recipe
    from secfoundry.models.embedded import ensure_converted
    from secfoundry.train.config import TrainConfig
    from secfoundry.train.trainer import Trainer

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t = time.time()
    if cfg.corpus_dir:
        shards = Path(cfg.corpus_dir) / "shards"
        if not (shards / "manifest.json").exists():
            raise FileNotFoundError(f"{shards / 'manifest.json'} not found: --corpus must be a finished corpus run")
        say(f"[1/5] corpus: reusing {shards}")
    else:
        say("[1/5] corpus (quickstart recipe)")
        run_recipe(cfg.corpus_recipe, out / "corpus", mirror=cfg.mirror)
        shards = out / "corpus" / "shards"
    timings["corpus_s"] = time.time() - t

    tcfg = TrainConfig.from_yaml(cfg.train_recipe, [f"data.shards={shards}", "data.replay_shards=null",
                                                     f"out_dir={out / 'train'}", *cfg.train_overrides])
    seq_len = tcfg.data.seq_len or 512
    base = ensure_converted()
    general = general_heldout(cfg.corpus_recipe, out / "general-heldout", seq_len)

    if cfg.base_from:
        _copy_base_results(Path(cfg.base_from), out)
    t = time.time()
    say("[2/5] evaluate the base model")
    base_ppl = _cached(out / "base_ppl.json", lambda: heldout_perplexities(base, shards, seq_len, max_batches=cfg.ppl_batches,
                                                                                 general_shards=general))
    base_res = _eval(base, cfg, out / "eval-base")
    base_rot = _rotation_check(base, cfg, out / "permute-base")
    base_opt = _option_scoring(base, cfg, out / "options-base")
    timings["eval_base_s"] = time.time() - t

    t = time.time()
    say(f"[3/5] continued pretraining: {tcfg.max_steps} steps x {tcfg.micro_batch_size * tcfg.grad_accum * seq_len:,} tokens")
    result = Trainer(tcfg).run(resume=True)
    timings["train_s"] = time.time() - t
    cpt = result.export_dir or (out / "train" / "final")

    t = time.time()
    say("[4/5] evaluate the continued model")
    cpt_ppl = _cached(out / "cpt_ppl.json", lambda: heldout_perplexities(cpt, shards, seq_len, max_batches=cfg.ppl_batches,
                                                                               general_shards=general))
    cpt_res = _eval(cpt, cfg, out / "eval-cpt")
    cpt_rot = _rotation_check(cpt, cfg, out / "permute-cpt")
    cpt_opt = _option_scoring(cpt, cfg, out / "options-cpt")
    timings["eval_cpt_s"] = time.time() - t

    say("[5/5] report")
    summary = {"base": {"ppl": base_ppl, "bench": base_res, "rotation": base_rot, "options": base_opt},
               "cpt": {"ppl": cpt_ppl, "bench": cpt_res, "rotation": cpt_rot, "options": cpt_opt},
               "train": {"steps": result.steps, "tokens": result.tokens, "final_loss": result.final_loss},
               "timings": timings, "command": " ".join(shlex.quote(a) for a in sys.argv)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    md = write_reports(out)
    if cfg.results_md:
        with Path(cfg.results_md).open("a") as f:
            f.write("\n" + md)
    return summary


def _copy_base_results(src: Path, out: Path) -> None:
    """Seed ``out`` with ``src``'s base perplexities and base answers; the harness then resumes
    from those answers (only items they lack are scored)."""
    import shutil

    if not (src / "base_ppl.json").exists():
        raise FileNotFoundError(f"{src / 'base_ppl.json'} not found: --base-from must be an earlier experiment")
    if not (out / "base_ppl.json").exists():
        shutil.copy2(src / "base_ppl.json", out / "base_ppl.json")
    for d in ("eval-base", "permute-base", "options-base"):
        if (src / d).is_dir() and not (out / d).exists():
            shutil.copytree(src / d, out / d)  # a copy: the harness appends to it


def _cached(path: Path, fn):
    if path.exists():
        return json.loads(path.read_text())
    val = fn()
    path.write_text(json.dumps(val))
    return val


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


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def render_html(md: str, png: bytes | None) -> str:
    """The Markdown report as one self-contained HTML page, the loss curve inlined."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(md)
    img = f'<p><img alt="loss curve" src="{png_data_uri(png)}"></p>' if png else ""
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
             "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem}"
             "th{background:#f3f3f3}code{background:#f6f6f6;padding:0 .2rem}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>secfoundry replication experiment</title>"
            f"<style>{style}</style></head><body>{body}{img}</body></html>")


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
