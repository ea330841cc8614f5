"""Fit predict-cvss's CISA-ADP convention offsets (an NVD stand-in) on a dev half and measure them (test half).

    .venv/bin/python bench/intel_cvss_nvd.py [--cutoff 2024-06-01]

CTIBench-VSP's gold is NVD's vector; predict-cvss learns mostly from CNA vectors. The nearest
NVD-style labels in the shared data are CISA-ADP's vectors (vulnrichment) for CVEs whose CNA gave
none. The temporal model (fit only on CVEs published before ``--cutoff``) predicts the ADP-only
CVEs published after it; they are split by a hash of the CVE id into a dev half (the per-metric
log-prior offsets of ``cvss_convention`` are fitted here) and a test half (per-metric agreement,
MAD, mean signed error, before/after). The cost on CNA gold (the temporal CNA-vector CVEs) is
measured too. CTIBench is not looked at. Output: ``bench/results/intel_cvss_nvd.json`` and the
offsets table to copy into ``cvss_convention.ADP_OFFSETS`` (the ``adp`` convention).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _intel_split import half  # noqa: E402


def has_v3(d) -> bool:
    return isinstance(d, dict) and any(k.startswith("cvssV3") for k in d)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cutoff", default="2024-06-01")
    ap.add_argument("--cna-n", type=int, default=3000, help="CNA-vector CVEs after the cutoff for the cost check")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "intel_cvss_nvd.json"))
    a = ap.parse_args()
    from secfoundry.apps.intel.cve_index import cvss_v3_vector, records_path
    from secfoundry.apps.intel.cvss_convention import fit_offsets
    from secfoundry.apps.intel.cvss_predict import VALUES, CvssPredictor, base_score
    from secfoundry.apps.intel.cwe_catalog import CweCatalog
    from secfoundry.apps.intel.fitted import CVSS_METRICS, IntelModel
    from secfoundry.apps.intel.schemas import CveInput

    t0, c0 = time.time(), time.process_time()
    catalog = CweCatalog.from_kb()
    model = IntelModel.get(catalog=catalog, published_before=a.cutoff, dense=False)
    adp, cna = {"dev": [], "test": []}, []
    with gzip.open(records_path(), "rt", encoding="utf-8") as fh:
        for line in fh:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if not isinstance(r, dict) or not r.get("published") or r["published"] < a.cutoff:
                continue
            if not isinstance(r.get("description"), str) or not r["description"].strip():
                continue
            vec = cvss_v3_vector(r)
            if not vec:
                continue
            if has_v3(r.get("cvss_adp")) and not has_v3(r.get("cvss_cna")):
                adp[half(r["id"])].append((r["id"], r["description"], vec))
            elif has_v3(r.get("cvss_cna")):
                cna.append((r["id"], r["description"], vec))
    cna = sorted(cna, key=lambda x: hashlib.sha1(x[0].encode()).hexdigest())[:a.cna_n]
    print(f"ADP-only after {a.cutoff}: dev {len(adp['dev'])}, test {len(adp['test'])}; CNA check {len(cna)}",
          file=sys.stderr, flush=True)

    def predict(rows, offsets):
        p = CvssPredictor(model, offsets=offsets)
        return p.predict_many([CveInput(id=i, description=d) for i, d, _ in rows])

    def measure(rows, preds) -> dict:
        gold = [dict(x.split(":") for x in v.split("/")[1:]) for _, _, v in rows]
        acc = {m: round(sum(p.metrics[m].value == g.get(m) for p, g in zip(preds, gold)) / len(rows), 3)
               for m in CVSS_METRICS}
        dev = [p.score - base_score(v)[0] for p, (_, _, v) in zip(preds, rows)]
        confusions = collections.Counter()
        for p, g in zip(preds, gold):
            for m in CVSS_METRICS:
                if p.metrics[m].value != g.get(m):
                    confusions[f"{m}:{p.metrics[m].value}->{g.get(m)}"] += 1
        return {"n": len(rows), "mad": round(statistics.mean(abs(x) for x in dev), 3),
                "signed": round(statistics.mean(dev), 3), "metric_accuracy": acc,
                "top_confusions": confusions.most_common(8)}

    base_dev = predict(adp["dev"], {})
    offsets = {}
    for m in CVSS_METRICS:
        dists = [p.metrics[m].probabilities for p in base_dev]
        gold = [dict(x.split(":") for x in v.split("/")[1:]).get(m, "") for _, _, v in adp["dev"]]
        offsets[m] = fit_offsets(dists, gold, VALUES[m])
    print("offsets", json.dumps(offsets), file=sys.stderr, flush=True)
    out = {"cutoff": a.cutoff, "offsets": offsets, "fit_rows": model.manifest["fit_rows"]}
    out["adp_dev_before"] = measure(adp["dev"], base_dev)
    out["adp_dev_after"] = measure(adp["dev"], predict(adp["dev"], offsets))
    out["adp_test_before"] = measure(adp["test"], predict(adp["test"], {}))
    out["adp_test_after"] = measure(adp["test"], predict(adp["test"], offsets))
    out["cna_before"] = measure(cna, predict(cna, {}))
    out["cna_after"] = measure(cna, predict(cna, offsets))
    out.update(wall_s=round(time.time() - t0, 1), cpu_s=round(time.process_time() - c0, 1), load=os.getloadavg())
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    for k in ("adp_dev_before", "adp_dev_after", "adp_test_before", "adp_test_after", "cna_before", "cna_after"):
        print(k, json.dumps(out[k]))
    print("ADP_OFFSETS =", json.dumps(offsets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
