"""Continued pretraining loop (single process, or distributed under ``accelerate launch``).

Speed choices (measured in bench/train_throughput.py, figures in BENCHMARKS.md): packed rows with
no padding, fused AdamW, fp32 master weights with bf16 autocast where the hardware has native bf16
(``mixed_precision: auto``; fp32 elsewhere), loss accumulated on device and
read back only when logging (no per-step host syncs), the loss computed from hidden states in
chunks so the (tokens x vocab) fp32 logits never exist (train/loss.py), and torch.compile of the
decoder layers (``compile: layers``; one compiled graph shared by every layer).

Over 400 lines on purpose: one loop whose set-up, step, checkpoint and distributed branches share
the run's local state; split, a dozen values would travel between modules.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from secfoundry.train import checkpoint as ckpt
from secfoundry.train import distributed as dist_
from secfoundry.train.config import TrainConfig, dumps, resolve_mixed_precision
from secfoundry.train.data import MixedBatches, eval_batches, is_general
from secfoundry.train.loss import causal_lm_loss, supports_fused_loss
from secfoundry.train.model import compile_mode, compile_model, export_hf, flops_per_token, load_model, load_tokenizer
from secfoundry.train.schedule import lr_at


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    tokens: int
    final_loss: float
    evals: dict[str, float] = field(default_factory=dict)
    export_dir: Path | None = None
    wall_s: float = 0.0


def param_group_names(model: torch.nn.Module) -> list[list[str]]:
    """Parameter names of the two AdamW groups, in optimizer order: decayed, then not decayed
    (norms, biases and embeddings: decaying them only hurts a pretrained model)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "embed" in name else decay).append(name)
    return [decay, no_decay]


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    params = dict(model.named_parameters())
    decay, no_decay = param_group_names(model)
    return [{"params": [params[n] for n in decay], "weight_decay": weight_decay},
            {"params": [params[n] for n in no_decay], "weight_decay": 0.0}]


