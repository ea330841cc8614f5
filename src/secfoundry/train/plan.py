"""``secfoundry train plan``: size a training recipe before renting the hardware.

The model is built on the meta device (shapes only, no memory), so an 8B recipe is planned on a
laptop. Reported: parameter count, per-GPU memory of model states for the chosen sharding stage,
activation memory at the configured micro-batch and sequence length with and without activation
checkpointing, and tokens/s + days for a token count at a stated MFU on a stated GPU.

Everything here is arithmetic on shapes; it is an estimate (allocator fragmentation, CUDA
context, NCCL buffers and temporary buffers are not modelled — keep ~10-20% headroom).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from secfoundry.train.config import TrainConfig

GiB = 1024**3

# Dense (no sparsity) bf16 tensor-core peak per GPU, FLOP/s, and memory per GPU, bytes.
# H100/H200 SXM: 989.4 TFLOP/s (NVIDIA H100 datasheet, SXM5; H200 has the same compute);
# A100 SXM: 312 TFLOP/s.
GPUS: dict[str, dict[str, float]] = {
    "h100": {"peak_bf16_flops": 989.4e12, "memory_bytes": 80 * GiB, "name": "NVIDIA H100 SXM 80GB"},
    "h200": {"peak_bf16_flops": 989.4e12, "memory_bytes": 141e9, "name": "NVIDIA H200 SXM 141GB"},
    "a100": {"peak_bf16_flops": 312e12, "memory_bytes": 80 * GiB, "name": "NVIDIA A100 SXM 80GB"},
}

# Architectures of hub models a recipe may name, for planning without hub access (values from
# the models' published config.json). A local directory or an HF cache entry takes precedence.
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "meta-llama/Llama-3.1-8B": {
        "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "rope_theta": 500000.0,
    },
}
KNOWN_CONFIGS["meta-llama/Meta-Llama-3.1-8B"] = KNOWN_CONFIGS["meta-llama/Llama-3.1-8B"]

# Sharding stages: which model states are split over the data-parallel GPUs.
#   (params, grads, optimizer states incl. fp32 master copy)
STAGES: dict[str, tuple[bool, bool, bool]] = {
    "ddp": (False, False, False),
    "zero1": (False, False, True),
    "zero2": (False, True, True),
    "zero3": (True, True, True),
    "fsdp": (True, True, True),           # FULL_SHARD / FSDP2 reshard_after_forward: true
    "fsdp-grad-op": (False, True, True),  # SHARD_GRAD_OP / reshard_after_forward: false
}


@dataclass
class Topology:
    gpus: int = 1
    stage: str = "ddp"
    engine: str = "single"  # single | ddp | fsdp | deepspeed
    accelerate_config: str | None = None
    activation_checkpointing: bool = False  # from the accelerate config (fsdp_activation_checkpointing)


@dataclass
class Plan:
    config: str
    model: str
    architecture: dict[str, int]
    params: int
    params_embedding: int
    params_matmul: int
    topology: dict[str, Any]
    bytes_per_param: dict[str, int]
    memory_gib: dict[str, float]
    activation_gib: dict[str, float]
    activation_checkpointing_configured: bool
    per_gpu_total_gib: float
    gpu: str
    gpu_memory_gib: float
    fits: bool
    micro_batch_size: int
    seq_len: int
    flops_per_token: float
    mfu: float
    tokens: int
    tokens_source: str
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    days: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_topology(accelerate_config: str | Path | None, gpus: int | None, stage: str | None) -> Topology:
    """Engine, stage and process count from an accelerate config (if any); flags override."""
    topo = Topology()
    if accelerate_config:
        path = Path(accelerate_config)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: accelerate config not found")
        d = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a mapping")
        topo.accelerate_config = str(path)
        topo.gpus = int(d.get("num_processes") or 1)
        kind = str(d.get("distributed_type", "NO")).upper()
        if kind == "DEEPSPEED":
            topo.engine = "deepspeed"
            z = int((d.get("deepspeed_config") or {}).get("zero_stage", 0))
            topo.stage = {0: "ddp", 1: "zero1", 2: "zero2", 3: "zero3"}.get(z, "zero3")
        elif kind == "FSDP":
            topo.engine = "fsdp"
            fc = d.get("fsdp_config") or {}
            strat = str(fc.get("fsdp_sharding_strategy", "FULL_SHARD")).upper()
            reshard = fc.get("fsdp_reshard_after_forward", True)
            grad_op = strat in {"SHARD_GRAD_OP", "2"} or reshard is False or str(reshard).upper() == "SHARD_GRAD_OP"
            topo.stage = "fsdp-grad-op" if grad_op else "fsdp"
            topo.activation_checkpointing = bool(fc.get("fsdp_activation_checkpointing", False))
        elif kind in {"MULTI_GPU", "MULTI_CPU"}:
            topo.engine, topo.stage = "ddp", "ddp"
    if gpus is not None:
        if gpus < 1:
            raise ValueError(f"--gpus must be >= 1, got {gpus}")
        topo.gpus = gpus
    if stage is not None:
        if stage not in STAGES:
            raise ValueError(f"--stage: expected one of {sorted(STAGES)}, got {stage!r}")
        topo.stage = stage
        if topo.engine in {"single", "ddp"} and stage != "ddp":
            topo.engine = "deepspeed" if stage.startswith("zero") else "fsdp"
    if topo.engine == "single" and topo.gpus > 1:
        topo.engine = "ddp"
    return topo


def referenced_accelerate_config(recipe: str | Path) -> str | None:
    """The ``--config_file X`` a recipe's comments name (the 8B recipe's launch line), if it exists."""
    text = Path(recipe).read_text(encoding="utf-8")
    m = re.search(r"--config_file[ =](\S+\.ya?ml)", text)
    if not m:
        return None
    cand = Path(m.group(1))
    # Relative to the working directory, or to the repository holding configs/train/<recipe>.
    bases = [Path.cwd(), *Path(recipe).resolve().parents[1:3]]
    return next((str(b / cand) for b in bases if (b / cand).is_file()), None)


def model_config(cfg: TrainConfig):
    """A transformers config for the recipe's model without loading weights."""
    from transformers import AutoConfig, LlamaConfig

    m = cfg.model
    if m.init_config is not None:
        return LlamaConfig(**m.init_config)
    name = m.name_or_path
    if name in KNOWN_CONFIGS and not Path(name).exists():
        try:
            return AutoConfig.from_pretrained(name, local_files_only=True)
        except Exception:  # noqa: BLE001 - not cached: the published architecture
            return LlamaConfig(**KNOWN_CONFIGS[name])
    from secfoundry.train.model import resolve_path

    try:
        return AutoConfig.from_pretrained(resolve_path(name), local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"model.name_or_path {name!r}: no local config.json and not one of the known "
                         f"architectures {sorted(KNOWN_CONFIGS)} ({e})") from e


