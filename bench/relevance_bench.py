"""Relevance filter benchmark: quality of both stages and classifier throughput.

1. Classifier (the default model in SECFOUNDRY_HOME, trained on first use): P/R/F1 on the seed's
   held-out split, on hard negatives (same class ratio), FPR on every held-out hard negative.
2. Keyword prefilter: recall/pass rates on seed paragraphs and on whole documents (OWASP cheat
   sheets from the mirror vs Python docs pages, Wikipedia articles, speeches).
3. Throughput of the classifier stage (RelevanceStep.run_batch, batches of 256) on 2 worker
   processes (the 2 cores), for seed paragraphs and for ~4 KB Markdown documents; wall clock and
   per-CPU-second figures (the machine is shared, so CPU seconds are the steadier number).

Run: .venv/bin/python bench/relevance_bench.py [--docs 4000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _worker(args):
    texts, batch = args
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from secfoundry.corpus.process.relevance import RelevanceConfig, RelevanceStep
    from secfoundry.core.documents import Document

    step = RelevanceStep(RelevanceConfig())
    step.setup()
    docs = [Document(id=str(i), text=t, source="crawl") for i, t in enumerate(texts)]
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(0, len(docs), batch):
        step.run_batch(docs[i:i + batch])
    return time.process_time() - c0, time.perf_counter() - w0


def throughput(texts: list[str], procs: int = 2, batch: int = 256) -> dict:
    chunks = [texts[i::procs] for i in range(procs)]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(procs) as pool:
        res = pool.map(_worker, [(c, batch) for c in chunks])
    wall = time.perf_counter() - t0
    cpu = sum(r[0] for r in res)
    inner_wall = max(r[1] for r in res)
    return {"docs": len(texts), "wall_s": round(inner_wall, 2), "docs_per_s_wall": round(len(texts) / inner_wall, 1),
            "cpu_s": round(cpu, 2), "docs_per_cpu_s": round(len(texts) / cpu, 1),
            "docs_per_s_2cores_from_cpu": round(2 * len(texts) / cpu, 1), "pool_wall_s_with_startup": round(wall, 1)}


def _judge(texts: list[str], id_override: bool, sources: list[str] | None = None) -> list[bool]:
    """Keyword prefilter then relevance step, as the process stage runs them (no high-value trust:
    every text is judged)."""
    from secfoundry.corpus.process.keywords import KeywordStep
    from secfoundry.corpus.process.relevance import RelevanceConfig, RelevanceStep
    from secfoundry.core.documents import Document

    kw = KeywordStep()
    rel = RelevanceStep(RelevanceConfig(id_override=id_override, trust_high_value=False))
    docs = [Document(id=str(i), text=t, source=(sources[i] if sources else "crawl")) for i, t in enumerate(texts)]
    passed = [kw.apply(d).doc for d in docs]
    todo = [d for d in passed if d is not None]
    kept = set()
    for i in range(0, len(todo), 256):
        k, _ = rel.run_batch(todo[i:i + 256])
        kept |= {d.id for d in k}
    return [str(i) in kept for i in range(len(texts))]


def step_decisions(web_jsonl: Path | None) -> None:
    """Precision/recall of what the process stage keeps (keywords, then the relevance step with its
    keyword and identifier overrides), with the identifier override off (before) and on (after)."""
    from secfoundry.corpus.process import relevance as R
    from secfoundry.corpus.process import relevance_data as D

    sets = D.eval_sets()
    print("\n## Relevance step decisions (keywords -> classifier + overrides)\n")
    print("| set | identifier override | n | precision | recall | F1 | FPR |\n|---|---|---:|---:|---:|---:|---:|")
    for name in ("seed-test", "hard-negatives", "hard-negatives-all"):
        ex = sets[name]
        for on in (False, True):
            m = R.metrics([e.label for e in ex], _judge([e.text for e in ex], on))
            print(f"| {name} | {'on' if on else 'off'} | {m.n} | {m.precision:.4f} | {m.recall:.4f} | {m.f1:.4f} | {m.fpr:.4f} |")
    gt = SHARED / "datasets" / "general-text"
    general = {"python docs pages": [json.loads(x)["text"] for x in gzip.open(gt / "python-3.11-docs-rst.jsonl.gz", "rt")],
               "wikitext articles": [json.loads(x)["text"] for x in open(gt / "wikitext2-valid-test.articles.jsonl")],
               "us speeches": [json.loads(x)["text"] for x in open(gt / "us-presidential-speeches.jsonl")]}
    pages: dict[str, list[str]] = {}
    if web_jsonl is not None:
        from secfoundry.corpus.process.extract import ExtractStep  # HTML pages -> Markdown first
        from secfoundry.core.documents import Document

        ext = ExtractStep()
        for f in sorted(web_jsonl.glob("*.jsonl")):
            for line in f.open(encoding="utf-8"):
                d = json.loads(line)
                if d["source"].startswith("web:"):
                    kept, _ = ext.run_batch([Document(id=d["id"], text=d["text"], source=d["source"],
                                                      metadata={"format": d.get("format")})])
                    if kept:
                        pages.setdefault(d["source"], []).append(kept[0].text)
    print("\n| documents | n | kept, override off | kept, override on |\n|---|---:|---:|---:|")
    for name, ts in list(general.items()) + sorted(pages.items()):
        off, on = _judge(ts, False), _judge(ts, True)
        print(f"| {name} | {len(ts)} | {sum(off) / len(ts):.4f} | {sum(on) / len(ts):.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=4000)
    ap.add_argument("--step-only", action="store_true",
                    help="only the relevance step's decisions (classifier + keyword/identifier overrides)")
    ap.add_argument("--web-jsonl", type=Path, default=None,
                    help="also judge these crawled pages (the corpus throughput bench's input JSONL dir)")
    args = ap.parse_args()
    if args.step_only:
        step_decisions(args.web_jsonl)
        return

    from secfoundry.corpus.process import relevance as R
    from secfoundry.corpus.process import relevance_data as D
    from secfoundry.corpus.process.keywords import KeywordStep, score_text

    t0 = time.time()
    model = R.load_or_train_default()
    print(f"model: {R.default_model_dir()} ({time.time() - t0:.1f}s to load/train)")
    print("\n## Classifier quality\n")
    print("| set | n | precision | recall | F1 | FPR |\n|---|---:|---:|---:|---:|---:|")
    for name, ex in D.eval_sets().items():
        m = R.metrics([e.label for e in ex], model.predict([e.text for e in ex]))
        print(f"| {name} | {m.n} | {m.precision:.4f} | {m.recall:.4f} | {m.f1:.4f} | {m.fpr:.4f} |")

    print("\n## Keyword prefilter\n")
    kw = KeywordStep()
    seed = D.load_seed()
    test = [e for e in seed if e.split == "test"]
    pos = [e for e in test if e.label == 1]
    neg = [e for e in test if e.label == 0]
    rp = sum(kw.passes(score_text(e.text)) for e in pos) / len(pos)
    rn = sum(kw.passes(score_text(e.text)) for e in neg) / len(neg)
    print(f"seed test paragraphs: security recall {rp:.4f}, non-security pass rate {rn:.4f}")
    docs: dict[str, list[str]] = {"owasp cheat sheets (security)": [], "python docs pages": [],
                                  "wikitext articles": [], "us speeches": []}
    import tarfile

    for p in sorted((SHARED / "mirror" / "owasp-cheatsheets").rglob("*")):
        if p.suffix == ".md" and "LICENSE" not in p.name:
            docs["owasp cheat sheets (security)"].append(p.read_text(errors="replace"))
        elif p.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(p) as tf:
                for m in tf.getmembers():
                    if m.name.endswith(".md") and "/cheatsheets/" in m.name:
                        docs["owasp cheat sheets (security)"].append(tf.extractfile(m).read().decode("utf-8", "replace"))
    gt = SHARED / "datasets" / "general-text"
    with gzip.open(gt / "python-3.11-docs-rst.jsonl.gz", "rt") as f:
        docs["python docs pages"] = [json.loads(x)["text"] for x in f]
    docs["wikitext articles"] = [json.loads(x)["text"] for x in open(gt / "wikitext2-valid-test.articles.jsonl")]
    docs["us speeches"] = [json.loads(x)["text"] for x in open(gt / "us-presidential-speeches.jsonl")]
    print("\n| documents | n | pass keyword prefilter |\n|---|---:|---:|")
    for name, ts in docs.items():
        if ts:
            print(f"| {name} | {len(ts)} | {sum(kw.passes(score_text(t)) for t in ts) / len(ts):.4f} |")

    print("\n## Classifier throughput (RelevanceStep.run_batch, 2 processes)\n")
    rng = random.Random(0)
    paras = [e.text for e in seed]
    rng.shuffle(paras)
    paras = (paras * (args.docs // len(paras) + 1))[: args.docs]
    # ~4 KB documents: consecutive seed paragraphs joined (web pages are judged on 6,000 chars)
    long_docs = ["\n\n".join(paras[i:i + 12])[:4000] for i in range(0, args.docs)]
    for name, texts in (("seed paragraphs (~340 chars)", paras), ("4 KB documents", long_docs)):
        r = throughput(texts)
        print(f"{name}: {json.dumps(r)}")


if __name__ == "__main__":
    main()
