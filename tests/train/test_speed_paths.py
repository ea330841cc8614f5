"""The trainer's speed paths (fused loss, compiled layers) train the same as the plain HF path."""

from __future__ import annotations

import json

import pytest

from secfoundry.train.config import TrainConfig
from secfoundry.train.trainer import Trainer

from .conftest import TINY_LLAMA


def _run(shards, out, **kw):
    d = {"model": {"init_config": TINY_LLAMA}, "data": {"shards": str(shards)},
         "optim": {"lr": 3e-3}, "schedule": {"warmup_steps": 1}, "out_dir": str(out),
         "micro_batch_size": 2, "grad_accum": 2, "max_steps": 4, "log_every": 1, "eval_batches": 1, "seed": 3, **kw}
    tr = Trainer(TrainConfig.from_dict(d))
    res = tr.run(progress=False)
    losses = [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    return tr, res, losses


def test_fused_loss_and_compiled_layers_match_hf_path(tiny_shards, tmp_path):
    hf_tr, hf_res, hf = _run(tiny_shards, tmp_path / "hf", loss_chunk=0)
    assert not hf_tr.fused_loss
    fu_tr, fu_res, fused = _run(tiny_shards, tmp_path / "fused", loss_chunk=16)  # several chunks per batch
    assert fu_tr.fused_loss
    co_tr, co_res, comp = _run(tiny_shards, tmp_path / "compiled", compile="layers")
    # bf16 autocast: the paths round differently, the curves agree closely.
    assert fused == pytest.approx(hf, rel=2e-3)
    assert comp == pytest.approx(hf, rel=2e-2)
    assert fu_res.evals["eval_security_loss"] == pytest.approx(hf_res.evals["eval_security_loss"], rel=2e-3)
    # Compiling in place keeps parameter names: the export is a plain HF directory.
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(co_res.export_dir)
    assert m.config.num_hidden_layers == TINY_LLAMA["num_hidden_layers"]


def test_compile_mode_values():
    from secfoundry.train.model import compile_mode

    assert compile_mode(False) == compile_mode(None) == compile_mode("none") == "none"
    assert compile_mode("auto", max_steps=10) == "none"  # short runs: compiling would dominate
    assert compile_mode("auto", max_steps=400) == "layers"
    assert compile_mode("auto", max_steps=400, distributed="DEEPSPEED") == "none"
    assert compile_mode(True) == compile_mode("layers") == "layers"
    assert compile_mode("model") == "model"
    with pytest.raises(ValueError, match="compile"):
        compile_mode("everything")
