"""Helpers of bench/gpu_check.sh (see there): random-token shards, scoring throughput, summary.

    python bench/gpu_check.py shards OUT_DIR --vocab 49152 --seq 512 --rows 4096
    python bench/gpu_check.py score MODEL_DIR --seq 512 --batch 32 --iters 20 --json OUT.json
    python bench/gpu_check.py summary RESULTS --to OUT [--replicate RUN]
        # RESULTS/*/metrics.jsonl, plan-*.json, mem-*.csv, score-*.json, info-*.txt, failures.txt,
        # conversion.json; RUN: bench/gpu_replicate.py's run directory (sizing.json, comparison.md,
        # summary.json). Writes OUT/summary.json, OUT/summary.md and OUT/metrics.jsonl (every run's
        # records with a "run" field: one file, the device returns at most 8).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def make_shards(out: Path, vocab: int, seq: int, rows: int, seed: int = 0) -> Path:
    """Uniform random tokens in the real packed-shard format (train + test splits, one source).
    Throughput does not depend on token values; the loss of such data cannot drop below ln(vocab)."""
    import numpy as np

    from secfoundry.corpus.prepare.shards import Manifest, SourceShards, dtype_for_vocab

    rng = np.random.default_rng(seed)
    dtype = dtype_for_vocab(vocab)
    man = Manifest(tokenizer="random", seq_len=seq, dtype=dtype, eos_id=0, vocab_size=vocab)
    for split, n in (("train", rows), ("test", max(8, rows // 16))):
        rel = f"{split}/random/shard-00000.bin"
        (out / split / "random").mkdir(parents=True, exist_ok=True)
        rng.integers(0, vocab, size=(n, seq)).astype("<u2" if dtype == "uint16" else "<u4").tofile(out / rel)
        man.splits.setdefault(split, {})["random"] = SourceShards(files=[rel], n_seqs=n, n_tokens=n * seq, n_docs=n)
    man.save(out)
    return out


def score(model_dir: Path, seq: int, batch: int, iters: int, warmup: int = 3) -> dict:
    """Evaluation-style scoring throughput: bf16 (fp32 on CPU) forward passes with no gradient over full rows
    (what perplexity and log-likelihood multiple-choice scoring do), tokens/s after warm-up."""
    import torch
    from transformers import AutoModelForCausalLM

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32  # bf16 is emulated (slow) on most CPUs
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(dev).eval()
    vocab = model.config.vocab_size
    x = torch.randint(0, vocab, (batch, seq), device=dev)
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            if dev == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            logits = model(input_ids=x).logits
            # next-token log-likelihood of every row, as perplexity / option scoring computes it
            torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, x[:, 1:, None]).sum().item()
            if dev == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"model": str(model_dir), "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
            "batch": batch, "seq": seq, "iters": iters, "median_s": med, "tokens_per_s": batch * seq / med}


def summary(out: Path, replicate: Path | None = None) -> dict:
    """Per run: median tokens/s and MFU over the logged intervals after the first (the first
    includes torch.compile and warm-up), the final eval losses, the plan's prediction; then the
    replication run's sizing, timings and comparison table when ``replicate`` is given."""
    res: dict = {"runs": {}}
    for m in sorted(out.glob("*/metrics.jsonl")):
        recs = [json.loads(line) for line in m.read_text().splitlines() if line.strip()]
        steps = [r for r in recs if "tokens_per_s" in r]
        timed = steps[1:] or steps
        run = {"logged_intervals": len(steps), "steps": steps[-1]["step"] if steps else 0,
               "tokens": steps[-1]["tokens"] if steps else 0,
               "tokens_per_s": statistics.median(r["tokens_per_s"] for r in timed) if timed else None,
               "mfu": statistics.median(r["mfu"] for r in timed) if timed and "mfu" in timed[0] else None,
               "final_loss": steps[-1]["loss"] if steps else None,
               "evals": {k: v for r in recs if "tokens_per_s" not in r for k, v in r.items() if k != "step"}}
        name = m.parent.name
        info = out / f"info-{name}.txt"
        if info.exists():
            run["model_data"] = info.read_text().strip()
        plan = out / f"plan-{name}.json"
        if plan.exists():
            p = json.loads(plan.read_text())
            run["plan"] = p  # the `train plan --json` prediction for the same recipe and overrides
        mem = out / f"mem-{name}.csv"  # nvidia-smi memory.used samples (MiB), context + allocator cache
        vals = [int(v) for v in mem.read_text().split() if v.strip().isdigit()] if mem.exists() else []
        if vals:
            run["nvidia_smi_peak_gib"] = max(vals) / 1024
        res["runs"][name] = run
    for s in sorted(out.glob("score-*.json")):
        res.setdefault("scoring", {})[s.stem[len("score-"):]] = json.loads(s.read_text())
    if (out / "failures.txt").exists():
        res["failures"] = [x for x in (out / "failures.txt").read_text().splitlines() if x.strip()]
    conv = out / "conversion.json"
    if conv.exists() and conv.read_text().strip():
        c = json.loads(conv.read_text())
        res["conversion"] = {k: c.get(k) for k in ("gguf_sha256", "weights_sha256", "transformers_version",
                                                   "converted_seconds")}
        res["conversion"]["canary_verified"] = (c.get("canary") or {}).get("verified_identical_to_gguf")
    if replicate and replicate.is_dir():
        rep: dict = {}
        for name, key in (("sizing.json", "sizing"), ("summary.json", "experiment")):
            if (replicate / name).exists():
                rep[key] = json.loads((replicate / name).read_text())
        for tag in ("base", "cpt"):  # per-item option picks: in replicate_summary.json, not here
            opts = ((rep.get("experiment") or {}).get(tag) or {}).get("options")
            if isinstance(opts, dict):
                opts.pop("items", None)
        if (replicate / "comparison.md").exists():
            rep["comparison_md"] = (replicate / "comparison.md").read_text()
        res["replication"] = rep
    return res


