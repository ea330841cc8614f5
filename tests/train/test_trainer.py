from __future__ import annotations

import json

import pytest
import torch

from secfoundry.train.config import TrainConfig
from secfoundry.train.trainer import Trainer

from .conftest import TINY_LLAMA, make_shards


def _cfg(shards, out, **kw) -> TrainConfig:
    d = {
        "model": {"init_config": TINY_LLAMA},
        "data": {"shards": str(shards)},
        "optim": {"lr": 3e-3, "fused": True},
        "schedule": {"kind": "cosine", "warmup_steps": 2},
        "out_dir": str(out), "micro_batch_size": 2, "grad_accum": 2, "max_steps": 6,
        "log_every": 1, "eval_batches": 2, "mixed_precision": "bf16", "seed": 7,
    }
    for k, v in kw.items():
        d[k] = v
    return TrainConfig.from_dict(d)


def _losses(out):
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_training_reduces_loss_and_exports(tiny_shards, tmp_path):
    cfg = _cfg(tiny_shards, tmp_path / "run", max_steps=30, log_every=5)
    res = Trainer(cfg).run(progress=False)
    losses = _losses(tmp_path / "run")
    assert res.steps == 30 and len(losses) == 6
    assert losses[-1] < losses[0] - 0.5
    assert "eval_security_ppl" in res.evals
    # The export is a plain HF model directory.
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(res.export_dir)
    assert m.config.num_hidden_layers == 2


def test_exact_resume_matches_uninterrupted(tiny_shards, tmp_path):
    torch.use_deterministic_algorithms(True)
    try:
        full = _cfg(tiny_shards, tmp_path / "full")
        Trainer(full).run(progress=False)
        ref = _losses(tmp_path / "full")

        part = _cfg(tiny_shards, tmp_path / "part")
        r1 = Trainer(part, stop_after=3).run(progress=False)  # "killed" after step 3 (checkpoint written)
        assert r1.steps == 3
        Trainer(part).run(resume=True, progress=False)
        got = _losses(tmp_path / "part")
    finally:
        torch.use_deterministic_algorithms(False)
    assert len(got) == len(ref) == 6
    assert got == pytest.approx(ref, rel=0, abs=1e-6)


def test_resuming_a_finished_run_changes_nothing(tiny_shards, tmp_path):
    cfg = _cfg(tiny_shards, tmp_path / "run", max_steps=4)
    first = Trainer(cfg).run(progress=False)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    again = Trainer(cfg).run(resume=True, progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before  # no second eval/save logged
    assert again.steps == 4 and again.final_loss == pytest.approx(first.final_loss)
    assert again.evals["eval_security_ppl"] == pytest.approx(first.evals["eval_security_ppl"])
    assert again.export_dir == tmp_path / "run" / "final"


def test_replay_mixing_and_weights(tmp_path):
    sec = make_shards(tmp_path / "sec", {"attack": 30, "cwe": 30})
    gen = make_shards(tmp_path / "gen", {"wikitext": 30}, seed=1)
    from secfoundry.train.data import MixedBatches

    mb = MixedBatches(sec, weights={"attack": 3.0, "cwe": 1.0}, replay_shards=gen, replay_ratio=0.25,
                      micro_batch_size=8, seed=0)
    for _ in range(100):
        mb.next_batch()
    n = sum(mb.drawn.values())
    assert abs(mb.drawn["replay:wikitext"] / n - 0.25) < 0.05
    assert abs(mb.drawn["attack"] / n - 0.75 * 0.75) < 0.06
    # Resumed iterator yields the same batches.
    st = mb.state_dict()
    a = [mb.next_batch() for _ in range(3)]
    mb2 = MixedBatches(sec, weights={"attack": 3.0, "cwe": 1.0}, replay_shards=gen, replay_ratio=0.25,
                       micro_batch_size=8, seed=0)
    mb2.load_state_dict(json.loads(json.dumps(st)))
    b = [mb2.next_batch() for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_config_yaml_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  name_or_path: smollm2-135m-instruct\noptim:\n  lr: 1.0e-4\nmax_steps: 10\n")
    cfg = TrainConfig.from_yaml(p, overrides=["optim.lr=2e-5", "schedule.kind=wsd"])
    assert cfg.optim.lr == 2e-5 and cfg.schedule.kind == "wsd" and cfg.max_steps == 10
    with pytest.raises(ValueError, match="unknown key"):
        TrainConfig.from_dict({"optim": {"learning_rate": 1}})


def test_schedules():
    from secfoundry.train.config import OptimConfig, ScheduleConfig
    from secfoundry.train.schedule import lr_at

    o = OptimConfig(lr=1.0, min_lr_ratio=0.1)
    cos = ScheduleConfig(kind="cosine", warmup_steps=10)
    assert lr_at(0, 100, o, cos) == pytest.approx(0.1)
    assert lr_at(9, 100, o, cos) == pytest.approx(1.0)
    assert lr_at(100, 100, o, cos) == pytest.approx(0.1)
    wsd = ScheduleConfig(kind="wsd", warmup_steps=10, decay_fraction=0.2)
    assert lr_at(50, 100, o, wsd) == pytest.approx(1.0)
    assert lr_at(100, 100, o, wsd) == pytest.approx(0.1)


def test_rows_are_cut_not_cropped_and_eval_groups(tmp_path):
    from secfoundry.train.data import MixedBatches, eval_batches, is_general

    sh = make_shards(tmp_path / "s", {"attack": 10, "general:wikitext": 10}, seq_len=32)
    mb = MixedBatches(sh, seq_len=8, micro_batch_size=4, seed=0)
    assert sum(len(s.source) for s in mb.streams) == 4 * 20  # every 32-token row gives four 8-token rows
    sec = list(eval_batches(sh, "test", 8, 4, 0, sources=lambda s: not is_general(s)))
    gen = list(eval_batches(sh, "test", 8, 4, 0, sources=is_general))
    assert sum(len(b) for b in sec) == 4 * 2 and sum(len(b) for b in gen) == 4 * 2