class Trainer:
    def __init__(self, cfg: TrainConfig, *, on_log: Callable[[dict[str, Any]], None] | None = None,
                 stop_after: int | None = None):
        self.cfg = cfg
        self.on_log = on_log
        self.stop_after = stop_after  # stop (as if killed) after this many steps: resume tests
        self.out = Path(cfg.out_dir)

    # ------------------------------------------------------------------------------------------
    def run(self, resume: bool = False, progress: bool = True) -> TrainResult:
        from accelerate import Accelerator

        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        precision = resolve_mixed_precision(cfg.mixed_precision)
        _forget_other_precision(precision)
        acc = Accelerator(mixed_precision=precision,
                          **dist_.accelerator_kwargs(cfg.grad_accum))
        self.acc = acc
        self.deepspeed = acc.distributed_type.value == "DEEPSPEED"
        rank = acc.process_index
        self.out.mkdir(parents=True, exist_ok=True)
        if acc.is_main_process:
            (self.out / "config.json").write_text(dumps(cfg))

        torch.manual_seed(cfg.seed)  # the same initial weights on every rank (scratch models)
        with dist_.model_init_context(acc):
            model = load_model(cfg.model)
        torch.manual_seed(cfg.seed + rank)
        random.seed(cfg.seed + rank)
        np.random.seed((cfg.seed + rank) % 2**32)
        tokenizer = None
        if cfg.model.init_config is None or cfg.model.tokenizer:
            try:
                tokenizer = load_tokenizer(cfg.model)
            except Exception:  # a scratch model may have no tokenizer; export then skips it
                tokenizer = None
        data = MixedBatches(cfg.data.shards, weights=cfg.data.weights or None, replay_shards=cfg.data.replay_shards,
                            replay_ratio=cfg.data.replay_ratio, seq_len=cfg.data.seq_len,
                            micro_batch_size=cfg.micro_batch_size, seed=cfg.seed * 1000)
        seq_len = data.seq_len
        fpt = flops_per_token(model, seq_len)  # before any sharding: counts the whole model
        # FSDP on CPU: accelerate launched the processes but shards only on accelerators; the
        # trainer applies FSDP2 itself (train/distributed.py) and keeps the optimizer its own.
        self.own_fsdp = dist_.needs_own_fsdp(acc.distributed_type.value)
        if self.own_fsdp:
            dist_.shard_model(model, dist_.FsdpSettings.from_env())
        opt = torch.optim.AdamW(_param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps, fused=cfg.optim.fused)
        if self.deepspeed:
            dist_.fill_deepspeed_config(acc, cfg.micro_batch_size, cfg.grad_accum, cfg.optim.grad_clip)
        if not self.own_fsdp:
            model, opt = acc.prepare(model, opt)
        self.sharded = self.own_fsdp or acc.distributed_type.value == "FSDP"
        # The fused loss reads the head weight directly, which only a bare (unwrapped) module
        # allows: DeepSpeed/FSDP shard parameters and gather them in module hooks, DDP expects
        # its own forward. Those runs keep the HF loss over full logits.
        self.fused_loss = (cfg.loss_chunk > 0 and acc.distributed_type.value == "NO"
                           and supports_fused_loss(acc.unwrap_model(model)))
        # "auto" leaves the CPU FSDP2 path eager: compiling around its per-layer gather hooks is
        # untested here (an explicit `compile: layers` still asks for it).
        self.compile_mode = ("none" if self.own_fsdp and str(cfg.compile).lower() == "auto" else
                             compile_mode(cfg.compile, max_steps=cfg.max_steps, distributed=acc.distributed_type.value))
        t_compile = time.time()
        compile_model(acc.unwrap_model(model), self.compile_mode, base_only=self.fused_loss)

        step, tokens_seen, history = 0, 0, []
        if resume:
            last = ckpt.latest_checkpoint(self.out)
            if last is not None:
                state = self._load(last, model, opt)
                data.load_state_dict(state["data"])
                np.random.set_state(_np_state_from_json(state["numpy_rng"]))
                step, tokens_seen = state["step"], state["tokens"]
                acc.print(f"resumed from {last} at step {step}")
        metrics_path = self.out / "metrics.jsonl"
        if not resume and metrics_path.exists() and acc.is_main_process:
            metrics_path.unlink()

        tb = None
        if cfg.tensorboard and acc.is_main_process:
            try:
                from torch.utils.tensorboard import SummaryWriter

                tb = SummaryWriter(str(self.out / "tb"))
            except ImportError:
                acc.print("tensorboard not installed; logging JSONL only")

        model.train()
        t_start = time.time()
        t_log, tok_log = time.time(), tokens_seen
        loss_acc = torch.zeros((), device=acc.device)
        n_acc = 0
        final_loss, last_evals = _logged_tail(metrics_path) if resume else (float("nan"), {})
        if step >= cfg.max_steps and (self.out / "final").is_dir():
            # A finished run resumed: nothing to train, evaluate, save or export again.
            return TrainResult(self.out, step, tokens_seen, final_loss, last_evals, self.out / "final", 0.0)
        prog = _progress(progress and acc.is_main_process, cfg.max_steps, step)
        steps_this_run = 0
        while step < cfg.max_steps:
            lr = lr_at(step, cfg.max_steps, cfg.optim, cfg.schedule)
            for g in opt.param_groups:
                g["lr"] = lr
            for micro in range(cfg.grad_accum):
                batch = data.next_batch(rank, acc.num_processes).to(acc.device)
                last_micro = micro == cfg.grad_accum - 1
                if self.own_fsdp:
                    dist_.set_gradient_sync(model, last_micro)
                if self.deepspeed:
                    # The engine accumulates itself: mark the boundary; the loss is already divided.
                    acc.gradient_state._set_sync_gradients(last_micro)
                    ctx = _null()
                else:
                    ctx = acc.no_sync(model) if not last_micro and not self.own_fsdp else _null()
                with ctx, acc.autocast():
                    loss = self._loss(model, batch) / cfg.grad_accum
                acc.backward(loss, **({"scale_wrt_gas": False} if self.deepspeed else {}))
                loss_acc += loss.detach()
            n_acc += 1
            if self.deepspeed:  # the engine clipped and stepped in acc.backward (gradient_clipping)
                gnorm = torch.tensor(float(acc.deepspeed_engine_wrapped.get_global_grad_norm() or 0.0))
            elif cfg.optim.grad_clip and cfg.optim.grad_clip > 0 and self.own_fsdp:
                gnorm = dist_.clip_grad_norm(list(model.parameters()), cfg.optim.grad_clip)
            elif cfg.optim.grad_clip and cfg.optim.grad_clip > 0:
                gnorm = acc.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            else:
                gnorm = torch.zeros(())
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            steps_this_run += 1
            tokens_seen += cfg.micro_batch_size * cfg.grad_accum * seq_len * acc.num_processes
            if prog:
                prog.update(step)
            if steps_this_run == 1 and self.compile_mode != "none":
                # Compilation happens lazily in the first step; its cost is worth knowing.
                acc.print(f"first step (incl. torch.compile) took {time.time() - t_compile:.1f} s")
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                now = time.time()
                mean_loss = (acc.reduce(loss_acc, "mean") / max(1, n_acc)).item()  # the only host sync
                tps = (tokens_seen - tok_log) / max(1e-9, now - t_log)
                rec = {"step": step, "loss": mean_loss, "lr": lr, "grad_norm": float(gnorm), "tokens": tokens_seen,
                       "tokens_per_s": tps, "elapsed_s": now - t_start}
                if cfg.peak_flops:
                    rec["mfu"] = fpt * tps / (cfg.peak_flops * acc.num_processes)
                final_loss = mean_loss
                history.append(rec)
                self._log(rec, metrics_path, tb)
                loss_acc.zero_()
                n_acc, t_log, tok_log = 0, now, tokens_seen
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
                self._log({"step": step, **self.evaluate(model, seq_len)}, metrics_path, tb)
            if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
                self._save(model, opt, data, step, tokens_seen)
            if self.stop_after is not None and steps_this_run >= self.stop_after:
                self._save(model, opt, data, step, tokens_seen)
                if prog:
                    prog.stop()
                return TrainResult(self.out, step, tokens_seen, final_loss, wall_s=time.time() - t_start)
        if prog:
            prog.stop()
        evals = self.evaluate(model, seq_len)
        self._log({"step": step, **evals}, metrics_path, tb)
        self._save(model, opt, data, step, tokens_seen)
        export_dir = None
        # Sharded weights are gathered first (a collective: every rank takes part).
        if self.sharded:
            weights = dist_.full_state_dict(model)
        elif acc.distributed_type.value == "DEEPSPEED":
            weights = acc.get_state_dict(model)
        else:
            weights = None
        if acc.is_main_process:
            export_dir = export_hf(acc.unwrap_model(model), tokenizer, self.out / "final", state_dict=weights)
        acc.wait_for_everyone()
        return TrainResult(self.out, step, tokens_seen, final_loss, evals, export_dir, time.time() - t_start)

    def _loss(self, model, batch: torch.Tensor) -> torch.Tensor:
        if self.fused_loss:
            return causal_lm_loss(self.acc.unwrap_model(model), batch, chunk=self.cfg.loss_chunk,
                                  compiled=self.compile_mode != "none")
        return model(input_ids=batch, labels=batch, use_cache=False).loss

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model, seq_len: int) -> dict[str, float]:
        """Held-out perplexity on the corpus test split (and on general text when configured)."""
        cfg, acc = self.cfg, self.acc
        # The corpus test split holds both security and replay (general:*) documents: report
        # them apart, since the experiment wants security up and general not down.
        sets = [("security", cfg.data.shards, lambda s: not is_general(s)),
                ("general", cfg.data.shards, is_general)]
        if cfg.general_eval_shards:
            sets[1] = ("general", cfg.general_eval_shards, None)
        elif cfg.data.replay_shards:
            sets[1] = ("general", cfg.data.replay_shards, None)
        was_training = model.training
        model.eval()
        res = {}
        # Eval runs the compiled layers eagerly: no-grad/eval mode and the last, smaller batch
        # would each trigger a recompile that costs more than a few forward passes gain.
        stance = torch.compiler.set_stance("force_eager") if self.compile_mode != "none" else _null()
        with stance:
            results = [(name, heldout_loss(model, shards, cfg.data.eval_split, seq_len, cfg.micro_batch_size,
                                           cfg.eval_batches, select, acc.device, acc.autocast, fused=self.fused_loss))
                       for name, shards, select in sets]
        for name, r in results:
            if r is not None:
                res[f"eval_{name}_loss"] = r
                res[f"eval_{name}_ppl"] = math.exp(r)
        if was_training:
            model.train()
        return res

    def _save(self, model, opt, data: MixedBatches, step: int, tokens: int) -> None:
        acc = self.acc
        path = self.out / "checkpoints" / f"step-{step:07d}"
        # The data position is one global stream, the same on every rank (data.next_batch).
        state = {"step": step, "tokens": tokens, "data": data.state_dict(),
                 "numpy_rng": _np_state_to_json(np.random.get_state()), "config": self.cfg.to_dict(),
                 "world_size": acc.num_processes,
                 "global_batch_rows": self.cfg.micro_batch_size * self.cfg.grad_accum * acc.num_processes}
        if self.sharded:
            ckpt.save_sharded_checkpoint(path, model, opt, state, main=acc.is_main_process,
                                         barrier=acc.wait_for_everyone)
        elif acc.distributed_type.value == "DEEPSPEED":
            acc.save_state(str(path / "accelerate"))  # ZeRO partitions in DeepSpeed's own format
            if acc.is_main_process:
                (path / ckpt.STATE).write_text(json.dumps(state, default=ckpt._json_default))
        elif acc.is_main_process:
            ckpt.save_checkpoint(path, acc.unwrap_model(model), opt, state)
        acc.wait_for_everyone()
        if acc.is_main_process:
            ckpt.prune_checkpoints(self.out, self.cfg.keep_checkpoints)

    def _load(self, last: Path, model, opt) -> dict[str, Any]:
        """Any checkpoint kind into this run, whatever world size wrote it (sharded ones reshard)."""
        acc = self.acc
        if (last / "accelerate").is_dir():
            # DeepSpeed: ZeRO partitions in the engine's own format (same world size only).
            acc.load_state(str(last / "accelerate"))
            state = json.loads((last / ckpt.STATE).read_text())
        elif (last / dist_.DCP_DIR).is_dir():
            state = ckpt.load_sharded_checkpoint(last, model, opt)
        elif self.sharded:
            # A single-process checkpoint continued by a sharded run.
            state = json.loads((last / ckpt.STATE).read_text())
            dist_.load_full_into(last, model, opt, state)
            ckpt.restore_python_rng(state)
        else:
            state = ckpt.load_checkpoint(last, acc.unwrap_model(model), opt)
        rows = self.cfg.micro_batch_size * self.cfg.grad_accum * acc.num_processes
        if state.get("world_size", 1) != acc.num_processes:
            acc.print(f"{last}: written by {state.get('world_size', 1)} process(es), resumed on {acc.num_processes}")
        if state.get("global_batch_rows", rows) != rows:
            acc.print(f"warning: global batch changes from {state['global_batch_rows']} to {rows} rows per step "
                      "(micro_batch_size x grad_accum x processes); the loss curve will not continue exactly")
        return state

    def _log(self, rec: dict[str, Any], path: Path, tb) -> None:
        if not self.acc.is_main_process:
            return
        with path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        if tb is not None:
            for k, v in rec.items():
                if k != "step" and isinstance(v, (int, float)):
                    tb.add_scalar(k, v, rec["step"])
        if self.on_log:
            self.on_log(rec)