def combined_metrics(out: Path, replicate: Path | None) -> str:
    """Every run's metrics.jsonl records, each with its run name, as one JSONL text."""
    files = [(m.parent.name, m) for m in sorted(out.glob("*/metrics.jsonl"))]
    if replicate and (replicate / "train" / "metrics.jsonl").exists():
        files.append(("replication", replicate / "train" / "metrics.jsonl"))
    lines = []
    for name, m in files:
        for line in m.read_text().splitlines():
            if line.strip():
                lines.append(json.dumps({"run": name, **json.loads(line)}))
    return "\n".join(lines) + ("\n" if lines else "")


def markdown(res: dict) -> str:
    lines = ["| run | model / data | steps | tokens | tokens/s | MFU | final loss | plan: tokens/s at 40% MFU | plan: per-GPU GiB | nvidia-smi peak GiB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in res["runs"].items():
        tps = f"{r['tokens_per_s']:,.0f}" if r["tokens_per_s"] else "-"
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        loss = f"{r['final_loss']:.3f}" if r["final_loss"] is not None else "-"
        plan = f"{r['plan']['per_gpu_total_gib']:.1f}" if "plan" in r else "-"
        ptps = f"{r['plan']['tokens_per_s']:,.0f}" if "plan" in r and r["plan"].get("tokens_per_s") else "-"
        smi = f"{r['nvidia_smi_peak_gib']:.1f}" if "nvidia_smi_peak_gib" in r else "-"
        lines.append(f"| {name} | {r.get('model_data', '-')} | {r['steps']} | {r['tokens']:,} | {tps} | {mfu} | {loss} "
                     f"| {ptps} | {plan} | {smi} |")
    for name, s in res.get("scoring", {}).items():
        lines.append(f"| scoring {name} ({'bf16' if s['device'] != 'cpu' else 'fp32, CPU'}, no grad, {s['batch']}x{s['seq']}) | | | | {s['tokens_per_s']:,.0f} | | | | | |")
    if "conversion" in res:
        c = res["conversion"]
        lines += ["", f"GGUF conversion on this machine (models/embedded.py): {c.get('converted_seconds')} s, "
                      f"canary logits identical to the GGUF: {c.get('canary_verified')}, transformers "
                      f"{c.get('transformers_version')}, weights sha256 {c.get('weights_sha256')}"]
    rep = res.get("replication")
    if rep:
        sz = rep.get("sizing", {})
        tr = (rep.get("experiment") or {}).get("train", {})
        lines += ["", "## Replication at GPU scale", "",
                  f"Device {sz.get('device')}; {sz.get('micro_batch')} x {sz.get('seq')} tokens per step; "
                  f"planned {sz.get('steps')} steps = {sz.get('tokens', 0):,} tokens ({sz.get('epochs')} epochs of "
                  f"the {sz.get('corpus_train_tokens', 0):,}-token corpus; "
                  + (f"target {sz['target_tokens']:,}" if sz.get("target_tokens") else "fixed step count")
                  + f"{', capped by the time left' if sz.get('capped_by_time') else ''}); trained "
                  f"{tr.get('tokens', 0):,} tokens in {sz.get('train_s', '-')} s; base evaluation "
                  f"{sz.get('base_eval_s')} s, continued {sz.get('eval_cpt_s', '-')} s.", ""]
        if rep.get("comparison_md"):
            lines.append(rep["comparison_md"].rstrip())
    if res.get("failures"):
        lines += ["", "Failures:", *[f"- {f}" for f in res["failures"]]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("shards")
    a.add_argument("out", type=Path)
    a.add_argument("--vocab", type=int, required=True)
    a.add_argument("--seq", type=int, required=True)
    a.add_argument("--rows", type=int, required=True)
    b = sub.add_parser("score")
    b.add_argument("model", type=Path)
    b.add_argument("--seq", type=int, default=512)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--iters", type=int, default=20)
    b.add_argument("--json", type=Path, required=True)
    c = sub.add_parser("summary")
    c.add_argument("src", type=Path, help="results folder: NAME/metrics.jsonl, plan-NAME.json, mem-NAME.csv, score-NAME.json")
    c.add_argument("--to", type=Path, required=True, help="where summary.json, summary.md and metrics.jsonl go")
    c.add_argument("--replicate", type=Path, help="bench/gpu_replicate.py's run directory")
    args = ap.parse_args()
    if args.cmd == "shards":
        print(make_shards(args.out, args.vocab, args.seq, args.rows))
    elif args.cmd == "score":
        r = score(args.model, args.seq, args.batch, args.iters)
        args.json.write_text(json.dumps(r, indent=2))
        print(json.dumps(r))
    else:
        res = summary(args.src, args.replicate)
        args.to.mkdir(parents=True, exist_ok=True)
        (args.to / "summary.json").write_text(json.dumps(res, indent=2))
        (args.to / "metrics.jsonl").write_text(combined_metrics(args.src, args.replicate))
        md = markdown(res)
        (args.to / "summary.md").write_text(md + "\n")
        print(md)


if __name__ == "__main__":
    main()
