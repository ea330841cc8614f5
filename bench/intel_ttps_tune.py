"""Choose extract-ttps's kNN settings and confidence threshold on a development set that is not
CTIBench: pseudo-documents built from ATT&CK software entries outside CTIBench-ATE.

    .venv/bin/python bench/intel_ttps_tune.py [--n 150] [--repr hybrid --embedder minilm]
        [--extra descriptions] [--out bench/results/intel_ttps_tune.json]

``--repr`` / ``--embedder`` pick the representation (default: the app's own, ``SECFOUNDRY_TTPS_*``):
``tfidf``, ``dense`` (cosine of the embedder's vectors: ``minilm`` = the contextual sentence model,
``minilm-static``) or ``hybrid`` (alpha x TF-IDF + (1 - alpha) x dense). ``--extra descriptions``
adds each technique's name + the first sentence of its ATT&CK description as one more example.
Similarities of a document's sentences are computed once per document and reused across the
grid (only the kNN settings and thresholds change between grid points).

A pseudo-document is one software entry's procedure examples joined into a text; its gold is the
set of main techniques of those examples. While a document is scored, that software's own
examples (and any naming it) are withheld, exactly as for CTIBench-ATE. The 60 ATE software ids
are never used here. Reported: micro-F1 per (k, min_sim, power, threshold); the best row is the
default written into ``ttps_model.KNNConfig`` / ``ExtractOptions.min_confidence`` by hand.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import sys
import time
from itertools import product
from pathlib import Path


def f1(preds, golds):
    tp = sum(len(p & g) for p, g in zip(preds, golds))
    fp = sum(len(p - g) for p, g in zip(preds, golds))
    fn = sum(len(g - p) for p, g in zip(preds, golds))
    pr = tp / (tp + fp) if tp + fp else 0.0
    rc = tp / (tp + fn) if tp + fn else 0.0
    return (2 * pr * rc / (pr + rc) if pr + rc else 0.0), pr, rc


def memo_similarities(model) -> None:
    """Cache the (dense and TF-IDF) similarity matrices per list of sentences: the grid re-scores
    the same documents many times with other kNN settings; alpha is applied on the cached parts."""
    cache: dict = {}
    orig = model.similarities
    if not model.sparse:  # the dev sentences' vectors are kept in the per-text store: later runs reuse them
        from secfoundry.apps.intel.vectors import VectorStore

        store = VectorStore(model.embedder.dense if model.hybrid else model.embedder)
        model.embed = lambda texts: store.get(list(texts), persist=True)

    def sims(texts):
        key = tuple(texts)
        if model.hybrid:
            if key not in cache:
                lex = (model.embedder.tfidf.encode(texts) @ model.X.T).toarray()
                cache[key] = (lex, model.embed(texts) @ model.Xd.T)
            lex, dense = cache[key]
            al = model.embedder.alpha
            return al * lex + (1 - al) * dense
        if key not in cache:
            cache[key] = orig(texts)
        return cache[key].copy()

    model.similarities = sims


def description_examples(rep: str) -> list[tuple[str, str]]:
    """(name + first sentence of the description, technique id) for every current technique."""
    import re as _re

    from secfoundry.apps.intel.ttps_catalog import catalog_for
    from secfoundry.kb.knowledge import KnowledgeBase

    cat = catalog_for(KnowledgeBase.open())
    out = []
    for tid, t in sorted(cat.techniques.items()):
        desc = _re.sub(r"\(Citation:[^)]*\)", "", t.description or "")
        desc = _re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", desc)
        first = _re.split(r"(?<=[.!?])\s+", desc.strip(), maxsplit=1)[0] if desc.strip() else ""
        out.append((f"{t.full_name}. {first}".strip(), tid))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calibrated", action="store_true",
                    help="only the default settings, calibrated scores: choose the confidence threshold")
    ap.add_argument("--alpha", default="0.3,0.5,0.7", help="hybrid: TF-IDF weights of the similarity to try")
    ap.add_argument("--repr", default=None, choices=["tfidf", "dense", "hybrid"])
    ap.add_argument("--embedder", default=None, help="vectors.intel_embedder spec of the dense side (minilm, minilm-static)")
    ap.add_argument("--extra", default="none", choices=["none", "descriptions"])
    ap.add_argument("--min-sim", default=None, help="comma-separated min_sim grid (default: per representation)")
    ap.add_argument("--out", default="bench/results/intel_ttps_tune.json")
    a = ap.parse_args()
    from secfoundry.apps.intel.ttps import ExtractOptions, TTPExtractor, get_extractor
    from secfoundry.core.paths import benchmark_data_dir

    t_load, c_load = time.time(), time.process_time()
    if a.repr or a.embedder or a.extra != "none":
        from secfoundry.apps.intel.ttps import _ttps_embedder
        from secfoundry.apps.intel.vectors import intel_embedder

        emb = None
        if a.repr != "tfidf":
            emb = intel_embedder(a.embedder) if a.embedder else _ttps_embedder()
        rep = a.repr or "hybrid"
        extra = description_examples(rep) if a.extra == "descriptions" else ()
        if rep == "dense":
            ex = TTPExtractor(embedder=emb, extra=extra)
        elif rep == "hybrid":
            ex = TTPExtractor(embedder=emb, representation="hybrid", extra=extra)
        else:
            ex = TTPExtractor(representation="tfidf", extra=extra)
    else:
        ex = get_extractor()
    load_s, load_cpu = time.time() - t_load, time.process_time() - c_load
    memo_similarities(ex.model)
    cat = ex.catalog
    ate = benchmark_data_dir() / "ctibench" / "cti-ate.tsv"
    ate_ids = {m.group(1) for r in csv.DictReader(ate.open(), delimiter="\t")
               if (m := re.search(r"(S\d{4})", r["URL"]))}
    by_owner: dict[str, list] = {}
    for p in cat.procedures():
        if p.owner.startswith("S") and p.owner not in ate_ids:
            by_owner.setdefault(p.owner, []).append(p)
    owners = sorted(o for o, ps in by_owner.items() if 3 <= len(ps) <= 25)
    random.Random(a.seed).shuffle(owners)
    owners = owners[:a.n]
    docs = []
    for o in owners:
        ps = by_owner[o]
        dom = "mobile" if all(cat.in_domain(p.technique, "mobile") and not cat.in_domain(p.technique, "enterprise")
                              for p in ps) else "enterprise"
        docs.append((o, dom, " ".join(p.text.rstrip(".") + "." for p in ps), {p.technique.split(".")[0] for p in ps}))
    if a.calibrated:
        c = ex.model.config
        grid = {"k": [c.k], "min_sim": [c.min_sim], "power": [c.power], "mode": [c.mode]}
    elif ex.representation == "tfidf":
        grid = {"k": [8, 16], "min_sim": [0.15, 0.25], "power": [1.0, 2.0], "mode": ["share", "max"]}
    elif ex.representation == "hybrid":
        grid = {"k": [8, 16], "min_sim": [0.2, 0.3, 0.4], "power": [2.0], "mode": ["share"]}
    else:
        grid = {"k": [8, 16], "min_sim": [0.4, 0.5, 0.6], "power": [2.0, 4.0], "mode": ["share", "max"]}
    if a.min_sim:
        grid["min_sim"] = [float(x) for x in a.min_sim.split(",")]
    alphas = [float(x) for x in a.alpha.split(",")] if ex.representation == "hybrid" else [None]
    if a.calibrated and ex.representation == "hybrid":
        alphas = [ex.model.embedder.alpha]
    thresholds = [0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]
    rows = []
    t0 = time.time()
    base = ex.model.config
    for alpha, k, ms, pw, mode in product(alphas, grid["k"], grid["min_sim"], grid["power"], grid["mode"]):
        if alpha is not None:
            ex.model.embedder.alpha = alpha
        ex.model.config = type(base)(k=k, min_sim=ms, power=pw, mode=mode, scale=base.scale if a.calibrated else None, cut=base.cut)
        scored = []
        for o, dom, text, gold in docs:
            res = ex.extract(text, ExtractOptions(min_confidence=0.05, domain=dom, exclude_entities=(o,),
                                                  exclude_mentioned_software=True))
            # thresholds apply to the raw document score (reported confidence = 1 - 0.5 ** (raw / cut))
            scored.append(({t.id.split(".")[0]: ex.raw_score(t.confidence) for t in res.techniques}, gold))
        for thr in thresholds:
            preds = [{t for t, c in s.items() if c >= thr} for s, _ in scored]
            f, p, r = f1(preds, [g for _, g in scored])
            rows.append({"alpha": alpha, "k": k, "min_sim": ms, "power": pw, "mode": mode, "threshold": thr, "micro_f1": round(f, 4),
                         "precision": round(p, 4), "recall": round(r, 4)})
        print(json.dumps(max((r for r in rows if r["k"] == k and r["min_sim"] == ms and r["power"] == pw
                              and r["mode"] == mode and r["alpha"] == alpha),
                             key=lambda r: r["micro_f1"])), flush=True)
    ex.model.config = base
    best = max(rows, key=lambda r: r["micro_f1"])
    out = {"representation": ex.representation, "embedder": getattr(ex.model.embedder, "name", None),
           "extra": a.extra, "examples": len(ex.model.examples), "documents": len(docs), "software": owners,
           "best": best, "seconds": round(time.time() - t0, 1), "load_s": round(load_s, 1),
           "load_cpu_s": round(load_cpu, 1), "cpu_s": round(time.process_time(), 1), "loadavg": os.getloadavg(),
           "rows": sorted(rows, key=lambda r: -r["micro_f1"])}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print("best", json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
