from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from secfoundry.cli import app
from secfoundry.train.config import TrainConfig

from .conftest import TINY_LLAMA

REPO = Path(__file__).resolve().parents[2]


def test_train_run_and_export_cli(tiny_shards, tmp_path):
    cfg = {"model": {"init_config": TINY_LLAMA}, "data": {"shards": str(tiny_shards)},
           "out_dir": str(tmp_path / "run"), "micro_batch_size": 2, "max_steps": 4, "log_every": 2,
           "save_every": 2, "schedule": {"warmup_steps": 1}}
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["train", "run", str(p), "--no-progress", "--set", "optim.lr=1e-3"])
    assert r.exit_code == 0, r.output
    assert "training summary" in r.output
    ck = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))[-1]
    r = CliRunner().invoke(app, ["train", "export", str(ck), "--out", str(tmp_path / "hf")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "hf" / "model.safetensors").exists()


def test_shipped_recipes_parse():
    for name in ("smollm2-135m-cpt.yaml", "foundation-sec-8b.yaml"):
        cfg = TrainConfig.from_yaml(REPO / "configs" / "train" / name)
        assert cfg.optim.lr > 0 and cfg.max_steps > 0
    big = TrainConfig.from_yaml(REPO / "configs" / "train" / "foundation-sec-8b.yaml")
    assert big.data.seq_len == 4096 and big.mixed_precision == "bf16"
    for f in (REPO / "configs" / "accelerate").glob("*.yaml"):
        d = yaml.safe_load(f.read_text())
        assert d["distributed_type"] in {"DEEPSPEED", "FSDP"}