def meta_model(cfg: TrainConfig):
    """The recipe's model on the meta device: real module tree and shapes, no storage."""
    import torch
    from transformers import AutoModelForCausalLM

    conf = model_config(cfg)
    conf._attn_implementation = cfg.model.attn_implementation
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(conf)  # fp32 default; meta: shapes only


def count_params(model) -> tuple[int, int, int]:
    """(total unique parameters, input-embedding parameters, parameters in matmuls).

    Matmul parameters = total - input embedding (a lookup) + the output head when it is tied
    (the tied head is one tensor but still costs a matmul). Identity (``is``) decides tying,
    since every meta tensor has data_ptr() 0."""
    n = sum(p.numel() for p in model.parameters())  # parameters() de-duplicates tied tensors
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    tied = out is not None and out.weight is emb
    return n, emb.numel(), n - emb.numel() + (emb.numel() if tied else 0)


def bytes_per_param(engine: str, mixed_precision: str) -> dict[str, int]:
    """Bytes per parameter of each model state with AdamW.

    DeepSpeed with bf16/fp16: 16-bit params and grads, fp32 master + Adam m, v = 2 + 2 + 12
    (ZeRO paper, Rajbhandari et al. 2020, K=12). This trainer everywhere else (single, DDP, FSDP):
    fp32 master weights with bf16 autocast (FSDP2 MixedPrecisionPolicy keeps fp32 sharded
    parameters and reduces fp32 gradients) = 4 + 4 + 8."""
    if engine == "deepspeed" and mixed_precision in {"bf16", "fp16"}:
        return {"params": 2, "grads": 2, "optimizer": 12}
    return {"params": 4, "grads": 4, "optimizer": 8}


