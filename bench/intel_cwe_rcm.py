"""CTIBench-RCM / RCM-2021 with and without map-cwe's dense part, and map-cwe latency with it.

    nice -n 5 .venv/bin/python bench/intel_cwe_rcm.py [--embedder minilm] [--latency-n 200]
        [--out bench/results/intel_cwe_rcm_minilm.json]

Run once, after the dense mix was chosen on the temporal dev half (``bench/intel_cwe_dense.py``)
and copied into ``DenseConfig``: the full model (every record except the CTIBench RCM/VSP CVEs,
by id and normalized description) gets its dense part fitted with those settings, then both RCM
files are scored at ``--level nvd`` (the default; CTIBench's gold is NVD's) and ``cna``, with
the dense part on and off, from the same predictions as ``bench/intel_cwe_cvss.py``'s breakdown
(top-1 there equals the harness's accuracy). Each item's own description is excluded from the
neighbour indexes (the count is reported). ``--latency-n``: p50/p95 of one CVE per call with
every query embedded (no cached vectors) and 1,000 CVEs in one call, with the dense part on and
off; load average and CPU time are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from intel_cwe_cvss import latency, load_tsv, rcm_breakdown  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--latency-n", type=int, default=0)
    ap.add_argument("--skip-rcm", action="store_true", help="latency only (run it under the bench lock)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "intel_cwe_rcm_minilm.json"))
    a = ap.parse_args()
    from secfoundry.apps.intel.cwe_catalog import CweCatalog
    from secfoundry.apps.intel.cwe_map import CweMapper
    from secfoundry.apps.intel.fitted import IntelModel

    log = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True)  # noqa: E731
    t0, c0 = time.time(), time.process_time()
    catalog = CweCatalog.from_kb()
    model = IntelModel.get(catalog=catalog, dense=True, embedder=a.embedder, log=log)
    out: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg_start": os.getloadavg(),
                 "dense": model.manifest.get("dense"),
                 "dense_config": model.dense.config.__dict__ if model.dense is not None else None,
                 "fit_rows": model.manifest.get("fit_rows"), "decontaminated": model.manifest.get("decontaminated"),
                 "rows": []}
    for b in () if a.skip_rcm else ("cti-rcm", "cti-rcm-2021"):
        rows = load_tsv(b)
        for dense in (False, True):
            for level in ("nvd", "cna"):
                t1 = time.time()
                d = rcm_breakdown(CweMapper(model, catalog, level=level, dense=dense), catalog, rows)
                d.pop("preds")
                row = {"benchmark": b, "dense": dense, "level": level, "n": len(rows), **d,
                       "seconds": round(time.time() - t1, 1)}
                log(json.dumps(row))
                out["rows"].append(row)
    if a.latency_n:
        rows = load_tsv("cti-rcm-2021")
        out["latency_dense"] = latency(CweMapper(model, catalog), rows, a.latency_n)
        log(f"latency with the dense part: {out['latency_dense']}")
        out["latency_tfidf"] = latency(CweMapper(model, catalog, dense=False), rows, a.latency_n)
        log(f"latency without: {out['latency_tfidf']}")
    out["wall_s"], out["cpu_s"] = round(time.time() - t0, 1), round(time.process_time() - c0, 1)
    out["loadavg_end"] = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1, default=str))
    for r in out["rows"]:
        print(json.dumps({k: r[k] for k in ("benchmark", "dense", "level", "top1", "top3", "excluded")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
