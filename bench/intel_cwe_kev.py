"""map-cwe on CISA KEV's CWE labels: a check that is not CTIBench.

    nice -n 5 .venv/bin/python bench/intel_cwe_kev.py [--dense] [--out bench/results/intel_cwe_kev.json]

1. Where KEV's ``cwes`` come from: for the KEV CVEs that are also in
   ``datasets/cve-records.jsonl.gz``, KEV's CWE set is compared with the record's CNA labels and
   CISA-ADP labels (equal / overlapping / disjoint / one side empty).
2. map-cwe top-1 / top-3 against KEV's labels, at ``--level cna`` and ``--level nvd``, on every
   KEV entry with a CWE whose CVE is **not** among the records the model is fitted on (so neither
   the SVM nor the neighbour indexes have seen it; text: CISA's ``shortDescription``), CTIBench CVE
   ids left out. Each item's own id / description is also excluded from the neighbour indexes
   while it is scored (the count is reported). The KEV CVEs inside the records are only used
   for (1): scoring them would need a refit without them.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dense", action="store_true", help="also score with the dense part (built when missing)")
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "intel_cwe_kev.json"))
    a = ap.parse_args()
    from secfoundry.apps.intel.cve_index import Exclusion, load_records, records_path
    from secfoundry.apps.intel.cwe_catalog import CweCatalog
    from secfoundry.apps.intel.cwe_map import CweMapper
    from secfoundry.apps.intel.fitted import IntelModel, ctibench_exclusion
    from secfoundry.apps.intel.schemas import CveInput
    from secfoundry.core.paths import mirror_dir

    log = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True)  # noqa: E731
    t0, c0 = time.time(), time.process_time()
    kev_path = mirror_dir() / "kev" / "known_exploited_vulnerabilities.json"
    kev_doc = json.loads(kev_path.read_text())
    kev = {v["cveID"].upper(): v for v in kev_doc["vulnerabilities"]}
    catalog = CweCatalog.from_kb()
    recs, _ = load_records(validate=catalog.validate, errors=[])
    by_id = {r.id: r for r in recs}
    cti, _ = ctibench_exclusion()

    # 1. provenance of KEV's labels (the records' raw CNA / ADP label lists)
    import gzip

    raw = {}
    with gzip.open(records_path(None), "rt", encoding="utf-8") as fh:
        for line in fh:
            o = json.loads(line)
            if str(o.get("id", "")).upper() in kev:
                raw[o["id"].upper()] = o
    prov = collections.Counter()
    for cid, v in kev.items():
        r = raw.get(cid)
        if r is None:
            continue
        k = set(v.get("cwes") or [])
        cna, adp = set(r.get("cwe_cna") or []), set(r.get("cwe_adp") or [])

        def rel(x: set) -> str:
            if not k and not x:
                return "both empty"
            if not x:
                return "record empty"
            if not k:
                return "kev empty"
            return "equal" if k == x else ("overlap" if k & x else "disjoint")
        prov[f"vs CNA: {rel(cna)}; vs ADP: {rel(adp)}"] += 1

    # 2. map-cwe on KEV labels, for KEV CVEs the model never saw
    short_items = [(cid, v.get("shortDescription") or "", list(v["cwes"])) for cid, v in sorted(kev.items())
                   if v.get("cwes") and (v.get("shortDescription") or "").strip() and cid not in cti.ids
                   and cid not in by_id]
    model = IntelModel.get(catalog=catalog, dense=True if a.dense else False, embedder=a.embedder, log=log)
    out: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg_start": os.getloadavg(),
                 "kev_catalog": kev_doc.get("catalogVersion"), "kev_entries": len(kev),
                 "kev_in_records": sum(1 for c in kev if c in by_id), "provenance": dict(prov.most_common()),
                 "model": {k: v for k, v in model.manifest.items() if not isinstance(v, (list, dict))},
                 "dense": model.manifest.get("dense"), "results": []}
    for set_name, items in (("KEV entries outside the records (shortDescription)", short_items),):
        inputs = [CveInput(id=cid, description=d) for cid, d, _ in items]
        excls = [Exclusion.for_item(cid, d) for cid, d, _ in items]
        for dense in ([False, True] if a.dense else [False]):
            for level in ("cna", "nvd"):
                mp = CweMapper(model, catalog, level=level, dense=dense)
                t1 = time.time()
                res = mp.map_many(inputs, excls)
                top1 = sum(bool(m.cwe) and m.cwe[0] in g for m, (_, _, g) in zip(res, items))
                top3 = sum(any(c in g for c in m.cwe[:3]) for m, (_, _, g) in zip(res, items))
                rel = collections.Counter(catalog.relation(m.cwe[0], g[0]) if m.cwe else "miss"
                                          for m, (_, _, g) in zip(res, items))
                row = {"set": set_name, "n": len(items), "dense": dense, "level": level,
                       "top1": round(top1 / len(items), 4), "top3": round(top3 / len(items), 4),
                       "relation_to_first_label": dict(rel), "excluded_rows": sum(m.excluded for m in res),
                       "seconds": round(time.time() - t1, 1)}
                log(json.dumps(row))
                out["results"].append(row)
    out["wall_s"], out["cpu_s"] = round(time.time() - t0, 1), round(time.process_time() - c0, 1)
    out["loadavg_end"] = os.getloadavg()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "results"}, indent=1))
    for r in out["results"]:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