def layer_activation_bytes(h: int, h_kv: int, ffn: int, heads: int, s: int, b: int, eager_attention: bool) -> float:
    """Activations one Llama decoder layer saves for backward, bytes, 16-bit activations, no TP.

    Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models",
    eq. 1) give s·b·h·(34 + 5·a·s/h) per GPT layer (GeLU MLP of 4h, dropout masks). Counted the
    same way for a Llama layer (RMSNorm, GQA, SwiGLU, no dropout), elements saved per token:
      attention: norm input h + norm output h + Q h + K, V 2·h_kv + attention output h
      MLP:       norm input h + norm output h + gate I + up I + silu(gate) I + gate*up I
    = 6h + 2·h_kv + 4I elements × 2 bytes  ->  s·b·(12h + 4·h_kv + 8I) bytes.
    Eager attention also stores the score and softmax matrices: + 4·a·s²·b bytes (SDPA/flash
    attention recomputes them, and the term vanishes)."""
    per_layer = s * b * (12 * h + 4 * h_kv + 8 * ffn)
    if eager_attention:
        per_layer += 4 * heads * s * s * b
    return float(per_layer)


def head_activation_bytes(h: int, vocab: int, s: int, b: int, loss_chunk: int) -> float:
    """Final norm + LM head + cross-entropy. Chunked fused loss (train/loss.py) holds one chunk of
    fp32 logits and their gradient; the HF loss holds bf16 logits and an fp32 copy for all rows."""
    rows = s * b
    base = rows * h * 2 * 2  # final norm input and output
    if loss_chunk and loss_chunk > 0:
        return float(base + min(loss_chunk, rows) * vocab * 4 * 2)
    return float(base + rows * vocab * (2 + 4 + 4))


