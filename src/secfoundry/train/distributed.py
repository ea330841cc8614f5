"""Sharded training: FSDP2 (``fully_shard``) on CPU, and sharded checkpoints that reshard.

accelerate shards models with FSDP only on GPUs/accelerators: on CPU an ``accelerate launch``
with an FSDP config (``configs/accelerate/fsdp-cpu.yaml``) starts the processes and a gloo
process group, then hands out plain multi-CPU data parallelism. There the trainer shards the
model itself, with the same torch API accelerate's FSDP2 path calls: one ``fully_shard`` unit
per decoder layer, then the root (embeddings, final norm, head), honouring the launch's
``FSDP_*`` settings (reshard after forward, layer class, activation checkpointing).

Checkpoints of sharded runs (accelerate's FSDP on GPU too) are written with
torch.distributed.checkpoint (DCP) in its Hugging Face safetensors storage: every rank writes
its own shard (``dcp/shard-0000r-model-00001-of-00001.safetensors``) with the shard offsets in
the file header, so a later run with any number of processes — or one plain process — reads
back exactly the pieces it holds (DCP reshards). No pickle: DCP's default storage pickles its
``.metadata``; this one is safetensors and JSON only. The optimizer's non-tensor settings
(learning rate, betas, ...) go to ``trainer_state.json``.

DeepSpeed (ZeRO-2/3) runs through accelerate, on CPU too: ``accelerator_kwargs`` names the gloo
process group accelerate cannot pick without a device, ``model_init_context`` honours the
config's ``zero3_init_flag``, ``fill_deepspeed_config`` supplies what accelerate would read from
a DataLoader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from secfoundry.train.model import decoder_layers

DCP_DIR = "dcp"


@dataclass
class FsdpSettings:
    """What ``accelerate launch`` passed down from the config's ``fsdp_config`` (``FSDP_*``)."""

    version: int = 2
    reshard_after_forward: bool = True
    layer_cls: str | None = None
    activation_checkpointing: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "FsdpSettings":
        env = dict(os.environ if env is None else env)

        def flag(name: str, default: bool) -> bool:
            v = env.get(name)
            return default if v is None else v.strip().lower() in {"1", "true", "yes"}

        layer = (env.get("FSDP_TRANSFORMER_CLS_TO_WRAP") or "").strip() or None
        return cls(version=int(env.get("FSDP_VERSION", "2") or 2),
                   reshard_after_forward=flag("FSDP_RESHARD_AFTER_FORWARD", True), layer_cls=layer,
                   activation_checkpointing=flag("FSDP_ACTIVATION_CHECKPOINTING", False))


def fsdp_requested(env: dict[str, str] | None = None) -> bool:
    """The launch asked for FSDP (``distributed_type: FSDP`` in the accelerate config)."""
    return (os.environ if env is None else env).get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def needs_own_fsdp(distributed_type: str) -> bool:
    """FSDP was asked for but accelerate set up plain multi-process CPU training instead."""
    return fsdp_requested() and distributed_type == "MULTI_CPU"


