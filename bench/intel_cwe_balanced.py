"""Does class-balanced weighting (or another C) of map-cwe's SVM help? Temporal dev/test halves.

    .venv/bin/python bench/intel_cwe_balanced.py [--cutoff 2024-06-01] [--c 0.5] [--no-balance]

Refits only the CWE head of the temporal model (same TF-IDF rows and labels, plus each CWE's own
text, as ``fitted.IntelModel.fit``) with ``class_weight="balanced"`` and compares top-1 (level
cna, keyword bonus as map-cwe) with the cached head on the dev half and the test half of the
labelled CVEs after the cutoff (split by a hash of the id, as ``bench/intel_cwe_dense.py``).
CTIBench is not looked at. Output: ``bench/results/intel_cwe_balanced.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _intel_split import emittable, temporal_split  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cutoff", default="2024-06-01")
    ap.add_argument("--c", type=float, default=0.5)
    ap.add_argument("--no-balance", action="store_true", help="plain weights (to compare C values)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "intel_cwe_balanced.json"))
    a = ap.parse_args()
    import scipy.sparse as sp
    from sklearn.svm import LinearSVC

    from secfoundry.apps.intel.cve_guard import clean_description
    from secfoundry.apps.intel.cve_index import load_records, norm_description
    from secfoundry.apps.intel.cwe_catalog import CweCatalog
    from secfoundry.apps.intel.cwe_map import W_KEYWORD, _term_index
    from secfoundry.apps.intel.fitted import MIN_CLASS_EXAMPLES, IntelModel

    t0, c0 = time.time(), time.process_time()
    catalog = CweCatalog.from_kb()
    model = IntelModel.get(catalog=catalog, published_before=a.cutoff, dense=False)
    X = model.index.matrix
    rows = [i for i, labels in enumerate(model.cwe_labels) if labels]
    y = [model.cwe_labels[i][0] for i in rows]
    extra = [c for c in sorted(set(y)) if c in catalog and catalog.entries[c].description]
    Xw = sp.vstack([X[rows], model.index.transform([catalog.entries[c].text() for c in extra])]).tocsr()
    yw = y + extra
    total: dict[str, int] = {}
    for c in yw:
        total[c] = total.get(c, 0) + 1
    keep = [i for i, c in enumerate(yw) if total[c] >= MIN_CLASS_EXAMPLES]
    print(f"fitting an SVM (C={a.c}, balanced={not a.no_balance}) on {len(keep):,} examples", file=sys.stderr, flush=True)
    t1 = time.process_time()
    clf = LinearSVC(C=a.c, tol=1e-3, max_iter=2000, class_weight=None if a.no_balance else "balanced")
    clf.fit(Xw[keep], [yw[i] for i in keep])
    fit_cpu = time.process_time() - t1
    classes = [str(c) for c in clf.classes_]
    terms = _term_index(catalog)
    recs, _ = load_records(validate=catalog.validate, errors=[])
    split = temporal_split(recs, a.cutoff)
    out = {"cutoff": a.cutoff, "C": a.c, "balanced": not a.no_balance, "examples": len(keep), "classes": len(classes), "fit_cpu_s": round(fit_cpu, 1)}
    for name in ("dev", "test"):
        part = split[name]
        texts = [clean_description(r.description)[0] for r in part]
        Q = model.index.transform(texts)
        for label, cls, dec in (("cached", model.cwe_head.classes, model.cwe_head.decision(Q)),
                                ("refit", classes, Q @ clf.coef_.T + clf.intercept_)):
            d = np.asarray(dec) * model.cwe_head.temperature
            p = np.exp(d - d.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            idx = {c: j for j, c in enumerate(cls)}
            emit = emittable(catalog, cls)
            hit = 0
            for i, (r, t) in enumerate(zip(part, texts)):
                s = p[i].copy()
                tn = f" {norm_description(t)} "
                for term, cwes in terms.items():
                    if f" {term} " in tn:
                        for c in cwes:
                            if c in idx:
                                s[idx[c]] += W_KEYWORD
                for j in np.argsort(-s)[:10]:
                    if emit[j] is not None:
                        hit += emit[j] in r.cwe
                        break
            out[f"{name}_{label}"] = round(hit / len(part), 4)
            print(name, label, out[f"{name}_{label}"], file=sys.stderr, flush=True)
    out.update(wall_s=round(time.time() - t0, 1), cpu_s=round(time.process_time() - c0, 1))
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
