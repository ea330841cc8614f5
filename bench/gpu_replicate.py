"""The replication experiment at GPU scale (issue #15 item 5), run by bench/gpu_check.sh on the
device from the bundle bench/gpu_prepare.py wrote: SmolLM2-135M continued on the quickstart
corpus for >= 100 M tokens (the corpus has 16.5 M training tokens: ~6 epochs, each source in a
new seeded order per epoch), evaluated exactly as ``secfoundry experiment replicate`` evaluates
(held-out security and general perplexity, CTIBench-MCQ / CyberMetric-500 / SecEval 5-shot
letter log-probabilities, rotation-averaged CTIBench-MCQ, option-text scoring), on the GPU.

It is ``experiment.replicate`` itself, run in two steps so the training fits the call:
1. the base model's evaluation (``replicate._evaluate``, cached in the run directory), timed;
2. the step count: as many steps of ``micro_batch x seq`` tokens as fit before ``--deadline``
   at the tokens/s the calibration run measured (the smollm2-135m throughput run, same
   micro-batch and sequence length), leaving the time step 1 took for the continued model's
   evaluation, capped at ``--target-tokens``; then ``replicate()`` (base results reused) trains,
   evaluates and writes report.md/html + summary.json.
``sizing.json`` says what was planned and why; ``comparison.md`` puts the GPU run beside the CPU
run RESULTS.md reports.

    python bench/gpu_replicate.py --data BUNDLE/data --out RUN --deadline EPOCH \
        --calibration RESULTS/smollm2-135m/metrics.jsonl [--dry]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# RESULTS.md, "Replication experiment": runs/replicate, 2026-11-29, 2-core CPU, 250 steps x 4,096
# tokens = 1,024,000 tokens, final train loss 1.7764 (rotation/options: first 400 questions).
CPU_RUN = {
    "tokens": 1_024_000, "final_loss": 1.7764,
    "base": {"security_ppl": 13.622, "general_ppl": 24.960, "ctibench-mcq": 33.75, "cybermetric-500": 26.06,
             "seceval": 17.54, "rotation": 24.94, "options_acc": 25.25, "options_acc_norm": 38.25},
    "cpt": {"security_ppl": 5.491, "general_ppl": 20.381, "ctibench-mcq": 37.07, "cybermetric-500": 25.25,
            "seceval": 11.03, "rotation": 25.00, "options_acc": 27.50, "options_acc_norm": 38.25},
}
BENCHMARKS = ["ctibench-mcq", "cybermetric-500", "seceval"]


def calibration(metrics: Path) -> dict:
    """tokens/s (median over the logged intervals after the first, which holds torch.compile)
    and the start-up seconds (model load + compile: first interval minus its tokens at that rate)."""
    recs = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    steps = [r for r in recs if "tokens_per_s" in r]
    if len(steps) < 2:
        raise ValueError(f"{metrics}: {len(steps)} logged intervals, need 2 or more to calibrate")
    tps = statistics.median(r["tokens_per_s"] for r in steps[1:])
    startup = max(0.0, steps[0]["elapsed_s"] - steps[0]["tokens"] / tps)
    return {"tokens_per_s": tps, "startup_s": startup, "mfu": statistics.median(r.get("mfu", 0) for r in steps[1:])}


def calibration_or_plan(metrics: Path | None) -> dict:
    """``calibration(metrics)``; when that run failed, ``train plan``'s prediction for it (the
    ``plan-smollm2-135m.json`` beside its folder, 40% MFU) scaled to 25% MFU, 60 s start-up."""
    try:
        return calibration(metrics)
    except (OSError, TypeError, ValueError, KeyError) as e:
        pf = metrics.parent.parent / "plan-smollm2-135m.json" if metrics else None
        plan = json.loads(pf.read_text()) if pf and pf.exists() else {}
        tps = float(plan.get("tokens_per_s") or 0) * 0.25 / 0.4 or 100_000.0
        print(f"[gpu_replicate] no calibration ({type(e).__name__}: {e}); assuming {tps:,.0f} tokens/s", flush=True)
        return {"tokens_per_s": tps, "startup_s": 60.0, "mfu": None, "fallback": f"{type(e).__name__}: {e}"}


def plan_steps(now: float, deadline: float, base_eval_s: float, cal: dict, tokens_per_step: int,
               target_tokens: int, fixed_s: float = 30.0) -> dict:
    """Steps that fit: the time left minus the continued model's evaluation (as long as the
    base's took, +10%), the trainer's start-up (calibrated) and ``fixed_s`` (held-out evals during
    training, final checkpoint + export, report: ~20 s for 135M on a GPU), at 95% of the calibrated
    tokens/s. With the call-2 budget (480 s) 100 M tokens fit at ~40% MFU if each evaluation takes
    <= ~30 s; otherwise fewer are trained, and sizing.json / summary.md say so."""
    reserve = base_eval_s * 1.1 + cal["startup_s"] + fixed_s
    train_s = deadline - now - reserve
    fit = max(0, int(train_s * cal["tokens_per_s"] * 0.95 // tokens_per_step))
    want = math.ceil(target_tokens / tokens_per_step)
    steps = min(fit, want)
    return {"steps": steps, "tokens": steps * tokens_per_step, "target_tokens": target_tokens,
            "target_steps": want, "fit_steps": fit, "train_budget_s": round(train_s, 1),
            "reserved_s": round(reserve, 1), "expected_train_s": round(steps * tokens_per_step / cal["tokens_per_s"], 1),
            "capped_by_time": fit < want}


def comparison(summary: dict, sizing: dict, corpus_tokens: int) -> str:
    """The GPU run beside the CPU run of RESULTS.md (base and continued, both)."""
    b, c = summary["base"], summary.get("cpt")

    def get(ev: dict | None, key: str):
        if not ev:
            return None
        if key.endswith("_ppl"):
            return ev["ppl"].get(key)
        if key == "rotation":
            return (ev.get("rotation") or {}).get("variant_mean")
        if key.startswith("options_"):
            return (ev.get("options") or {}).get({"options_acc": "accuracy", "options_acc_norm": "acc_norm"}[key])
        r = ev["bench"].get(key)
        return None if r is None else r["score"] * (100 if r["score"] <= 1 else 1)

    def f(v, ppl):
        return "-" if v is None else (f"{v:.3f}" if ppl else f"{v:.2f}")

    tok = summary.get("train", {}).get("tokens") or 0
    run = "GPU" if sizing.get("device", "cuda") == "cuda" else f"this run ({sizing['device']})"
    lines = [f"| metric | CPU base | CPU continued ({CPU_RUN['tokens'] / 1e6:.2f} M tokens) | {run} base | "
             f"{run} continued ({tok / 1e6:.1f} M tokens, {tok / max(corpus_tokens, 1):.1f} epochs) |",
             "|---|---:|---:|---:|---:|"]
    labels = [("security_ppl", "held-out security perplexity"), ("general_ppl", "held-out general perplexity"),
              ("ctibench-mcq", "CTIBench-MCQ letters (5-shot)"), ("cybermetric-500", "CyberMetric-500 letters"),
              ("seceval", "SecEval letters"), ("rotation", "CTIBench-MCQ rotation-averaged (first 400)"),
              ("options_acc", "CTIBench-MCQ option texts, accuracy (first 400)"),
              ("options_acc_norm", "CTIBench-MCQ option texts, acc_norm (first 400)")]
    for key, label in labels:
        ppl = key.endswith("_ppl")
        lines.append(f"| {label} | {f(CPU_RUN['base'][key], ppl)} | {f(CPU_RUN['cpt'][key], ppl)} | "
                     f"{f(get(b, key), ppl)} | {f(get(c, key), ppl)} |")
    fl = summary.get("train", {}).get("final_loss")
    lines.append(f"| final train loss | | {CPU_RUN['final_loss']:.4f} | | {'-' if fl is None else f'{fl:.4f}'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="unpacked bundle data/: corpus/shards, general-heldout, benchmarks")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--deadline", type=float, default=0.0, help="epoch seconds by which everything must be done (0: none)")
    ap.add_argument("--calibration", type=Path, help="metrics.jsonl of the calibration (throughput) run")
    ap.add_argument("--micro-batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--target-tokens", type=int, default=100_000_000)
    ap.add_argument("--lr", type=float, default=1e-4, help="the recipe's peak LR (kept)")
    ap.add_argument("--warmup-frac", type=float, default=0.03)
    ap.add_argument("--peak-flops", type=float, default=0.0)
    ap.add_argument("--eval-batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=0, help="fixed step count (no sizing; the CPU dry run)")
    ap.add_argument("--dry", action="store_true", help="small evaluation slices (CPU dry run)")
    a = ap.parse_args()
    t0 = time.time()

    import torch

    from secfoundry.experiment import replicate as R
    from secfoundry.experiment.config import ReplicateConfig
    from secfoundry.models.embedded import ensure_converted

    device = "cuda" if torch.cuda.is_available() else "cpu"
    a.out.mkdir(parents=True, exist_ok=True)
    shards = a.data / "corpus" / "shards"
    corpus_tokens = sum(int(m["n_tokens"]) for m in json.loads((shards / "manifest.json").read_text())
                        ["splits"]["train"].values())
    if not (a.out / "general-heldout" / "manifest.json").exists():  # packed here, from general texts
        shutil.copytree(a.data / "general-heldout", a.out / "general-heldout", dirs_exist_ok=True)
    limits = (dict(eval_limit=8, permute_limit=4, option_limit=4, ppl_batches=1) if a.dry else {})
    tokens_per_step = a.micro_batch * a.seq
    base_overrides = [f"micro_batch_size={a.micro_batch}", "grad_accum=1", f"data.seq_len={a.seq}",
                      f"optim.lr={a.lr}", "save_every=0", "keep_checkpoints=1",
                      f"log_every={1 if a.dry else 25}", f"eval_batches={1 if a.dry else 16}",
                      f"peak_flops={a.peak_flops}"] + (["compile=false", "threads=2"] if a.dry else [])

    def cfg(extra: list[str]) -> ReplicateConfig:
        return ReplicateConfig(out=a.out, corpus_dir=shards.parent, benchmarks=list(BENCHMARKS), device=device,
                               eval_batch_size=a.eval_batch_size, train_overrides=base_overrides + extra, **limits)

    base_cfg = cfg([])
    base = ensure_converted()
    general = R.general_heldout(base_cfg.corpus_recipe, a.out / "general-heldout", a.seq)
    print(f"[gpu_replicate] device {device}; corpus {corpus_tokens:,} training tokens; evaluating the base model", flush=True)
    t = time.time()
    R._evaluate(base, "base", base_cfg, a.out, shards, a.seq, general)
    base_eval_s = time.time() - t
    print(f"[gpu_replicate] base evaluation: {base_eval_s:.1f} s", flush=True)

    sizing: dict = {"device": device, "torch": torch.__version__, "base_eval_s": round(base_eval_s, 1),
                    "micro_batch": a.micro_batch, "seq": a.seq, "tokens_per_step": tokens_per_step,
                    "corpus_train_tokens": corpus_tokens, "lr": a.lr}
    if a.steps:
        sizing.update(steps=a.steps, tokens=a.steps * tokens_per_step, fixed=True)
    else:
        cal = calibration_or_plan(a.calibration)
        sizing["calibration"] = cal
        sizing.update(plan_steps(time.time(), a.deadline, base_eval_s, cal, tokens_per_step, a.target_tokens))
    steps = sizing["steps"]
    sizing["epochs"] = round(steps * tokens_per_step / corpus_tokens, 2)
    (a.out / "sizing.json").write_text(json.dumps(sizing, indent=1) + "\n")
    print(f"[gpu_replicate] sizing: {json.dumps(sizing)}", flush=True)
    if steps < (1 if a.dry else 50):
        print(f"[gpu_replicate] NOT training: only {steps} steps fit before the deadline", flush=True)
        summary = {"base": json.loads(json.dumps(R._evaluate(base, "base", base_cfg, a.out, shards, a.seq, general),
                                                 default=str)), "train": {"tokens": 0}}
    else:
        warm = max(1, int(steps * a.warmup_frac))
        run_cfg = cfg([f"max_steps={steps}", f"schedule.warmup_steps={warm}",
                       f"eval_every={max(1, steps // 4)}"])
        summary = R.replicate(run_cfg, say=lambda m: print(f"[gpu_replicate] {m}", flush=True))
        sizing["train_s"] = round(summary["timings"]["train_s"], 1)
        sizing["eval_cpt_s"] = round(summary["timings"]["eval_cpt_s"], 1)
    sizing["total_s"] = round(time.time() - t0, 1)
    (a.out / "sizing.json").write_text(json.dumps(sizing, indent=1) + "\n")
    (a.out / "comparison.md").write_text(comparison(summary, sizing, corpus_tokens))
    print((a.out / "comparison.md").read_text(), flush=True)


if __name__ == "__main__":
    main()
