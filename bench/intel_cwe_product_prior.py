"""Does a product/vendor-conditioned CWE prior help map-cwe? Dev/test halves of the temporal split.

    .venv/bin/python bench/intel_cwe_product_prior.py [--cutoff 2024-06-01]

Prior: from the CVE records published before the cutoff (the temporal model's fit period), each
``affected`` product (and vendor) name of >= 3 labelled records keeps the counts of their first
CWE labels. A description that names such a product (normalized phrase match, names of >= 2
words or >= 6 characters) gets the smoothed label distribution of the products it names; the
score is ``SVM + w * prior`` (plus the keyword bonus, as map-cwe), w chosen on the dev half of
the labelled CVEs after the cutoff and measured on the test half (split by a hash of the id, as
``bench/intel_cwe_dense.py``). Level cna; CTIBench is not looked at. Output:
``bench/results/intel_cwe_product_prior.json``.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _intel_split import emittable, temporal_split, top1  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cutoff", default="2024-06-01")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "intel_cwe_product_prior.json"))
    a = ap.parse_args()
    from secfoundry.apps.intel.cve_guard import clean_description
    from secfoundry.apps.intel.cve_index import load_records, norm_description, records_path
    from secfoundry.apps.intel.cwe_catalog import CweCatalog
    from secfoundry.apps.intel.cwe_map import W_KEYWORD, _term_index
    from secfoundry.apps.intel.fitted import IntelModel

    t0, c0 = time.time(), time.process_time()
    catalog = CweCatalog.from_kb()
    model = IntelModel.get(catalog=catalog, published_before=a.cutoff, dense=False)
    recs, _ = load_records(validate=catalog.validate, errors=[])
    by_id = {r.id: r for r in recs}
    names: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with gzip.open(records_path(), "rt", encoding="utf-8") as fh:
        for line in fh:
            try:
                raw = json.loads(line)
            except ValueError:
                continue
            r = by_id.get(str(raw.get("id", "")).upper())
            if r is None or not r.cwe or not r.published or r.published >= a.cutoff:
                continue
            for aff in raw.get("affected") or []:
                if not isinstance(aff, dict):
                    continue
                for key in ("product", "vendor"):
                    n = norm_description(str(aff.get(key) or ""))
                    if n and n not in ("n a", "unknown") and (" " in n or len(n) >= 6):
                        names[n][r.cwe[0]] += 1
    names = {n: c for n, c in names.items() if sum(c.values()) >= 3}
    print(f"{len(names):,} product/vendor names with >= 3 labelled records", file=sys.stderr, flush=True)
    head = model.cwe_head
    terms = _term_index(catalog)
    emit = emittable(catalog, head.classes)
    split = temporal_split(recs, a.cutoff)
    by_len = sorted(names, key=len, reverse=True)

    def components(rows):
        texts = [clean_description(r.description)[0] for r in rows]
        dec = head.decision(model.index.transform(texts)) * head.temperature
        p = np.exp(dec - dec.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        kw = np.zeros_like(p)
        prior = np.zeros_like(p)
        matched = 0
        for i, t in enumerate(texts):
            tn = f" {norm_description(t)} "
            for term, cwes in terms.items():
                if f" {term} " in tn:
                    for c in cwes:
                        if c in head.index:
                            kw[i, head.index[c]] = 1.0
            cnt: collections.Counter = collections.Counter()
            for n in by_len:
                if f" {n} " in tn:
                    cnt.update(names[n])
            if cnt:
                matched += 1
                tot = sum(cnt.values())
                for c, v in cnt.items():
                    j = head.index.get(c)
                    if j is not None:
                        prior[i, j] = v / (tot + 2.0)  # smoothed: a name seen 3 times weighs less
        return p, kw, prior, matched

    comp = {k: components(v) for k, v in split.items()}
    rows = []
    for w in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5):
        res = {"w_prior": w}
        for k in ("dev", "test"):
            p, kw, prior, _ = comp[k]
            res[k] = round(top1(p + w * prior + W_KEYWORD * kw, split[k], emit), 4)
        rows.append(res)
        print(res, file=sys.stderr, flush=True)
    best = max(rows, key=lambda r: (r["dev"], -r["w_prior"]))
    out = {"cutoff": a.cutoff, "names": len(names), "dev_n": len(split["dev"]), "test_n": len(split["test"]),
           "dev_matched": comp["dev"][3], "test_matched": comp["test"][3], "grid": rows, "best_on_dev": best,
           "wall_s": round(time.time() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
