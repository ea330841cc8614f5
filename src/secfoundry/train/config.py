"""Typed training configuration, loadable from YAML and overridable from the CLI (litgpt style).

``TrainConfig.from_yaml(path, overrides=["optim.lr=1e-4", "max_steps=100"])``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from secfoundry.core.typed_config import YamlConfig, apply_override  # noqa: F401 (apply_override: API)


@dataclass
class ModelConfig:
    # Alias of the embedded default, a local HF directory, or a hub id.
    name_or_path: str = "smollm2-135m-instruct"
    # Build a randomly initialised model from this LlamaConfig dict instead (unit tests, scratch runs).
    init_config: dict[str, Any] | None = None
    tokenizer: str | None = None  # defaults to name_or_path
    gradient_checkpointing: bool = False
    attn_implementation: str = "sdpa"


@dataclass
class DataConfig:
    shards: str = ""  # packed shard directory (corpus pipeline output)
    # Per-source sampling weights; unspecified sources get weight proportional to their tokens.
    weights: dict[str, float] = field(default_factory=dict)
    replay_shards: str | None = None  # general-domain packed shards mixed in at `replay_ratio`
    replay_ratio: float = 0.0  # fraction of training sequences drawn from replay_shards
    seq_len: int | None = None  # crop rows to this length (must be <= the shards' seq_len)
    eval_split: str = "test"


@dataclass
class OptimConfig:
    lr: float = 3e-4  # peak learning rate
    min_lr_ratio: float = 0.1  # final LR = lr * min_lr_ratio
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    fused: bool = True  # fused AdamW kernel (CPU and CUDA in torch >= 2.4)


@dataclass
class ScheduleConfig:
    kind: str = "cosine"  # cosine | wsd | constant
    warmup_steps: int = 100  # re-warming from 0 is what continued pretraining needs (LR re-warming)
    warmup_start_ratio: float = 0.0  # LR at step 0 as a fraction of peak
    decay_fraction: float = 0.2  # wsd: final fraction of steps spent decaying


@dataclass
class TrainConfig(YamlConfig):
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    out_dir: str = "runs/train"
    seed: int = 1234
    micro_batch_size: int = 4
    grad_accum: int = 1
    max_steps: int = 1000  # optimizer steps
    # auto | bf16 | fp16 | no (autocast; master weights stay fp32). auto: see resolve_mixed_precision.
    mixed_precision: str = "auto"
    log_every: int = 10
    eval_every: int = 0  # 0: only at the end
    eval_batches: int = 8  # micro-batches per held-out set
    general_eval_shards: str | None = None  # held-out general text (packed) for forgetting checks
    save_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2
    peak_flops: float = 0.0  # per-device peak FLOP/s for MFU (0: not reported)
    threads: int | None = None  # torch intra-op threads on CPU
    # torch.compile: "auto" | false | "layers" (each decoder layer; true means this) | "model".
    # "auto" = "layers" for runs of >= 50 steps (the one-off compile, ~0.5-1.5 min on 2 CPU cores,
    # is then small next to the run) unless under DeepSpeed; otherwise no compile.
    compile: bool | str = "auto"
    # Rows per chunk of the fused head + cross-entropy (train/loss.py); 0: HF loss on full logits.
    loss_chunk: int = 1024
    tensorboard: bool = False

    @property
    def tokens_per_step(self) -> int:
        return self.micro_batch_size * self.grad_accum * (self.data.seq_len or 0)


def dumps(cfg: TrainConfig) -> str:
    return json.dumps(cfg.to_dict(), indent=2, sort_keys=True)


def resolve_mixed_precision(name: str) -> str:
    """``auto`` -> ``bf16`` where the hardware computes bf16 natively (CUDA with bf16; a CPU with
    AMX/AVX512-BF16, as oneDNN reports it), else ``no`` (fp32). Emulated bf16 is a trap on CPUs
    without it: a 1024x1024 matmul took 2.42 s in bf16 vs 0.043 s in fp32 on an AVX2 EPYC (2 threads),
    and one 4,096-token SmolLM2 step under bf16 autocast over 3 CPU-minutes. Other values pass through."""
    if name != "auto":
        return name
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - older/odd builds: fp32 is always correct
        native = False
    return "bf16" if native else "no"
