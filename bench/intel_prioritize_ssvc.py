"""SSVC agreement of prioritize's predicted decision points with CISA's (vulnrichment), per field.

    .venv/bin/python bench/intel_prioritize_ssvc.py [--records ../shared/data/datasets/cve-records.jsonl.gz]
        [--limit N] [--out bench/results/intel_prioritize_ssvc.json]

For every shared CVE record that carries CISA's SSVC points, prioritize's rules predict them from
what a scanner row would give: the CVSS v3.1 vector (CNA's, else CISA-ADP's; records without one
are counted separately), the description, and KEV membership (the record's kev_date_added). No
EPSS (not mirrored offline), so ``poc`` comes only from the description. CISA's published
points are never read by the predictor (``use_published_ssvc`` is a prioritize option, off here).
Reported: accuracy and confusion per field, and agreement of the final decision with the one
CISA's tree gives from CISA's points (mission & well-being fixed at medium for both).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path


def _lit(v):
    if isinstance(v, str):
        if v in ("", "None"):
            return None
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            return ast.literal_eval(v)
    return v


def _vector(rec) -> str | None:
    for key in ("cvss_cna", "cvss_adp"):
        c = _lit(rec.get(key)) or {}
        for ver in ("cvssV3_1", "cvssV3_0"):
            v = (c.get(ver) or {}).get("vector") if isinstance(c, dict) else None
            if v:
                return v
    return None


def _gold_counts(c: Counter) -> Counter:
    out: Counter = Counter()
    for k, v in c.items():
        out[k.split("->")[0]] += v
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/datasets/cve-records.jsonl.gz"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--out", default="bench/results/intel_prioritize_ssvc.json")
    a = ap.parse_args()
    from secfoundry.apps.intel.prioritize import parse_ssvc_field
    from secfoundry.apps.intel.ssvc import decide, predict_points

    if not Path(a.records).exists():
        print(f"no records file {a.records}", file=sys.stderr)
        return 2
    fields = {"Exploitation": "exploitation", "Automatable": "automatable", "Technical Impact": "technical_impact"}
    hits, conf, n, no_vec, dec_hit, dec_conf = Counter(), {f: Counter() for f in fields}, 0, 0, 0, Counter()
    t0 = time.time()
    with gzip.open(a.records, "rt", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            gold = parse_ssvc_field(rec.get("ssvc"))
            if not gold or len(gold) < 3:
                continue
            vec = _vector(rec)
            if vec is None:
                no_vec += 1
            kev = str(rec.get("kev_date_added") or "None") not in ("", "None")
            pts = predict_points(vector=vec, description=rec.get("description") or "", kev=kev)
            n += 1
            for g, attr in fields.items():
                p = getattr(pts, attr)
                hits[g] += p == gold[g]
                conf[g][f"{gold[g]}->{p}"] += 1
            gd = decide(gold["Exploitation"], gold["Automatable"], gold["Technical Impact"], "medium")
            dec_hit += pts.decision == gd
            dec_conf[f"{gd}->{pts.decision}"] += 1
            if a.limit and n >= a.limit:
                break
    out = {"records": a.records, "n": n, "without_cvss_vector": no_vec,
           "accuracy": {g: round(hits[g] / n, 4) for g in fields},
           "majority_baseline": {g: round(max(_gold_counts(conf[g]).values()) / n, 4) for g in fields},
           "decision_agreement_mwi_medium": round(dec_hit / n, 4),
           "confusion": {g: dict(conf[g].most_common()) for g in fields},
           "decision_confusion": dict(dec_conf.most_common()),
           "seconds": round(time.time() - t0, 1), "loadavg": os.getloadavg()[0]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
