"""``secfoundry train plan``: meta-device sizing of a recipe (parameters, memory, throughput)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from secfoundry.cli import app
from secfoundry.train.config import ModelConfig
from secfoundry.train.model import load_model
from secfoundry.train.plan import GPUS, GiB, make_plan, read_topology

from .conftest import TINY_LLAMA

REPO = Path(__file__).resolve().parents[2]


def recipe(tmp_path: Path, name: str = "cfg.yaml", **kw) -> Path:
    cfg = {"model": {"init_config": kw.pop("init_config", TINY_LLAMA)}, "data": {"seq_len": 64},
           "micro_batch_size": 2, "grad_accum": 3, "max_steps": 10, "mixed_precision": "bf16"}
    cfg.update(kw)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.parametrize("tied", [True, False])
def test_params_equal_a_real_instantiated_model(tmp_path, tied):
    init = dict(TINY_LLAMA, tie_word_embeddings=tied)
    plan = make_plan(recipe(tmp_path, init_config=init))
    real = load_model(ModelConfig(init_config=init))
    assert plan.params == sum(p.numel() for p in real.parameters())
    emb = init["vocab_size"] * init["hidden_size"]
    assert plan.params_embedding == emb
    # Tied: the head is the embedding and still a matmul; untied: the lookup is excluded.
    assert plan.params_matmul == (plan.params if tied else plan.params - emb)


def test_model_state_memory_per_stage(tmp_path):
    cfg = recipe(tmp_path)
    n = make_plan(cfg).params
    single = make_plan(cfg, gpus=1)
    assert single.topology["engine"] == "single" and single.bytes_per_param == {"params": 4, "grads": 4, "optimizer": 8}
    assert single.memory_gib["params"] == pytest.approx(n * 4 / GiB)
    assert single.memory_gib["optimizer"] == pytest.approx(n * 8 / GiB)
    z3 = make_plan(cfg, gpus=4, stage="zero3")  # DeepSpeed bf16: 2 + 2 + 12 (ZeRO paper)
    assert z3.topology["engine"] == "deepspeed"
    assert z3.memory_gib["params"] == pytest.approx(n * 2 / 4 / GiB)
    assert z3.memory_gib["grads"] == pytest.approx(n * 2 / 4 / GiB)
    assert z3.memory_gib["optimizer"] == pytest.approx(n * 12 / 4 / GiB)
    assert z3.memory_gib["gathered_layers"] > 0
    z1 = make_plan(cfg, gpus=4, stage="zero1")
    assert z1.memory_gib["params"] == pytest.approx(n * 2 / GiB) and z1.memory_gib["grads"] == pytest.approx(n * 2 / GiB)
    assert z1.memory_gib["optimizer"] == pytest.approx(n * 12 / 4 / GiB) and z1.memory_gib["gathered_layers"] == 0
    z2 = make_plan(cfg, gpus=4, stage="zero2")
    assert z2.memory_gib["grads"] == pytest.approx(n * 2 / 4 / GiB) and z2.memory_gib["params"] == pytest.approx(n * 2 / GiB)
    fsdp = make_plan(cfg, gpus=8, stage="fsdp")  # this trainer under FSDP: fp32 sharded master weights
    assert fsdp.memory_gib["params"] == pytest.approx(n * 4 / 8 / GiB)
    assert fsdp.memory_gib["optimizer"] == pytest.approx(n * 8 / 8 / GiB)


def test_activation_memory_formula(tmp_path):
    t = TINY_LLAMA
    h, L, ffn, a = t["hidden_size"], t["num_hidden_layers"], t["intermediate_size"], t["num_attention_heads"]
    h_kv = t["num_key_value_heads"] * h // a
    s, b = 64, 2
    p = make_plan(recipe(tmp_path, loss_chunk=0))
    per_layer = s * b * (12 * h + 4 * h_kv + 8 * ffn)
    head = s * b * h * 4 + s * b * t["vocab_size"] * 10
    assert p.activation_gib["without_checkpointing"] == pytest.approx((L * per_layer + head) / GiB)
    assert p.activation_gib["with_checkpointing"] == pytest.approx((L * 2 * s * b * h + per_layer + head) / GiB)
    # Linear in the micro-batch with SDPA; eager attention adds the s^2 score matrices.
    p4 = make_plan(recipe(tmp_path, loss_chunk=0, micro_batch_size=4))
    assert p4.activation_gib["without_checkpointing"] == pytest.approx(2 * p.activation_gib["without_checkpointing"])
    eager = make_plan(recipe(tmp_path, loss_chunk=0, model={"init_config": TINY_LLAMA, "attn_implementation": "eager"}))
    assert eager.activation_gib["without_checkpointing"] == pytest.approx(
        p.activation_gib["without_checkpointing"] + L * 4 * a * s * s * b / GiB)
    # The configured column is the one counted in the per-GPU total.
    assert p.per_gpu_total_gib == pytest.approx(sum(p.memory_gib.values()) + p.activation_gib["without_checkpointing"])
    ck = make_plan(recipe(tmp_path, model={"init_config": TINY_LLAMA, "gradient_checkpointing": True}))
    assert ck.activation_checkpointing_configured
    assert ck.per_gpu_total_gib == pytest.approx(sum(ck.memory_gib.values()) + ck.activation_gib["with_checkpointing"])


def test_throughput_and_days(tmp_path):
    p = make_plan(recipe(tmp_path), gpus=8, gpu="a100", mfu=0.5, tokens=10**9)
    t = TINY_LLAMA
    assert p.flops_per_token == pytest.approx(6 * p.params_matmul + 12 * t["num_hidden_layers"] * t["hidden_size"] * 64)
    assert p.tokens_per_s == pytest.approx(8 * GPUS["a100"]["peak_bf16_flops"] * 0.5 / p.flops_per_token)
    assert p.days == pytest.approx(1e9 / p.tokens_per_s / 86400)
    # No --tokens and no shards on disk: max_steps x micro-batch x accumulation x seq x GPUs.
    d = make_plan(recipe(tmp_path), gpus=2)
    assert d.tokens == 10 * 2 * 3 * 64 * 2 and d.tokens_source.startswith("recipe")


def test_tokens_from_the_shards_manifest(tmp_path, tiny_shards):
    p = make_plan(recipe(tmp_path, data={"shards": str(tiny_shards), "seq_len": 32}))
    assert p.tokens == (40 + 20) * 32 and p.tokens_source.startswith("corpus")


def test_accelerate_configs_of_the_repo():
    fsdp = read_topology(REPO / "configs/accelerate/fsdp.yaml", None, None)
    assert (fsdp.gpus, fsdp.engine, fsdp.stage, fsdp.activation_checkpointing) == (8, "fsdp", "fsdp", True)
    ds = read_topology(REPO / "configs/accelerate/deepspeed-zero3-multinode.yaml", None, None)
    assert (ds.gpus, ds.engine, ds.stage) == (64, "deepspeed", "zero3")
    assert read_topology(REPO / "configs/accelerate/deepspeed-zero3.yaml", 16, None).gpus == 16


def test_the_8b_recipe_plans_on_meta():
    """Llama-3.1-8B: 8.03 B parameters; the recipe's launch line names the 64-GPU ZeRO-3 config."""
    p = make_plan(REPO / "configs/train/foundation-sec-8b.yaml")
    assert p.params == 8_030_261_248
    assert p.topology["gpus"] == 64 and p.topology["stage"] == "zero3"
    assert p.activation_checkpointing_configured and p.fits
    assert p.tokens == 1250 * 2 * 8 * 4096 * 64