@torch.no_grad()
def heldout_loss(model, shards, split: str, seq_len: int | None, micro_batch_size: int, max_batches: int,
                 select=None, device="cpu", autocast=None, fused: bool | None = None) -> float | None:
    """Mean next-token loss over held-out packed rows (None when the selection is empty).

    ``fused`` (default: when the model is a bare single-process HF model that supports it)
    computes the loss without materialising the (rows x vocab) logits.
    """
    if fused is None:
        from transformers import PreTrainedModel

        fused = (isinstance(model, PreTrainedModel) and supports_fused_loss(model)
                 and not (torch.distributed.is_available() and torch.distributed.is_initialized()))
    total, count = 0.0, 0
    for batch in eval_batches(shards, split, seq_len, micro_batch_size, max_batches, sources=select):
        batch = batch.to(device)
        ctx = autocast() if autocast else torch.autocast("cpu", dtype=torch.bfloat16)
        with ctx:
            if fused:
                loss = causal_lm_loss(model, batch)
            else:
                loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        n = batch.numel() - batch.shape[0]
        total += float(loss) * n
        count += n
    return total / count if count else None


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _progress(enabled: bool, total: int, start: int):
    if not enabled:
        return None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    p = Progress(TextColumn("train"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                 TimeElapsedColumn(), TimeRemainingColumn())
    p.start()
    task = p.add_task("train", total=total, completed=start)

    class _P:
        def update(self, step):
            p.update(task, completed=step)

        def stop(self):
            p.stop()

    return _P()


def _np_state_to_json(st) -> list:
    return [st[0], st[1].tolist(), int(st[2]), int(st[3]), float(st[4])]


def _np_state_from_json(st) -> tuple:
    return (st[0], np.array(st[1], dtype=np.uint32), st[2], st[3], st[4])


def _logged_tail(metrics_path: Path) -> tuple[float, dict[str, float]]:
    """The last logged train loss and the last held-out evaluation of an earlier (resumed) run."""
    loss, evals = float("nan"), {}
    if metrics_path.exists():
        for line in metrics_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            if "loss" in rec:
                loss = float(rec["loss"])
            elif any(k.startswith("eval_") for k in rec):
                evals = {k: v for k, v in rec.items() if k != "step"}
    return loss, evals


def train(cfg: TrainConfig, resume: bool = False, **kw) -> TrainResult:
    return Trainer(cfg, **kw).run(resume=resume)


def _forget_other_precision(precision: str) -> None:
    """accelerate keeps one process-wide AcceleratorState and refuses a second Accelerator with
    another mixed precision. A single (non-launched) process may run several trainings (tests, a
    notebook) whose precisions differ, so drop the stale state there; launched ranks keep theirs.
    Private accelerate API: no public way to do this exists."""
    from accelerate.state import AcceleratorState

    shared = AcceleratorState._shared_state
    if shared and int(os.environ.get("WORLD_SIZE", "1")) == 1 and str(shared.get("mixed_precision")) != precision:
        AcceleratorState._reset_state()
