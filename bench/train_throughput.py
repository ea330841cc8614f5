"""Training throughput: the secfoundry trainer vs the HF Trainer, same model, data and settings.

SmolLM2-135M (the embedded default), bf16 autocast with fp32 master weights, AdamW, packed rows
(no padding) of general text, the same micro-batch, accumulation, LR schedule, weight decay,
betas and clipping. Each configuration runs in its own subprocess (so peak memory, max RSS, is
per configuration), and the subprocesses take turns step by step: only one computes at a time,
and every configuration sees the same machine load (the machine is shared; sequential runs
would compare different loads). Warm-up steps, which include torch.compile, are excluded from
tokens/s; the first step's time is reported on its own.

    .venv/bin/python bench/train_throughput.py --steps 8 --warmup 2 --seq 512 1024
    .venv/bin/python bench/train_throughput.py --variants ours ours:compile=false,loss_chunk=0 hf hf:torch_compile=true
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GENERAL = REPO.parent / "shared" / "data" / "datasets" / "general-text" / "wikitext2-valid-test.articles.jsonl"
LR, WD, BETA2, CLIP = 1e-4, 0.1, 0.95, 1.0  # ours: optim defaults below; HF: set to the same


def make_shards(out: Path, seq_len: int) -> Path:
    from secfoundry.corpus.prepare.pack import PackConfig, load_tokenizer, pack_partition, write_manifest

    rows = []
    with GENERAL.open() as f:
        for i, line in enumerate(f):
            rec = json.loads(line)
            rows.append({"id": f"w{i}", "text": rec.get("text", ""), "source": "wikitext"})
    cfg = PackConfig(seq_len=seq_len, test_fraction=0.0)
    pack_partition(rows, out, "p0", cfg, tokenizer=load_tokenizer("smollm2-135m-instruct"))
    write_manifest(out, cfg)
    return out


class Turns:
    """Step boundaries: report the finished step, then wait for the parent's go (one config
    computes at a time). Step time = from the go to the end of the step."""

    def __init__(self):
        self.start: float | None = None
        self.times: list[float] = []

    def boundary(self) -> None:
        now = time.perf_counter()
        if self.start is not None:
            self.times.append(now - self.start)
        print("@@done", flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("parent went away")
        self.start = time.perf_counter()


def worker(kind: str, opts: dict, shards: str, seq: int, mb: int, ga: int, steps: int) -> dict:
    import torch

    threads = int(os.environ.get("BENCH_THREADS", "2"))
    torch.set_num_threads(threads)
    turns = Turns()
    if kind == "ours":
        import secfoundry.train.trainer as T
        from secfoundry.train.config import TrainConfig

        cfg = TrainConfig.from_dict({
            "model": {"name_or_path": "smollm2-135m-instruct"}, "data": {"shards": shards, "seq_len": seq},
            "optim": {"lr": LR, "weight_decay": WD, "beta2": BETA2, "grad_clip": CLIP, "fused": True},
            "schedule": {"kind": "cosine", "warmup_steps": 1},
            "out_dir": tempfile.mkdtemp(), "micro_batch_size": mb, "grad_accum": ga, "max_steps": steps,
            "log_every": 1, "eval_batches": 0, "mixed_precision": "bf16", "threads": threads, **opts,
        })
        # Boundary 0 before the first step (the first lr_at call), then one after every step.
        orig_lr_at, first = T.lr_at, [True]

        def lr_at(*a, **k):
            if first[0]:
                first[0] = False
                turns.boundary()
            return orig_lr_at(*a, **k)

        T.lr_at = lr_at
        T.export_hf = lambda *a, **k: None  # throughput only: no export, checkpoint or eval
        tr = T.Trainer(cfg, on_log=lambda r: turns.boundary() if "loss" in r else None)
        tr.evaluate = lambda *a, **k: {}
        tr._save = lambda *a, **k: None
        tr.run(progress=False)
        settings = {"compile": cfg.compile, "loss_chunk": cfg.loss_chunk, "optim": "torch.optim.AdamW(fused=True)"}
    else:
        import numpy as np
        from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

        from secfoundry.corpus.prepare.shards import Manifest, PackedSource
        from secfoundry.models.embedded import ensure_converted

        man = Manifest.load(Path(shards))
        src = PackedSource(Path(shards), man, "train", "wikitext")
        idx = np.random.default_rng(0).permutation(len(src))

        class DS(torch.utils.data.Dataset):
            def __len__(self):
                return 10**6

            def __getitem__(self, i):
                ids = torch.from_numpy(np.asarray(src[int(idx[i % len(idx)])][:seq]).astype(np.int64))
                return {"input_ids": ids, "labels": ids}

        class CB(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                turns.boundary()

            def on_step_end(self, args, state, control, **kw):
                turns.boundary()

        model = AutoModelForCausalLM.from_pretrained(ensure_converted(), dtype=torch.float32)
        # The same optimisation as ours; everything else is the Trainer's default (its default
        # optimizer, recorded below, is torch's fused AdamW; logging_steps stays at its default
        # of 500, so there is no per-step logging sync; no eval, no saving).
        args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=mb,
                                 gradient_accumulation_steps=ga, max_steps=steps, learning_rate=LR,
                                 weight_decay=WD, adam_beta2=BETA2, max_grad_norm=CLIP,
                                 lr_scheduler_type="cosine", warmup_steps=1, bf16=True, use_cpu=True,
                                 save_strategy="no", eval_strategy="no", report_to=[], dataloader_num_workers=0,
                                 disable_tqdm=True, **opts)
        t = Trainer(model=model, args=args, train_dataset=DS(), callbacks=[CB()])
        t.train()
        settings = {"optim": str(getattr(args.optim, "value", args.optim)), "torch_compile": args.torch_compile,
                    "logging_steps": args.logging_steps, "gradient_checkpointing": args.gradient_checkpointing,
                    "attn": model.config._attn_implementation}
    return {"times": turns.times, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "settings": settings}


def parse_variant(spec: str) -> tuple[str, str, dict]:
    """``ours``, ``hf`` or ``ours:compile=false,loss_chunk=0`` (values parsed as YAML)."""
    kind, _, rest = spec.partition(":")
    if kind not in ("ours", "hf"):
        raise SystemExit(f"variant {spec!r}: kind must be ours or hf")
    opts = {}
    for kv in filter(None, rest.split(",")):
        k, _, v = kv.partition("=")
        opts[k] = yaml.safe_load(v)
    return spec, kind, opts


def run_interleaved(variants: list[tuple[str, str, dict]], shards: Path, seq: int, mb: int, ga: int,
                    steps: int) -> dict[str, dict]:
    procs = {}
    for name, kind, opts in variants:
        cmd = [sys.executable, __file__, "--worker", kind, json.dumps(opts), str(shards), str(seq), str(mb), str(ga),
               str(steps)]
        procs[name] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, bufsize=1)
    out: dict[str, dict] = {}
    logs: dict[str, list[str]] = {n: [] for n in procs}

    def until_done(name: str) -> bool:
        """Read the worker's output up to its next boundary; False once it has exited."""
        p = procs[name]
        for line in p.stdout:
            if line.startswith("@@done"):
                return True
            if line.startswith("RESULT "):
                out[name] = json.loads(line[7:])
            logs[name].append(line)
        return False

    alive = [n for n in procs if until_done(n)]  # all loaded and waiting before their first step
    rnd = 0
    while alive:
        # ABBA order: who goes first alternates, so a load that drifts during a round does not
        # always favour the same configuration.
        for name in (list(alive) if rnd % 2 == 0 else list(reversed(alive))):
            procs[name].stdin.write("go\n")
            procs[name].stdin.flush()
            if not until_done(name):
                alive.remove(name)
        rnd += 1
    for name, p in procs.items():
        err = p.stderr.read()
        if p.wait() != 0 or name not in out:
            print("".join(logs[name])[-2000:], err[-4000:], file=sys.stderr)
            raise SystemExit(f"worker {name} seq={seq} failed")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--tokens-per-step", type=int, default=4096)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    # compile=layers is what compile: auto picks for the CPU recipe (400 steps); a bench run is
    # too short for auto to choose it, so it is named explicitly.
    ap.add_argument("--variants", nargs="+", default=["ours:compile=layers", "hf"],
                    help="ours[:key=val,...] (TrainConfig keys) or hf[:key=val,...] (TrainingArguments)")
    ap.add_argument("--worker", nargs=7, metavar=("KIND", "OPTS", "SHARDS", "SEQ", "MB", "GA", "STEPS"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "train_throughput.json"))
    a = ap.parse_args()
    if a.worker:
        k, opts, sh, seq, mb, ga, st = a.worker
        print("RESULT " + json.dumps(worker(k, json.loads(opts), sh, int(seq), int(mb), int(ga), int(st))), flush=True)
        return
    variants = [parse_variant(v) for v in a.variants]
    results, load = [], [os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        for seq in a.seq:
            shards = make_shards(Path(tmp) / f"s{seq}", seq)
            mb = max(1, min(a.micro_batch, a.tokens_per_step // seq))
            ga = max(1, a.tokens_per_step // (seq * mb))
            tps = mb * ga * seq
            got = run_interleaved(variants, shards, seq, mb, ga, a.steps)
            load.append(os.getloadavg())
            for name, _, _ in variants:
                r = got[name]
                timed = r["times"][a.warmup:]
                results.append({"variant": name, "seq": seq, "micro_batch": mb, "grad_accum": ga,
                                "tokens_per_step": tps, "tokens_per_s": tps * len(timed) / sum(timed),
                                "first_step_s": r["times"][0], "step_s": r["times"], "steps_timed": len(timed),
                                "peak_rss_gib": r["peak_rss_gib"], "settings": r["settings"]})
                print(json.dumps(results[-1]), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                       "load_avg": load, "results": results}, indent=1))
    base = next((n for n, k, _ in variants if k == "hf"), None)
    print(f"load average (1/5/15 min) at start and after each seq: {load}")
    print("| seq | variant | tok/s | vs HF Trainer | first step (s) | peak RSS |")
    print("|---|---|---|---|---|---|")
    for seq in a.seq:
        rs = [r for r in results if r["seq"] == seq]
        ref = next((r["tokens_per_s"] for r in rs if r["variant"] == base), None)
        for r in rs:
            ratio = f"{r['tokens_per_s'] / ref:.2f}x" if ref else "-"
            print(f"| {seq} | `{r['variant']}` | {r['tokens_per_s']:.0f} | {ratio} | {r['first_step_s']:.1f} "
                  f"| {r['peak_rss_gib']:.2f} GiB |")


if __name__ == "__main__":
    main()