def accelerator_kwargs(grad_accum: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``Accelerator`` arguments for this machine and launch.

    No CUDA: plain multi-process CPU (``cpu=True``, gloo), except under DeepSpeed, which
    accelerate refuses with ``cpu=True``; there DeepSpeed's own CPU accelerator runs it, with
    the gloo process group named explicitly (accelerate finds no device backend on CPU).
    DeepSpeed accumulates gradients itself: it is told the trainer's ``grad_accum``.
    """
    env = dict(os.environ if env is None else env)
    ds = env.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    no_cuda = not torch.cuda.is_available()
    kw: dict[str, Any] = {"cpu": no_cuda and not ds}
    if ds:
        kw["gradient_accumulation_steps"] = grad_accum
        if no_cuda:
            from accelerate.utils import InitProcessGroupKwargs

            kw["kwargs_handlers"] = [InitProcessGroupKwargs(backend="gloo")]
            if env.get("SECFOUNDRY_DS_SHM_COMM", "0") != "1":
                # DeepSpeed's shared-memory all-reduce for CPUs is a C++ op compiled on first use
                # (~10 min on the shared 2-core machine); gloo does the same collectives without
                # it. SECFOUNDRY_DS_SHM_COMM=1 lets DeepSpeed build and use it.
                import deepspeed.ops

                deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    return kw


def model_init_context(acc):
    """Under ZeRO-3 accelerate registers the DeepSpeed config with transformers, which then builds
    models inside ``deepspeed.zero.Init`` (partitioned at construction, random init per shard).
    The accelerate config's ``zero3_init_flag`` decides: false builds the whole model first
    (the same weights as a single-process run), true partitions at construction (models too
    large for one process's memory)."""
    import contextlib

    plugin = getattr(acc.state, "deepspeed_plugin", None) if acc.distributed_type.value == "DEEPSPEED" else None
    if plugin is None or plugin.zero3_init_flag:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def whole_model():
        from transformers.integrations import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()  # accelerate registers it whatever zero3_init_flag says
        try:
            yield
        finally:
            plugin.set_deepspeed_weakref()

    return whole_model()


def fill_deepspeed_config(acc, micro_batch_size: int, grad_accum: int, grad_clip: float) -> None:
    """The DeepSpeed values accelerate would infer from a DataLoader (the trainer has none)."""
    conf = acc.state.deepspeed_plugin.deepspeed_config
    conf["train_micro_batch_size_per_gpu"] = micro_batch_size
    conf["gradient_accumulation_steps"] = grad_accum
    conf["train_batch_size"] = micro_batch_size * grad_accum * acc.num_processes
    if conf.get("gradient_clipping", "auto") == "auto":
        conf["gradient_clipping"] = grad_clip or 0.0


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule) or any(isinstance(m, FSDPModule) for m in model.modules())


def shard_model(model: torch.nn.Module, settings: FsdpSettings) -> torch.nn.Module:
    """FSDP2 in place: each decoder layer its own unit (gathered just for its forward/backward),
    then the root. Parameters stay fp32 (the trainer's bf16 autocast does the casting, as in a
    single-process run), gradients are reduce-scattered in fp32."""
    from torch.distributed.fsdp import fully_shard

    if settings.version != 2:
        raise ValueError(f"fsdp_version {settings.version}: on CPU this trainer shards with FSDP2 only "
                         "(set fsdp_version: 2 in the accelerate config)")
    layers = decoder_layers(model)
    if settings.layer_cls:
        wanted = {c.strip() for c in settings.layer_cls.split(",") if c.strip()}
        have = type(layers[0]).__name__
        if have not in wanted:
            raise ValueError(f"fsdp_transformer_layer_cls_to_wrap {sorted(wanted)} does not name this model's "
                             f"decoder layer class {have!r}")
    if settings.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    for layer in layers:
        fully_shard(layer, reshard_after_forward=settings.reshard_after_forward)
    fully_shard(model, reshard_after_forward=settings.reshard_after_forward)
    return model


def set_gradient_sync(model: torch.nn.Module, sync: bool) -> None:
    """FSDP2's no_sync: keep unsharded gradients locally across accumulation micro-steps."""
    if hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(sync)


def clip_grad_norm(params, max_norm: float) -> torch.Tensor:
    """Global gradient-norm clipping over sharded (DTensor) gradients: the norm of every shard
    is reduced across ranks before the clip coefficient is applied."""
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    if isinstance(total, DTensor):
        total = total.full_tensor()
    torch.nn.utils.clip_grads_with_norm_([p for p in params if p.grad is not None], max_norm, total)
    return total


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on CPU (a collective: every rank calls it; rank 0 gets them)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


# ---- sharded checkpoints (DCP, safetensors storage) -------------------------------------------
def _bare(opt):
    return getattr(opt, "optimizer", opt)  # accelerate's AcceleratedOptimizer wraps the real one


def _flat_states(model, opt, full: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    opts = StateDictOptions(flatten_optimizer_state_dict=True, full_state_dict=full)
    msd, osd = get_state_dict(model, _bare(opt), options=opts)
    tensors = {f"model.{k}": v for k, v in msd.items()}
    settings: dict[str, Any] = {}
    for k, v in osd.items():
        if torch.is_tensor(v):
            tensors[f"optim.{k}"] = v
        else:
            settings[k] = list(v) if isinstance(v, tuple) else v
    return tensors, settings


def _split_aliases(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tied weights (embeddings = head) appear under two names sharing one storage, which
    safetensors refuses: keep the first name (sorted, so every rank and every later reader picks
    the same one) and return the others as aliases of it."""
    from torch.distributed.tensor import DTensor

    seen: dict[tuple, str] = {}
    unique, aliases = {}, {}
    for k in sorted(tensors):
        t = tensors[k]
        local = t._local_tensor if isinstance(t, DTensor) else t
        key = (local.untyped_storage().data_ptr(), local.storage_offset(), tuple(local.shape)) if local.numel() else None
        if key is not None and key in seen:
            aliases[k] = seen[key]
        else:
            if key is not None:
                seen[key] = k
            unique[k] = t
    return unique, aliases


def save_sharded(path: Path, model, opt) -> dict[str, Any]:
    """Every rank writes its shard of the model and optimizer into ``path``; returns the
    optimizer's non-tensor settings (for trainer_state.json)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    tensors, settings = _flat_states(model, opt)
    unique, _ = _split_aliases(tensors)
    dcp.save(unique, storage_writer=HuggingFaceStorageWriter(str(path), save_distributed=True))
    return settings


def load_sharded(path: Path, model, opt, settings: dict[str, Any]) -> None:
    """Read a DCP checkpoint into this run's model and optimizer, whatever the number of
    processes that wrote it and the number reading it (a plain, unsharded model included)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    tensors, _ = _flat_states(model, opt)  # the shapes/placements this run holds, filled in place
    unique, aliases = _split_aliases(tensors)
    dcp.load(unique, storage_reader=HuggingFaceStorageReader(str(path)))
    unique.update({k: unique[v] for k, v in aliases.items()})
    _set_states(model, opt, unique, settings, StateDictOptions(flatten_optimizer_state_dict=True))


def load_full_into(path: Path, model, opt, state: dict[str, Any]) -> None:
    """A single-process checkpoint (``model.safetensors`` + ``optimizer.safetensors``, optimizer
    state keyed by parameter index) into a sharded model: indices are mapped to parameter names
    in the trainer's param-group order, then every rank keeps its shard of the full tensors."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    from secfoundry.train.trainer import param_group_names

    path = Path(path)
    weights = load_file(str(path / "model.safetensors"))
    # Tied weights are saved once by safetensors' save_model; the other names read the same tensor.
    by_param: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_param.setdefault(id(p), []).append(name)
    for aliases in by_param.values():
        have = [a for a in aliases if a in weights]
        for a in aliases:
            if have and a not in weights:
                weights[a] = weights[have[0]]
    groups = param_group_names(model)
    names = [n for g in groups for n in g]
    per_param: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in load_file(str(path / "optimizer.safetensors")).items():
        idx, name = key.split(".", 1)
        per_param.setdefault(names[int(idx)], {})[name] = t
    saved = state["optimizer_param_groups"]
    if len(saved) != len(groups) or any(len(g["params"]) != len(n) for g, n in zip(saved, groups)):
        raise ValueError(f"{path}: optimizer groups {[len(g['params']) for g in saved]} do not match this model's "
                         f"{[len(n) for n in groups]}: a checkpoint of another model?")
    osd = {"state": per_param,
           "param_groups": [dict({k: v for k, v in g.items() if k != "params"}, params=n) for g, n in zip(saved, groups)]}
    for g in osd["param_groups"]:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
    set_state_dict(model, _bare(opt), model_state_dict=weights, optim_state_dict=osd,
                   options=StateDictOptions(full_state_dict=True))


def _set_states(model, opt, tensors: dict[str, torch.Tensor], settings: dict[str, Any], opts) -> None:
    from torch.distributed.checkpoint.state_dict import set_state_dict

    msd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    osd: dict[str, Any] = {k[len("optim."):]: v for k, v in tensors.items() if k.startswith("optim.")}
    for k, v in settings.items():
        osd[k] = tuple(v) if isinstance(v, list) else v
    set_state_dict(model, _bare(opt), model_state_dict=msd, optim_state_dict=osd, options=opts)


def load_weights(path: Path, model: torch.nn.Module) -> None:
    """Only the model weights of a DCP checkpoint, into a plain model (``train export``)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    sd, aliases = _split_aliases({f"model.{k}": v for k, v in model.state_dict().items()})
    dcp.load(sd, storage_reader=HuggingFaceStorageReader(str(path)))
    sd.update({k: sd[v] for k, v in aliases.items()})
    model.load_state_dict({k[len("model."):]: v for k, v in sd.items()})