def make_plan(config: str | Path, *, overrides: list[str] | None = None, gpus: int | None = None,
              stage: str | None = None, accelerate_config: str | Path | None = None, gpu: str = "h100",
              mfu: float = 0.4, tokens: int | None = None) -> Plan:
    config = Path(config)
    if not config.is_file():
        raise FileNotFoundError(f"{config}: training recipe not found")
    gpu = gpu.lower()
    if gpu not in GPUS:
        raise ValueError(f"--gpu: expected one of {sorted(GPUS)}, got {gpu!r}")
    if not 0 < mfu <= 1:
        raise ValueError(f"--mfu must be in (0, 1], got {mfu}")
    cfg = TrainConfig.from_yaml(config, overrides or [])
    notes: list[str] = []
    acc = accelerate_config or referenced_accelerate_config(config)
    if acc and not accelerate_config:
        notes.append(f"topology from the accelerate config the recipe references: {acc}")
    topo = read_topology(acc, gpus, stage)

    model = meta_model(cfg)
    c = model.config
    n, n_emb, n_mm = count_params(model)
    h, L, heads = c.hidden_size, c.num_hidden_layers, c.num_attention_heads
    kv = getattr(c, "num_key_value_heads", None) or heads
    head_dim = getattr(c, "head_dim", None) or h // heads
    h_kv = kv * head_dim
    ffn, vocab = c.intermediate_size, c.vocab_size
    s = int(cfg.data.seq_len or getattr(c, "max_position_embeddings", 2048))
    if not cfg.data.seq_len:
        notes.append(f"data.seq_len unset: using the model's max_position_embeddings {s}")
    b = int(cfg.micro_batch_size)

    # Model states per GPU.
    bpp = bytes_per_param(topo.engine, "bf16" if cfg.mixed_precision == "auto" else cfg.mixed_precision)  # GPUs: auto = bf16
    shard = STAGES[topo.stage]
    N = topo.gpus
    mem = {k: n * bpp[k] / (N if sh else 1) / GiB for k, sh in zip(("params", "grads", "optimizer"), shard)}
    layer_params = sum(p.numel() for p in model.get_decoder().layers[0].parameters())
    if shard[0]:
        # Sharded params are all-gathered one wrapped unit (decoder layer) at a time, in 16-bit,
        # with the next one prefetched: two layers' full parameters (and their gradients before
        # the reduce-scatter) are transient per GPU.
        mem["gathered_layers"] = 2 * layer_params * 2 * 2 / GiB
    else:
        mem["gathered_layers"] = 0.0

    # Activations per GPU at the configured micro-batch.
    eager = cfg.model.attn_implementation == "eager"
    per_layer = layer_activation_bytes(h, h_kv, ffn, heads, s, b, eager)
    head = head_activation_bytes(h, vocab, s, b, cfg.loss_chunk)
    no_ckpt = L * per_layer + head
    # Full recomputation per layer (HF gradient_checkpointing / FSDP activation checkpointing):
    # each layer keeps only its 16-bit input (2·s·b·h bytes, Korthikanti's 2sbhL) plus one layer's
    # full activations while it is recomputed during backward.
    ckpt = L * 2 * s * b * h + per_layer + head
    act = {"without_checkpointing": no_ckpt / GiB, "with_checkpointing": ckpt / GiB}
    ckpt_on = bool(cfg.model.gradient_checkpointing or topo.activation_checkpointing)
    states = sum(mem.values())
    total = states + (act["with_checkpointing"] if ckpt_on else act["without_checkpointing"])
    spec = GPUS[gpu]

    # Throughput: model FLOPs per token = 6·N_matmul + 12·L·h·s (PaLM appendix B; the attention
    # scores and weighted sum, forward + backward, causal mask not discounted). MFU counts these
    # model FLOPs; activation recomputation costs extra hardware FLOPs but does not count.
    fpt = 6.0 * n_mm + 12.0 * L * h * s
    tps_gpu = spec["peak_bf16_flops"] * mfu / fpt
    tps = tps_gpu * N
    if tokens is not None:
        if tokens <= 0:
            raise ValueError(f"--tokens must be > 0, got {tokens}")
        tok_src = "--tokens"
    else:
        tokens, tok_src = corpus_tokens(cfg)
        if tokens == 0:
            tokens = cfg.max_steps * cfg.micro_batch_size * cfg.grad_accum * s * N
            tok_src = f"recipe: max_steps {cfg.max_steps} x micro_batch {b} x grad_accum {cfg.grad_accum} x seq {s} x {N} GPUs"
    days = tokens / tps / 86400
    if cfg.data.replay_ratio:
        notes.append(f"replay_ratio {cfg.data.replay_ratio}: the token count is what is trained on, replay included")

    return Plan(
        config=str(config),
        model=cfg.model.name_or_path if cfg.model.init_config is None else "random init (model.init_config)",
        architecture={"layers": L, "hidden": h, "intermediate": ffn, "heads": heads, "kv_heads": kv,
                      "vocab": vocab, "tied_embeddings": int(bool(getattr(c, "tie_word_embeddings", False)))},
        params=n, params_embedding=n_emb, params_matmul=n_mm,
        topology=asdict(topo), bytes_per_param=bpp, memory_gib=mem, activation_gib=act,
        activation_checkpointing_configured=ckpt_on, per_gpu_total_gib=total, gpu=spec["name"],
        gpu_memory_gib=spec["memory_bytes"] / GiB, fits=total * 1.1 <= spec["memory_bytes"] / GiB,
        micro_batch_size=b, seq_len=s, flops_per_token=fpt, mfu=mfu, tokens=int(tokens),
        tokens_source=tok_src, tokens_per_s=tps, tokens_per_s_per_gpu=tps_gpu, days=days, notes=notes,
    )


