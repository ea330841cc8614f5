"""Choose map-cwe's dense-feature mix on a development split, then measure it once on the rest.

    .venv/bin/python bench/intel_cwe_dense.py [--cutoff 2024-06-01] [--embedder minilm]

The temporal model (fit only on CVEs published before ``--cutoff``) gets its dense part
(``apps/intel/dense_cwe.py``: MiniLM vectors of the labelled descriptions, a logistic regression
on them, nearest-neighbour votes). The labelled CVEs published on/after the cutoff are split by a
hash of their CVE id into a **dev** half (settings are chosen here) and a **test** half (measured
once with the chosen settings). CTIBench is never looked at. Grid: the SVM's softmax
temperature, the weights of the SVM / logistic regression / kNN votes, k, and the logistic
regression's C (extra heads fitted on the same cached vectors). The score of a grid point is
top-1 at the CNA level (gold: the record's CNA, else CISA-ADP, labels), computed from the
components exactly as ``CweMapper`` mixes them (keyword bonus included, NVD roll-up off); the
chosen point is then re-measured through ``CweMapper`` itself on both halves.

Results: ``bench/results/intel_cwe_dense.json``; the chosen settings are written into the
model's dense ``config.json`` with ``--apply`` (and must be copied into ``DenseConfig`` by hand
to become the default of future fits).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _intel_split import emittable, keyword_matrix, temporal_split, top1  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cutoff", default="2024-06-01")
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--lr-c", default="10", help="comma-separated C values of the logistic regression "
                                                 "(suffix b: class_weight balanced), e.g. 10,10b,40")
    ap.add_argument("--apply", action="store_true", help="write the chosen settings into the model's dense config")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "intel_cwe_dense.json"))
    a = ap.parse_args()
    from sklearn.linear_model import LogisticRegression

    from secfoundry.apps.intel.cve_guard import clean_description
    from secfoundry.apps.intel.cve_index import Exclusion, load_records, norm_description
    from secfoundry.apps.intel.cwe_catalog import CweCatalog
    from secfoundry.apps.intel.cwe_map import W_KEYWORD, CweMapper, _term_index
    from secfoundry.apps.intel.dense_cwe import dense_dir
    from secfoundry.apps.intel.fitted import IntelModel
    from secfoundry.apps.intel.schemas import CveInput

    log = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True)  # noqa: E731
    t_start, c_start = time.time(), time.process_time()
    catalog = CweCatalog.from_kb()
    model = IntelModel.get(catalog=catalog, published_before=a.cutoff, dense=True, embedder=a.embedder, log=log)
    dense = model.dense
    recs, _ = load_records(validate=catalog.validate, errors=[])
    split = temporal_split(recs, a.cutoff)
    log(f"temporal: fit rows {model.manifest['fit_rows']:,}; labelled after the cutoff: dev {len(split['dev']):,}, "
        f"test {len(split['test']):,}")
    head = model.cwe_head
    idx = model.index
    terms = _term_index(catalog)
    # per head class: the id the mapper would emit (validated, never Prohibited) or None
    emit = emittable(catalog, head.classes)

    # extra logistic-regression heads on the same cached vectors (C grid)
    X = dense.vectors
    y = [model.cwe_labels[r][0] for r in dense.rows]
    counts = {c: y.count(c) for c in set(y)}
    keep = [j for j, c in enumerate(y) if counts[c] >= 2]
    lr_heads = {}
    for spec in a.lr_c.split(","):  # "10" or "10b" (class_weight="balanced")
        balanced = spec.endswith("b")
        c_val = float(spec.rstrip("b"))
        if abs(c_val - dense.config.lr_c) < 1e-9 and not balanced:
            lr_heads[spec] = (dense.classes, dense.weights, dense.bias)
            continue
        log(f"fitting an extra logistic regression, C={c_val}, balanced={balanced}")
        clf = LogisticRegression(C=c_val, max_iter=300, tol=1e-3, class_weight="balanced" if balanced else None)
        clf.fit(X[keep], [y[j] for j in keep])
        lr_heads[spec] = ([str(x) for x in clf.classes_], clf.coef_.T.astype(np.float32), clf.intercept_)

    def components(rows):
        texts = [clean_description(r.description)[0] for r in rows]
        Q = idx.transform(texts)
        dec = head.decision(Q)
        V = dense.store.get(texts, persist=True, log=log)  # the full model's fit embeds these anyway
        sims = dense.similarities(V)
        lrp = {}
        for c_val, (classes, W, b) in lr_heads.items():
            d = V @ W + b
            e = np.exp(d - d.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            full = np.zeros((len(rows), len(head.classes)), np.float32)
            for i, cl in enumerate(classes):
                j = head.index.get(cl)
                if j is not None:
                    full[:, j] = p[:, i]
            lrp[c_val] = full
        kw = keyword_matrix([norm_description(t) for t in texts], terms, head.index, len(head.classes))
        excl = [idx.excluded_rows(Exclusion.for_item(r.id, r.description)) for r in rows]
        return dec, lrp, sims, kw, excl

    def knn_matrix(sims, excl, k, power):
        out = np.zeros((sims.shape[0], len(head.classes)), np.float32)
        old = dense.config
        dense.config = replace(old, power=power)
        for i in range(sims.shape[0]):
            votes, _ = dense.knn_votes(sims[i], excl[i], model.cwe_labels, k)
            for c, v in votes.items():
                j = head.index.get(c)
                if j is not None:
                    out[i, j] = v
        dense.config = old
        return out

    comp = {}
    for name in ("dev", "test"):
        log(f"components of the {name} half")
        comp[name] = components(split[name])
    grid = {"T": [4.0, 6.0, 10.0], "w_lr": [0.0, 0.15, 0.3, 0.45], "w_knn": [0.0, 0.1, 0.2, 0.3],
            "k": [10, 25], "power": [2.0], "C": sorted(lr_heads)}
    rows_out = []
    knn_cache = {}
    for name in ("dev", "test"):
        for k, pw in itertools.product(grid["k"], grid["power"]):
            knn_cache[(name, k, pw)] = knn_matrix(comp[name][2], comp[name][4], k, pw)
    for T, w_lr, w_knn, k, pw, C in itertools.product(*grid.values()):
        if w_lr + w_knn >= 1 or (w_knn == 0 and k != grid["k"][0]) or (w_lr == 0 and C != grid["C"][0]):
            continue
        w_svm = 1 - w_lr - w_knn
        res = {"T": T, "w_svm": round(w_svm, 3), "w_lr": w_lr, "w_knn": w_knn, "k": k, "power": pw, "C": C}
        for name in ("dev", "test"):
            dec, lrp, _, kw, _ = comp[name]
            d = dec * T
            e = np.exp(d - d.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            score = w_svm * p + w_lr * lrp[C] + w_knn * knn_cache[(name, k, pw)] + W_KEYWORD * kw
            res[name] = round(top1(score, split[name], emit), 4)
        rows_out.append(res)
    baseline = next(r for r in rows_out if r["T"] == 6.0 and r["w_lr"] == 0 and r["w_knn"] == 0)
    best = max(rows_out, key=lambda r: (r["dev"], -r["w_lr"] - r["w_knn"]))
    log(f"baseline (SVM only, T=6): dev {baseline['dev']}, test {baseline['test']}")
    log(f"best on dev: {best}")
    orig_c = dense.config.lr_c
    cfg = replace(dense.config, w_svm=best["w_svm"], w_lr=best["w_lr"], w_knn=best["w_knn"], k=best["k"],
                  power=best["power"], svm_temperature=best["T"])
    if best["C"] != format(dense.config.lr_c, "g"):  # another head was chosen: it replaces the saved one
        classes, W, b = lr_heads[best["C"]]
        dense.classes, dense.weights, dense.bias = list(classes), W.astype(np.float32), np.asarray(b, np.float32)
        cfg = replace(cfg, lr_c=float(best["C"].rstrip("b")), lr_balanced=best["C"].endswith("b"))
    # the chosen point through CweMapper itself (level cna, as the temporal gold)
    mapper_res = {}
    for name in ("dev", "test"):
        rows = split[name]
        for label, kwargs in (("svm_only", {"dense": False}), ("dense_mix", {"dense_config": cfg})):
            mp = CweMapper(model, catalog, level="cna", **kwargs)
            t0, c0 = time.time(), time.process_time()
            out = mp.map_many([CveInput(id=r.id, description=r.description) for r in rows])
            mapper_res[f"{name}_{label}"] = {
                "top1": round(sum(bool(m.cwe) and m.cwe[0] in r.cwe for m, r in zip(out, rows)) / len(rows), 4),
                "top3": round(sum(any(c in r.cwe for c in m.cwe[:3]) for m, r in zip(out, rows)) / len(rows), 4),
                "n": len(rows), "wall_s": round(time.time() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}
            log(f"{name} {label}: {mapper_res[f'{name}_{label}']}")
    if a.apply:
        dense.config = cfg
        d = dense_dir(model.directory, dense.embedder)
        (d / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
        if best["C"] != format(orig_c, "g"):
            np.save(d / "lr_weights.npy", dense.weights)
            np.save(d / "lr_bias.npy", dense.bias)
            (d / "classes.json").write_text(json.dumps(dense.classes))
        log(f"wrote {d / 'config.json'}")
    out = {"cutoff": a.cutoff, "embedder": dense.embedder.name, "dense_manifest": dense.manifest,
           "dev_n": len(split["dev"]), "test_n": len(split["test"]), "baseline": baseline, "best": best,
           "chosen_config": asdict(cfg), "mapper": mapper_res, "grid": sorted(rows_out, key=lambda r: -r["dev"])[:40],
           "wall_s": round(time.time() - t_start, 1), "cpu_s": round(time.process_time() - c_start, 1),
           "load": os.getloadavg()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("baseline", "best", "mapper")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
