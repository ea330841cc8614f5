"""The replication experiment: does continued pretraining on our corpus make the embedded model
better at security without making it worse at everything else?

corpus quickstart -> evaluate base -> continued pretraining -> evaluate the result with the same
harness settings -> report (table with CIs, loss curve) in the run directory, and appended to
``results_md`` (e.g. RESULTS.md) only when that is set. Every step resumes: the corpus runner,
the eval runner (samples.jsonl) and the trainer (checkpoints).
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from secfoundry.experiment.config import ReplicateConfig
from secfoundry.experiment.report import write_reports


def general_heldout(recipe: Path, out: Path, seq_len: int, take: int = 60) -> Path | None:
    """Pack general text the corpus never saw: the documents after the recipe's ``max_docs`` of
    each general-text file (same distributions as the replay, disjoint documents)."""
    from secfoundry.corpus.collect.general import general_files, iter_general_documents
    from secfoundry.corpus.engine.recipe import Recipe
    from secfoundry.corpus.prepare.pack import PackConfig, pack_partition, write_manifest

    if (out / "manifest.json").exists():
        return out
    rows = []
    for inp in Recipe.from_yaml(recipe).inputs:
        if inp.kind != "general":
            continue
        skip = int(inp.max_docs or 0)  # type: ignore[attr-defined]
        base = Path(inp.path)  # type: ignore[attr-defined]
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
                         max_batches: int = 0, general_shards: Path | None = None,
                         device: str = "cpu") -> dict[str, float]:
    """Security (corpus test split) and general (held-out general text when given, else the
    corpus test split's general:* sources) perplexity of an HF model directory (fp32 weights,
    bf16 autocast), on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM

    from secfoundry.train.data import is_general
    from secfoundry.train.trainer import heldout_loss

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), torch_dtype=torch.float32)
    model.to(device).eval()
    # bf16 autocast on a GPU as on the CPU (heldout_loss's default autocast is the CPU's)
    cuda_bf16 = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if str(device).startswith("cuda") else None
    out = {}
    sets = [("security", shards, lambda s: not is_general(s)),
            ("general", general_shards, None) if general_shards else ("general", shards, is_general)]
    for name, sh, sel in sets:
        loss = heldout_loss(model, sh, "test", seq_len, batch, max_batches, sel, device=device, autocast=cuda_bf16)
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
                   mode="logprob", shots=cfg.shots, instruct=False, limit=limit, batch_size=cfg.eval_batch_size,
                   model_options={"device": cfg.device, "batch_size": cfg.eval_batch_size}, **extra)
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


def _rotation_check(model_dir: Path, cfg: ReplicateConfig, out: Path) -> dict[str, Any] | None:
    """CTIBench-MCQ with --permute on the first ``permute_limit`` questions (same prompts as _eval)."""
    if not cfg.permute_limit or "ctibench-mcq" not in cfg.benchmarks:
        return None
    return _run_eval(model_dir, cfg, out, ["ctibench-mcq"], cfg.permute_limit, permute=True)["ctibench-mcq"].get("permute")


def replicate(cfg: ReplicateConfig, say=print) -> dict[str, Any]:
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
        from secfoundry.corpus.pipeline import run_recipe  # Ray: only when the corpus is built here

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
    base_eval = _evaluate(base, "base", cfg, out, shards, seq_len, general)
    timings["eval_base_s"] = time.time() - t

    t = time.time()
    say(f"[3/5] continued pretraining: {tcfg.max_steps} steps x {tcfg.micro_batch_size * tcfg.grad_accum * seq_len:,} tokens")
    result = Trainer(tcfg).run(resume=True)
    timings["train_s"] = time.time() - t
    cpt = result.export_dir or (out / "train" / "final")

    t = time.time()
    say("[4/5] evaluate the continued model")
    cpt_eval = _evaluate(cpt, "cpt", cfg, out, shards, seq_len, general)
    timings["eval_cpt_s"] = time.time() - t

    say("[5/5] report")
    summary = {"base": base_eval, "cpt": cpt_eval,
               "train": {"steps": result.steps, "tokens": result.tokens, "final_loss": result.final_loss},
               "timings": timings, "command": " ".join(shlex.quote(a) for a in sys.argv)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    md = write_reports(out)
    if cfg.results_md:
        with Path(cfg.results_md).open("a") as f:
            f.write("\n" + md)
    return summary


def _evaluate(model_dir: Path, tag: str, cfg: ReplicateConfig, out: Path, shards: Path, seq_len: int,
              general: Path | None) -> dict[str, Any]:
    """Perplexities, benchmarks, rotation check and option scoring of one model ("base"/"cpt"),
    each cached or resumed under ``out``."""
    ppl = _cached(out / f"{tag}_ppl.json", lambda: heldout_perplexities(
        model_dir, shards, seq_len, max_batches=cfg.ppl_batches, general_shards=general, device=cfg.device))
    return {"ppl": ppl, "bench": _eval(model_dir, cfg, out / f"eval-{tag}"),
            "rotation": _rotation_check(model_dir, cfg, out / f"permute-{tag}"),
            "options": _option_scoring(model_dir, cfg, out / f"options-{tag}")}


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
