"""Load the starting model (HF weights) and its tokenizer for continued pretraining."""

from __future__ import annotations

from pathlib import Path

import torch

from secfoundry.train.config import ModelConfig

EMBEDDED_ALIASES = {"smollm2-135m-instruct", "smollm2"}


def resolve_path(name_or_path: str) -> str:
    if name_or_path in EMBEDDED_ALIASES:
        from secfoundry.models.embedded import ensure_converted

        return str(ensure_converted())
    return name_or_path


def load_model(cfg: ModelConfig) -> torch.nn.Module:
    """fp32 master weights; autocast supplies bf16 compute. Safetensors only (no pickle)."""
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig

    if cfg.init_config is not None:
        conf = LlamaConfig(**cfg.init_config)
        conf._attn_implementation = cfg.attn_implementation
        model = AutoModelForCausalLM.from_config(conf, torch_dtype=torch.float32)
    else:
        path = resolve_path(cfg.name_or_path)
        AutoConfig.from_pretrained(path)  # fail early with a clear message on a bad path
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, use_safetensors=True,
                                                     attn_implementation=cfg.attn_implementation)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_path(cfg.tokenizer or cfg.name_or_path))


def flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    """Training FLOPs per token: 6·N for the matmuls (embedding lookup excluded, output layer
    included) plus 12·layers·hidden·seq for attention scores (PaLM appendix B)."""
    c = model.config
    def numel(p) -> int:  # ZeRO-3 partitioned parameters keep their full size in ds_numel
        return int(getattr(p, "ds_numel", p.numel()))

    n = sum(numel(p) for p in model.parameters())
    emb = model.get_input_embeddings().weight
    n_matmul = n - numel(emb)
    out = model.get_output_embeddings()
    if out is not None and out.weight is emb:
        n_matmul += numel(emb)  # tied: the output projection still costs a matmul
    return 6.0 * n_matmul + 12.0 * c.num_hidden_layers * c.hidden_size * seq_len


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The repeated transformer blocks (``model.model.layers`` for Llama-family models)."""
    base = model.get_decoder() if hasattr(model, "get_decoder") else None
    if base is not None and isinstance(getattr(base, "layers", None), torch.nn.ModuleList):
        return base.layers
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__}: no decoder layer list to compile")
    return max(lists, key=len)


COMPILE_MODES = ("none", "layers", "model")


AUTO_COMPILE_MIN_STEPS = 50


def compile_mode(value: bool | str | None, *, max_steps: int = 0, distributed: str = "NO") -> str:
    """``compile`` config value -> mode. ``true`` means "layers" (the cheap kind, see
    :func:`compile_model`). ``"auto"``: "layers" for runs long enough to repay the one-off
    compile, except under DeepSpeed (ZeRO-3 gathers parameters in module hooks that split the
    compiled graphs)."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "layers"
    mode = str(value).lower()
    if mode == "auto":
        return "layers" if max_steps >= AUTO_COMPILE_MIN_STEPS and distributed != "DEEPSPEED" else "none"
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile: expected auto, one of {COMPILE_MODES} or true/false, got {value!r}")
    return mode


def compile_model(model: torch.nn.Module, mode: str, *, base_only: bool = False) -> None:
    """torch.compile in place (``Module.compile``), so parameter names, checkpoints and exports
    are unchanged.

    "layers" compiles each decoder layer; all layers share one compiled graph (the parameters are
    graph inputs), so the compile cost is one layer's, not the model's, and it does not grow with
    depth. "model" compiles the whole forward (``base_only``: the decoder stack without the head,
    when the loss is computed from hidden states by the fused loss).
    """
    if mode == "none":
        return
    if mode == "layers":
        for layer in decoder_layers(model):
            layer.compile()
    elif mode == "model":
        target = model.get_decoder() if base_only else model
        target.compile()
    else:
        raise ValueError(f"unknown compile mode {mode!r}")


def export_hf(model: torch.nn.Module, tokenizer, out: Path, dtype: torch.dtype = torch.bfloat16,
              state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """An HF model directory (safetensors + tokenizer) that transformers and the eval harness load.

    ``state_dict``: the full weights when the model itself holds only a shard (FSDP/ZeRO-3).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    full = model.state_dict() if state_dict is None else state_dict
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in full.items()}
    model.save_pretrained(out, state_dict=state, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def export_checkpoint(checkpoint: Path, out: Path, dtype: str = "bfloat16") -> Path:
    """A training checkpoint (``out_dir/checkpoints/step-N``) as an HF model directory
    (safetensors + tokenizer when the base model has one)."""
    import json

    from safetensors.torch import load_model as load_weights

    from secfoundry.train.config import TrainConfig

    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    cfg = TrainConfig.from_dict(state["config"])
    model = load_model(cfg.model)
    if (Path(checkpoint) / "dcp").is_dir():  # a sharded (FSDP) run's checkpoint: gathered here
        from secfoundry.train.distributed import load_weights as load_sharded_weights

        load_sharded_weights(Path(checkpoint) / "dcp", model)
    else:
        load_weights(model, str(Path(checkpoint) / "model.safetensors"), strict=False)
    try:
        tok = load_tokenizer(cfg.model)
    except Exception:  # noqa: BLE001 - a scratch model may have no tokenizer: export the weights alone
        tok = None
    return export_hf(model, tok, Path(out), dtype=getattr(torch, dtype))
