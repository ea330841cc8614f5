"""Evaluation throughput on the embedded SmolLM2-135M-Instruct (bf16, CPU threads as given).

Measures questions/s of `secfoundry eval run` (the runner end to end: prompts, backend, parsing,
samples.jsonl) on CTIBench-MCQ:

* 5-shot letter scoring (FAITH base-style prompts, log-probabilities of " A".." D"):
  - prefix cache + batching (the default: the trial's 5-shot block is run once, its KV reused,
    and the output layer runs only at the scored position),
  - batching without the prefix cache (every row carries the full 5-shot prompt),
  - neither (batch size 1, no cache);
* the same 5-shot letter scoring through lm-evaluation-harness's `hf` backend, on exactly the
  prompts the runner built (task file `bench/lm_eval_tasks/secfoundry_prompts.yaml`), with the
  per-item predictions and the accuracy compared;
* 0-shot generation (FAITH instruct chat prompt, greedy, capped new tokens), batched and not.

    .venv/bin/python bench/eval_throughput.py --items 200 --json bench/results/eval_throughput.json

Prints a Markdown table for BENCHMARKS.md. Needs `pip install lm-eval` (the `[bench]` extra)
unless `--skip-lmeval`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MODEL = "smollm2-135m-instruct"
TASK_DIR = Path(__file__).resolve().parent / "lm_eval_tasks"


def _samples(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]


def run_case(label: str, model, work: Path, **cfg_kw) -> dict:
    """One `eval run` (in-process, model already loaded) on ctibench-mcq; returns timings."""
    from secfoundry.eval.runner import RunConfig, run_eval

    out = work / label
    cfg = RunConfig(model=MODEL, benchmarks=["ctibench-mcq"], out=out, protocol="faith", **cfg_kw)
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_eval(cfg, model=model).results["ctibench-mcq"]
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    samples = _samples(out)
    n = len(samples)
    row = {"case": label, "items": n, "seconds": round(dt, 2), "q_per_s": round(n / dt, 3),
           "cpu_seconds": round(cpu, 2), "q_per_cpu_s": round(n / cpu, 3),
           "accuracy": res.get("score"), "n_valid": res.get("n_valid"), "out": str(out)}
    print(f"  {label}: {n} items in {dt:.1f}s = {n / dt:.2f} q/s, accuracy {res.get('score')}", flush=True)
    return row


def lm_eval_case(model_path: Path, prompts: list[dict], batch_size: int, work: Path) -> tuple[dict, list[int]]:
    """lm-evaluation-harness `hf` backend on the same prompts; returns (row, predicted indices)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    path = work / "lm_eval_prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in prompts), encoding="utf-8")
    os.environ["SECFOUNDRY_LMEVAL_PROMPTS"] = str(path)
    lm = HFLM(pretrained=str(model_path), dtype="bfloat16", batch_size=batch_size, device="cpu")
    tm = TaskManager(include_path=str(TASK_DIR))
    t0, c0 = time.perf_counter(), time.process_time()
    out = lm_eval.simple_evaluate(model=lm, tasks=["secfoundry_prompts"], task_manager=tm, log_samples=True,
                                  bootstrap_iters=0, verbosity="WARNING")
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    samples = sorted(out["samples"]["secfoundry_prompts"], key=lambda s: s["doc_id"])
    preds = []
    for s in samples:
        lls = [r[0] for r in s["filtered_resps"]]
        preds.append(max(range(len(lls)), key=lambda i: lls[i]))
    acc = out["results"]["secfoundry_prompts"]["acc,none"]
    n = len(samples)
    row = {"case": "lm-eval hf backend", "items": n, "seconds": round(dt, 2), "q_per_s": round(n / dt, 3),
           "cpu_seconds": round(cpu, 2), "q_per_cpu_s": round(n / cpu, 3),
           "accuracy": round(100 * acc, 2), "lm_eval_version": lm_eval.__version__}
    print(f"  lm-eval: {n} items in {dt:.1f}s = {n / dt:.2f} q/s, accuracy {row['accuracy']}", flush=True)
    return row, preds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=200, help="5-shot items for the cached run and lm-eval")
    ap.add_argument("--nocache-items", type=int, default=100)
    ap.add_argument("--unbatched-items", type=int, default=40)
    ap.add_argument("--gen-items", type=int, default=8)
    ap.add_argument("--gen-tokens", type=int, default=64, help="max new tokens for the 0-shot generation case")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--skip-lmeval", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write all figures here too")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from secfoundry.models import load_model
    from secfoundry.models.embedded import ensure_converted

    model_path = ensure_converted()
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cpus, load average {load[0]:.1f} at start; torch threads {args.threads}")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="sf-evalbench-") as tmp:
        work = Path(tmp)
        B = args.batch_size
        print("5-shot letter scoring (ctibench-mcq, FAITH base-style prompts):")
        cached = load_model(MODEL, threads=args.threads, batch_size=B)
        run_case("warmup", cached, work, mode="logprob", instruct=False, limit=8, batch_size=B)
        rows.append(run_case("secfoundry: prefix cache + batching", cached, work, mode="logprob", instruct=False,
                             limit=args.items, batch_size=B))
        base_samples = _samples(Path(rows[-1]["out"]))
        nocache = load_model(MODEL, threads=args.threads, batch_size=B, prefix_cache=False)
        rows.append(run_case("secfoundry: batching, no prefix cache", nocache, work, mode="logprob", instruct=False,
                             limit=args.nocache_items, batch_size=B))
        single = load_model(MODEL, threads=args.threads, batch_size=1, prefix_cache=False)
        rows.append(run_case("secfoundry: no batching, no prefix cache", single, work, mode="logprob",
                             instruct=False, limit=args.unbatched_items, batch_size=1))
        del nocache, single

        # Same answers with and without the cache (items both runs scored).
        ref = {s["item_id"]: s["answer"] for s in base_samples}
        for r in rows[1:]:
            other = _samples(Path(r["out"]))
            r["same_answers_as_cached"] = f"{sum(ref.get(s['item_id']) == s['answer'] for s in other)}/{len(other)}"

        agreement = None
        if not args.skip_lmeval:
            prefixes = {json.loads(x)["sha256"]: json.loads(x)["prefix"]
                        for x in (Path(rows[0]["out"]) / "prefixes.jsonl").read_text().splitlines()}
            prompts = [{"id": s["item_id"], "text": prefixes[s["prefix_sha256"]] + s["prompt"],
                        "choices": s["choice_labels"], "gold": s["choice_labels"].index(s["gold"])}
                       for s in base_samples]
            lm_row, preds = lm_eval_case(model_path, prompts, B, work)
            ours = [s["choice_labels"].index(s["answer"]) for s in base_samples]
            agreement = sum(a == b for a, b in zip(ours, preds))
            lm_row["same_answers_as_cached"] = f"{agreement}/{len(preds)}"
            rows.append(lm_row)
            rows[0]["speedup_vs_lm_eval"] = round(rows[0]["q_per_s"] / lm_row["q_per_s"], 2)

        print("0-shot generation (FAITH instruct chat prompt, greedy):")
        gen_rows = []
        tok = None
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(model_path))
        except Exception:  # noqa: BLE001 - token counts are optional
            pass
        for gb in (8, 1):
            gm = load_model(MODEL, threads=args.threads, batch_size=gb)
            r = run_case(f"secfoundry: generation, batch {gb}", gm, work, mode="generate", instruct=True,
                         limit=args.gen_items, batch_size=gb, max_new_tokens=args.gen_tokens)
            if tok is not None:
                outs = [s.get("output") or "" for s in _samples(Path(r["out"]))]
                ntok = sum(len(tok(o, add_special_tokens=False)["input_ids"]) for o in outs)
                r["generated_tokens"] = ntok
                r["gen_tok_per_s"] = round(ntok / r["seconds"], 1)
            gen_rows.append(r)
            del gm
        rows += gen_rows

    for r in rows:
        r.pop("out", None)
    end_load = os.getloadavg()
    meta = {"model": MODEL, "dtype": "bfloat16", "threads": args.threads, "batch_size": args.batch_size,
            "gen_tokens": args.gen_tokens, "load_average_start": round(load[0], 1),
            "load_average_end": round(end_load[0], 1), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print()
    print("| case | items | wall s | questions/s | CPU s | questions/CPU-s | accuracy | same answers as cached |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        extra = f" ({r['gen_tok_per_s']} generated tok/s)" if "gen_tok_per_s" in r else ""
        print(f"| {r['case']} | {r['items']} | {r['seconds']} | {r['q_per_s']}{extra} | {r['cpu_seconds']} | "
              f"{r['q_per_cpu_s']} | {r.get('accuracy')} | {r.get('same_answers_as_cached', '–')} |")
    if not args.skip_lmeval:
        lm_row = next(r for r in rows if r["case"] == "lm-eval hf backend")
        rows[0]["speedup_vs_lm_eval_cpu"] = round(rows[0]["q_per_cpu_s"] / lm_row["q_per_cpu_s"], 2)
        print(f"\nspeedup of the cached runner over lm-eval: {rows[0]['speedup_vs_lm_eval']}x wall, "
              f"{rows[0]['speedup_vs_lm_eval_cpu']}x per CPU-second "
              f"(answers identical on {agreement}/{rows[0]['items']} items)")
    print(json.dumps(meta))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