def corpus_tokens(cfg: TrainConfig) -> tuple[int, str]:
    """Train-split tokens of the recipe's packed shards when they are on disk (else 0)."""
    if not cfg.data.shards:
        return 0, ""
    try:
        from secfoundry.corpus.prepare.shards import Manifest

        man = Manifest.load(Path(cfg.data.shards))
    except (FileNotFoundError, ValueError, OSError):
        return 0, ""
    n = sum(man.tokens("train").values())
    return n, f"corpus: train split of {cfg.data.shards}"


def render(plan: Plan):
    """A rich table of the plan."""
    from rich.table import Table

    t = Table(title=f"train plan: {plan.config}", show_lines=False)
    t.add_column("item")
    t.add_column("value", justify="right")
    a = plan.architecture
    topo = plan.topology
    t.add_row("model", plan.model)
    t.add_row("architecture", f"{a['layers']} layers, h={a['hidden']}, ffn={a['intermediate']}, "
              f"heads={a['heads']}/{a['kv_heads']} kv, vocab={a['vocab']}, tied={bool(a['tied_embeddings'])}")
    t.add_row("parameters", f"{plan.params:,} ({plan.params / 1e9:.2f} B)")
    t.add_row("  in matmuls (6N)", f"{plan.params_matmul:,}")
    t.add_row("topology", f"{topo['gpus']} GPUs, {topo['engine']}, stage {topo['stage']}"
              + (f" ({topo['accelerate_config']})" if topo["accelerate_config"] else ""))
    bpp = plan.bytes_per_param
    t.add_row("bytes/param", f"params {bpp['params']} + grads {bpp['grads']} + optimizer {bpp['optimizer']}")
    for k, v in plan.memory_gib.items():
        t.add_row(f"per GPU: {k.replace('_', ' ')}", f"{v:,.2f} GiB")
    on = plan.activation_checkpointing_configured
    t.add_row(f"activations, no checkpointing{'' if on else ' (configured)'}",
              f"{plan.activation_gib['without_checkpointing']:,.2f} GiB")
    t.add_row(f"activations, checkpointing{' (configured)' if on else ''}",
              f"{plan.activation_gib['with_checkpointing']:,.2f} GiB")
    t.add_row("  at micro-batch x seq", f"{plan.micro_batch_size} x {plan.seq_len}")
    t.add_row("per GPU total (configured)", f"{plan.per_gpu_total_gib:,.2f} GiB of {plan.gpu_memory_gib:.0f} "
              f"-> {'fits' if plan.fits else 'DOES NOT FIT'} (10% headroom)")
    t.add_row("FLOPs/token (6N + 12·L·h·s)", f"{plan.flops_per_token:.3e}")
    t.add_row("GPU, MFU", f"{plan.gpu}, {plan.mfu:.0%}")
    t.add_row("tokens/s", f"{plan.tokens_per_s:,.0f} ({plan.tokens_per_s_per_gpu:,.0f} per GPU)")
    t.add_row("tokens", f"{plan.tokens:,} ({plan.tokens_source})")
    t.add_row("time", f"{plan.days:,.3f} days ({plan.days * 24:,.2f} h)")
    for n in plan.notes:
        t.add_row("note", n)
    return t
