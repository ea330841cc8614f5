"""Distributed training on CPU, measured: the real `secfoundry train run` once in one process and
under `accelerate launch --config_file configs/accelerate/fsdp-cpu.yaml` (2 processes, gloo,
FSDP2) and `configs/accelerate/deepspeed-cpu.yaml` (ZeRO-2 and ZeRO-3), same recipe, same global
batch; then both FSDP cross-world-size resumes (2 -> 1, 1 -> 2).

Reports the loss curves' largest difference, each run's wall and CPU seconds (children's
rusage) and the load average (the machine is shared). Markdown to stdout, JSON with --json.

  flock /tmp/sf-bench.lock .venv/bin/python bench/train_distributed.py [--layers 4 --hidden 128 --steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.train.conftest import make_shards  # noqa: E402  (the tests' shard writer: real on-disk format)

EXE = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str]) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.time()
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(time.time() - t, 1), "cpu_s": round(cpu, 1)}


def single(recipe: Path, out: Path, *sets: str, resume: bool = False) -> dict[str, float]:
    cmd = [str(EXE / "secfoundry"), "train", "run", str(recipe), "--out", str(out), "--no-progress"]
    return _run(cmd + [a for s in sets for a in ("--set", s)] + (["--resume"] if resume else []))


def launched(recipe: Path, out: Path, nproc: int, *sets: str, resume: bool = False) -> dict[str, float]:
    cmd = [str(EXE / "accelerate"), "launch", "--config_file", str(REPO / "configs/accelerate/fsdp-cpu.yaml"),
           "--num_processes", str(nproc), "--main_process_port", str(_port()), str(EXE / "secfoundry"),
           "train", "run", str(recipe), "--out", str(out), "--no-progress"]
    return _run(cmd + [a for s in sets for a in ("--set", s)] + (["--resume"] if resume else []))


def deepspeed(recipe: Path, out: Path, stage: int, *sets: str) -> dict[str, float]:
    cmd = [str(EXE / "accelerate"), "launch", "--config_file", str(REPO / "configs/accelerate/deepspeed-cpu.yaml"),
           "--zero_stage", str(stage), "--main_process_port", str(_port()), str(EXE / "secfoundry"),
           "train", "run", str(recipe), "--out", str(out), "--no-progress"]
    return _run(cmd + [a for s in sets for a in ("--set", s)])


def losses(out: Path) -> dict[int, float]:
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


def _tps(out: Path) -> float:
    """Median logged tokens/s after the first interval (training steps only, no start-up)."""
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    tps = sorted(r["tokens_per_s"] for r in recs if "tokens_per_s" in r)[1:]
    return round(tps[len(tps) // 2], 1) if tps else float("nan")


def cut(src: Path, dst: Path, step: int) -> Path:
    ck = f"step-{step:07d}"
    (dst / "checkpoints").mkdir(parents=True)
    shutil.copytree(src / "checkpoints" / ck, dst / "checkpoints" / ck)
    lines = [x for x in (src / "metrics.jsonl").read_text().splitlines() if json.loads(x)["step"] <= step]
    (dst / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return dst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    save_at = a.steps // 2
    tmp = Path(tempfile.mkdtemp(prefix="sf-dist-"))
    try:
        shards = make_shards(tmp / "shards", {"attack": 96, "cwe": 48}, seq_len=a.seq)
        llama = {"vocab_size": 512, "hidden_size": a.hidden, "intermediate_size": 2 * a.hidden,
                 "num_hidden_layers": a.layers, "num_attention_heads": 4, "num_key_value_heads": 2,
                 "max_position_embeddings": 256, "tie_word_embeddings": True}
        recipe = tmp / "recipe.yaml"
        recipe.write_text(yaml.safe_dump({
            "model": {"init_config": llama}, "data": {"shards": str(shards)}, "optim": {"lr": 3e-3},
            "schedule": {"kind": "cosine", "warmup_steps": 2}, "micro_batch_size": 4, "grad_accum": 2,
            "max_steps": a.steps, "save_every": save_at, "keep_checkpoints": 3, "log_every": 1,
            "eval_batches": 2, "mixed_precision": "bf16", "seed": 11, "threads": 1, "compile": False}))
        load = os.getloadavg()
        t1 = single(recipe, tmp / "one")
        t1h = single(recipe, tmp / "one-hf", "loss_chunk=0")  # the HF loss the sharded run uses
        t2 = launched(recipe, tmp / "two", 2, "micro_batch_size=2")
        r21 = single(recipe, cut(tmp / "two", tmp / "two-one", save_at), resume=True)
        r12 = launched(recipe, cut(tmp / "one", tmp / "one-two", save_at), 2, "micro_batch_size=2", resume=True)
        z2 = deepspeed(recipe, tmp / "zero2", 2, "micro_batch_size=2")
        z3 = deepspeed(recipe, tmp / "zero3", 3, "micro_batch_size=2")
        one, onehf, two = losses(tmp / "one"), losses(tmp / "one-hf"), losses(tmp / "two")
        zero2, zero3 = losses(tmp / "zero2"), losses(tmp / "zero3")
        s21, s12 = losses(tmp / "two-one"), losses(tmp / "one-two")
        steps = sorted(one)
        tail = [s for s in steps if s > save_at]
        res = {
            "model": f"random Llama {a.layers} layers, hidden {a.hidden}, vocab 512, seq {a.seq}",
            "global_batch_rows": 8, "steps": a.steps, "loadavg_start": [round(x, 1) for x in load],
            "loadavg_end": [round(x, 1) for x in os.getloadavg()],
            "max_abs_diff_2proc_vs_1proc": max(abs(two[s] - one[s]) for s in steps),
            "max_abs_diff_2proc_vs_1proc_same_loss_fn": max(abs(two[s] - onehf[s]) for s in steps),
            "max_abs_diff_zero2_vs_1proc": max(abs(zero2[s] - one[s]) for s in steps),
            "max_abs_diff_zero3_vs_1proc": max(abs(zero3[s] - one[s]) for s in steps),
            "max_abs_diff_resume_2to1": max(abs(s21[s] - two[s]) for s in tail),
            "max_abs_diff_resume_1to2": max(abs(s12[s] - one[s]) for s in tail),
            "loss_first_last_1proc": [one[steps[0]], one[steps[-1]]],
            "loss_first_last_2proc": [two[steps[0]], two[steps[-1]]],
            "time_1proc": t1, "time_1proc_hf_loss": t1h, "time_2proc_fsdp": t2,
            "time_resume_2to1": r21, "time_resume_1to2": r12, "time_zero2": z2, "time_zero3": z3,
            "tokens_per_s_1proc": _tps(tmp / "one"), "tokens_per_s_2proc_fsdp": _tps(tmp / "two"),
            "tokens_per_s_zero2": _tps(tmp / "zero2"), "tokens_per_s_zero3": _tps(tmp / "zero3"),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{res['model']}, {a.steps} steps x 8 rows, loadavg {res['loadavg_start']} -> {res['loadavg_end']}\n")
    print("| | value |\n|---|---|")
    for k, v in res.items():
        if k.startswith("max_abs"):
            print(f"| {k} | {v:.2e} |")
        elif k.startswith("time_"):
            print(f"| {k} | {v['wall_s']} s wall, {v['cpu_s']} s CPU |")
        elif k.startswith("loss_"):
            print(f"| {k} | {v[0]:.3f} -> {v[1]:.3f} |")
        elif k.startswith("tokens_per_s"):
            print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
