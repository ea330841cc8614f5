"""The GPU-scale replication's pieces that run without a GPU: the experiment's evaluation device,
bench/gpu_replicate.py's sizing and comparison table, bench/gpu_check.py's summary of it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gr = _load("gpu_replicate")
gc = _load("gpu_check")


def test_experiment_evaluates_on_the_configured_device(tmp_path, monkeypatch):
    import secfoundry.eval.runner as runner
    from secfoundry.experiment.replicate import ReplicateConfig, _eval

    seen = []

    class _Run:
        results = {"ok": True}

    monkeypatch.setattr(runner, "run_eval", lambda rc: seen.append(rc) or _Run())
    _eval(tmp_path / "m", ReplicateConfig(device="cuda", eval_batch_size=64), tmp_path / "e")
    _eval(tmp_path / "m", ReplicateConfig(), tmp_path / "e2")
    assert (seen[0].model_options, seen[0].batch_size) == ({"device": "cuda", "batch_size": 64}, 64)
    assert (seen[1].model_options, seen[1].batch_size) == ({"device": "cpu", "batch_size": 16}, 16)


def _metrics(tmp_path: Path) -> Path:
    m = tmp_path / "metrics.jsonl"
    recs = [{"step": 10, "loss": 3.0, "tokens": 327_680, "tokens_per_s": 50_000.0, "elapsed_s": 36.55, "mfu": 0.05},
            {"step": 20, "loss": 2.9, "tokens": 655_360, "tokens_per_s": 300_000.0, "elapsed_s": 37.6, "mfu": 0.3},
            {"step": 30, "loss": 2.8, "tokens": 983_040, "tokens_per_s": 320_000.0, "elapsed_s": 38.6, "mfu": 0.32},
            {"step": 30, "eval_security_loss": 2.7}]
    m.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return m


def test_calibration_reads_rate_and_startup(tmp_path):
    cal = gr.calibration(_metrics(tmp_path))
    assert cal["tokens_per_s"] == 310_000.0 and abs(cal["mfu"] - 0.31) < 1e-9
    assert abs(cal["startup_s"] - (36.55 - 327_680 / 310_000)) < 1e-6


def test_failed_calibration_falls_back_to_the_plan(tmp_path):
    (tmp_path / "smollm2-135m").mkdir()
    missing = tmp_path / "smollm2-135m" / "metrics.jsonl"
    assert gr.calibration_or_plan(missing)["tokens_per_s"] == 100_000.0
    (tmp_path / "plan-smollm2-135m.json").write_text(json.dumps({"tokens_per_s": 433_349.0}))
    cal = gr.calibration_or_plan(missing)
    assert abs(cal["tokens_per_s"] - 433_349.0 * 0.25 / 0.4) < 1e-6 and "fallback" in cal
    missing.write_text(json.dumps({"step": 10, "tokens_per_s": 1.0, "tokens": 1, "elapsed_s": 1.0}) + "\n")
    assert "fallback" in gr.calibration_or_plan(missing)  # one interval is not a calibration


def test_plan_steps_fits_the_time_left_and_caps_at_the_target():
    cal = {"tokens_per_s": 300_000.0, "startup_s": 30.0}
    tps = 64 * 512
    # 500 s left, base eval took 40 s: 500 - 44 - 30 - 30 = 396 s of training
    p = gr.plan_steps(1000.0, 1500.0, 40.0, cal, tps, 100_000_000)
    assert p["train_budget_s"] == 396.0 and p["capped_by_time"] is False
    assert p["steps"] == p["target_steps"] == 3052 and p["tokens"] >= 100_000_000
    p = gr.plan_steps(1000.0, 1300.0, 40.0, cal, tps, 100_000_000)
    assert p["capped_by_time"] is True and p["steps"] == int(196 * 300_000 * 0.95 // tps)
    assert gr.plan_steps(1000.0, 1050.0, 40.0, cal, tps, 100_000_000)["steps"] == 0


def test_comparison_puts_the_gpu_run_beside_the_cpu_run():
    ev = lambda sec, cti: {"ppl": {"security_ppl": sec, "general_ppl": 21.0},
                           "bench": {"ctibench-mcq": {"score": cti}, "cybermetric-500": {"score": 25.0}},
                           "rotation": {"variant_mean": 26.5}, "options": {"accuracy": 30.0, "acc_norm": 40.0}}
    s = {"base": ev(13.5, 33.9), "cpt": ev(4.2, 37.07), "train": {"tokens": 100_007_936, "final_loss": 1.2}}
    md = gr.comparison(s, {}, 16_537_600)
    assert "GPU continued (100.0 M tokens, 6.0 epochs)" in md
    assert "| held-out security perplexity | 13.622 | 5.491 | 13.500 | 4.200 |" in md
    assert "| SecEval letters | 17.54 | 11.03 | - | - |" in md
    assert "| CTIBench-MCQ rotation-averaged (first 400) | 24.94 | 25.00 | 26.50 | 26.50 |" in md
    assert "| final train loss | | 1.7764 | | 1.2000 |" in md
    assert "| CTIBench-MCQ option texts, accuracy (first 400) | 25.25 | 27.50 | 30.00 | 30.00 |" in md
    assert "| CTIBench-MCQ option texts, acc_norm (first 400) | 38.25 | 38.25 | 40.00 | 40.00 |" in md
    assert "| this run (cpu) base |" in gr.comparison(s, {"device": "cpu"}, 16_537_600)
    base_only = gr.comparison({"base": ev(13.5, 33.9), "train": {"tokens": 0}}, {}, 16_537_600)
    assert "| CTIBench-MCQ letters (5-shot) | 33.75 | 37.07 | 33.90 | - |" in base_only


def test_summary_includes_the_replication_and_one_metrics_file(tmp_path):
    res_dir, rep = tmp_path / "results", tmp_path / "replicate"
    (res_dir / "smollm2-135m").mkdir(parents=True)
    (rep / "train").mkdir(parents=True)
    m = _metrics(tmp_path)
    (res_dir / "smollm2-135m" / "metrics.jsonl").write_text(m.read_text())
    (rep / "train" / "metrics.jsonl").write_text(m.read_text())
    (res_dir / "info-smollm2-135m.txt").write_text("SmolLM2-135M shape, random init, quickstart shards\n")
    (res_dir / "failures.txt").write_text("FAILED: llama-1b train run\n")
    (rep / "sizing.json").write_text(json.dumps({"device": "cuda", "steps": 3052, "tokens": 100_007_936,
                                                 "epochs": 6.05, "micro_batch": 64, "seq": 512}))
    (rep / "summary.json").write_text(json.dumps({"train": {"tokens": 100_007_936},
                                                  "base": {"options": {"accuracy": 25.0, "items": {"a": [1, 0]}}}}))
    (rep / "comparison.md").write_text("| metric | CPU base |\n")
    res = gc.summary(res_dir, rep)
    assert res["runs"]["smollm2-135m"]["tokens_per_s"] == 310_000.0
    assert "items" not in res["replication"]["experiment"]["base"]["options"]
    md = gc.markdown(res)
    assert "SmolLM2-135M shape, random init, quickstart shards" in md and "## Replication at GPU scale" in md
    assert "planned 3052 steps = 100,007,936 tokens (6.05 epochs" in md and "- FAILED: llama-1b train run" in md
    lines = [json.loads(x) for x in gc.combined_metrics(res_dir, rep).splitlines()]
    assert {r["run"] for r in lines} == {"smollm2-135m", "replication"} and len(lines) == 8