def test_bad_input_names_the_field(tmp_path):
    cfg = recipe(tmp_path)
    with pytest.raises(ValueError, match="--gpu"):
        make_plan(cfg, gpu="tpu")
    with pytest.raises(ValueError, match="--stage"):
        make_plan(cfg, stage="zero9")
    with pytest.raises(ValueError, match="--mfu"):
        make_plan(cfg, mfu=1.5)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model": {"name_or_path": str(tmp_path / "no-such-model")}}))
    with pytest.raises(ValueError, match="no-such-model"):
        make_plan(bad)


def test_cli_json_contract(tmp_path):
    cfg = recipe(tmp_path)
    r = CliRunner().invoke(app, ["train", "plan", str(cfg), "--gpus", "4", "--stage", "zero3", "--gpu", "h200",
                                 "--mfu", "0.35", "--tokens", "1000000", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    for key in ("params", "memory_gib", "activation_gib", "per_gpu_total_gib", "tokens_per_s", "days",
                "flops_per_token", "topology", "fits"):
        assert key in d
    assert d["topology"]["gpus"] == 4 and d["topology"]["stage"] == "zero3" and d["mfu"] == 0.35
    assert d["tokens"] == 1_000_000 and "H200" in d["gpu"]
    assert set(d["activation_gib"]) == {"without_checkpointing", "with_checkpointing"}
    r = CliRunner().invoke(app, ["train", "plan", str(cfg)])
    assert r.exit_code == 0 and "parameters" in r.output and "tokens/s" in r.output
    r = CliRunner().invoke(app, ["train", "plan", str(cfg), "--gpu", "tpu"])
    assert r.exit_code == 2 and "--gpu" in r.output


@pytest.mark.e2e
def test_smollm2_recipe_counts_the_real_checkpoint():
    """The quickstart recipe on meta has exactly as many parameters as the embedded checkpoint."""
    from safetensors import safe_open

    from secfoundry.models.embedded import ensure_converted

    n = 0
    for f in Path(ensure_converted()).glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                shape = st.get_slice(k).get_shape()
                n += math.prod(shape)
    p = make_plan(REPO / "configs/train/smollm2-135m-cpt.yaml")
    assert p.params == n == 134_515_008


def test_mixed_precision_auto_resolves_to_what_the_hardware_computes(monkeypatch):
    import torch

    from secfoundry.train.config import TrainConfig, resolve_mixed_precision

    assert TrainConfig().mixed_precision == "auto"
    assert resolve_mixed_precision("bf16") == "bf16" and resolve_mixed_precision("no") == "no"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False, raising=False)
    assert resolve_mixed_precision("auto") == "no"  # emulated bf16 would be ~50x slower than fp32
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    assert resolve_mixed_precision("auto") == "bf16"
