"""Checkpoints without pickle: model and optimizer tensors in safetensors, the rest in JSON.

A checkpoint directory holds ``model.safetensors``, ``optimizer.safetensors`` (AdamW moments
and steps, flattened), ``rng.safetensors`` (torch RNG state) and ``trainer_state.json`` (step,
data position, numpy/python RNG, optimizer param groups, config). Under DeepSpeed/FSDP the
sharded states go to ``dcp/`` (FSDP: torch.distributed.checkpoint in safetensors storage,
resharded on load to any number of processes) or ``accelerate/`` (DeepSpeed's own format).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

STATE = "trainer_state.json"


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"{idx}.{k}"] = t.detach().contiguous().cpu()
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = t
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any]) -> Path:
    """Write atomically: a temp dir renamed into place, so a kill never leaves half a checkpoint."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))  # handles tied embeddings
    tensors, groups = optimizer_to_tensors(opt)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    save_file({"torch_rng": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    _publish(tmp, path, dict(state, optimizer_param_groups=groups))
    return path


def load_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    path = Path(path)
    state = json.loads((path / STATE).read_text())
    missing, unexpected = load_model(model, str(path / "model.safetensors"), strict=False)
    if unexpected:
        raise ValueError(f"{path}: checkpoint has tensors the model lacks: {unexpected[:5]}")
    optimizer_from_tensors(opt, load_file(str(path / "optimizer.safetensors")), state["optimizer_param_groups"])
    torch.set_rng_state(load_file(str(path / "rng.safetensors"))["torch_rng"])
    restore_python_rng(state)
    return state


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def save_sharded_checkpoint(path: Path, model: torch.nn.Module, opt, state: dict[str, Any], *, main: bool,
                            barrier) -> Path:
    """A sharded run's checkpoint (every rank calls this): ``dcp/`` holds each rank's shard of the
    model and optimizer (DCP, safetensors storage, train/distributed.py), ``rng_rank{r}.safetensors``
    each rank's torch RNG, ``trainer_state.json`` the rest. Written to a temp dir renamed into
    place by rank 0 once every rank has finished."""
    from secfoundry.train import distributed

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if main:
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / distributed.DCP_DIR).mkdir(parents=True)
    barrier()
    settings = distributed.save_sharded(tmp / distributed.DCP_DIR, model, opt)
    save_file({"torch_rng": torch.get_rng_state()}, str(tmp / f"rng_rank{_rank()}.safetensors"))
    barrier()
    if main:
        _publish(tmp, path, dict(state, optimizer_settings=settings))
    barrier()
    return path


def load_sharded_checkpoint(path: Path, model: torch.nn.Module, opt) -> dict[str, Any]:
    """A ``dcp/`` checkpoint into this run (sharded or plain, any number of processes)."""
    from secfoundry.train import distributed

    path = Path(path)
    state = json.loads((path / STATE).read_text())
    distributed.load_sharded(path / distributed.DCP_DIR, model, opt, state["optimizer_settings"])
    rng = path / f"rng_rank{_rank()}.safetensors"
    if rng.exists():  # a rank the writing run did not have keeps its own seeded state
        torch.set_rng_state(load_file(str(rng))["torch_rng"])
    restore_python_rng(state)
    return state


def restore_python_rng(state: dict[str, Any]) -> None:
    v, internal, gauss = state["python_rng"]
    random.setstate((v, tuple(internal), gauss))


def latest_checkpoint(out_dir: Path) -> Path | None:
    ckdir = Path(out_dir) / "checkpoints"
    done = sorted(p for p in ckdir.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp") and (p / STATE).exists())
    return done[-1] if done else None


def prune_checkpoints(out_dir: Path, keep: int) -> None:
    ckdir = Path(out_dir) / "checkpoints"
    done = sorted(p for p in ckdir.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
    for p in done[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)


def _json_default(o: Any):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _publish(tmp: Path, path: Path, state: dict) -> None:
    """Write the trainer state (with the Python RNG) last, then swap the directory into place."""
    py_state = random.getstate()
    full = dict(state, python_rng=[py_state[0], list(py_state[1]), py_state[2]])
    (tmp / STATE).write_text(json.dumps(full, indent=1, default=_json_default))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
