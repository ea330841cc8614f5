"""SOC technique recall on the 10 labelled OTRF Security-Datasets recordings (issue #10).

Ground truth: the ATT&CK technique(s) in each recording's metadata YAML (``attack_mappings``).
All recordings are ingested into one store and every KB Sigma rule runs once; alerts are then
attributed to their recording by the file their events came from, and triage + cases run per
recording. Reported per recording and overall:

- Sigma alone: the union of ATT&CK tags of every Sigma alert in the recording;
- Sigma + triage: the techniques of the recording's top case (highest score) after triage
  (alerts scored as likely false positives open no case; untagged rules get techniques
  inferred from the KB);
- recall: the labelled technique is among them (strict: same id; family: same parent technique);
- precision: share of the reported techniques that are labelled (strict / family). A recording
  is labelled with one technique, while Sigma rules tag every technique a behaviour touches,
  so precision is low by construction; it is reported, not optimized.

    .venv/bin/python bench/soc_recall.py --kb /work/sf-shared-home/kb --out results/soc_recall.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OTRF = ROOT.parent / "shared" / "data" / "soc" / "alerts" / "windows"


def ground_truth() -> dict[str, dict]:
    out = {}
    for line in (OTRF / "manifest.jsonl").read_text().splitlines():
        m = json.loads(line)
        if "metadata" not in m:
            continue
        meta = yaml.safe_load((OTRF.parent.parent / m["metadata"]).read_text())
        techs = []
        for am in meta.get("attack_mappings") or []:
            t = am["technique"] + (f".{am['sub-technique']}" if am.get("sub-technique") else "")
            techs.append(t)
        out[Path(m["path"]).name] = {"techniques": techs, "title": m["title"], "dataset": m["dataset_id"]}
    return out


def score(found: list[str], truth: list[str]) -> dict:
    fam = lambda t: t.split(".")[0]  # noqa: E731
    strict_hit = [t for t in truth if t in found]
    fam_hit = [t for t in truth if fam(t) in {fam(x) for x in found}]
    return {"found": found, "recall_strict": len(strict_hit) / len(truth), "recall_family": len(fam_hit) / len(truth),
            "precision_strict": (sum(1 for x in found if x in truth) / len(found)) if found else 0.0,
            "precision_family": (sum(1 for x in found if fam(x) in {fam(t) for t in truth}) / len(found))
            if found else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", default=os.environ.get("SECFOUNDRY_KB", "/work/sf-shared-home/kb"))
    ap.add_argument("--work", default="/tmp/soc_recall")
    ap.add_argument("--out", default=str(ROOT / "results" / "soc_recall.json"))
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SECFOUNDRY_HOME", str(work / "home"))
    from secfoundry.apps.soc.cases import build_cases
    from secfoundry.apps.soc.detect import detect
    from secfoundry.apps.soc.ingest import ingest
    from secfoundry.apps.soc.pipeline import open_kb
    from secfoundry.apps.soc.rules import load_rules
    from secfoundry.apps.soc.store import Store
    from secfoundry.apps.soc.triage import triage

    gt = ground_truth()
    kb = open_kb(a.kb)
    t0 = time.perf_counter()
    db = work / "recall.duckdb"
    db.unlink(missing_ok=True)
    per: dict[str, dict] = {}
    with Store(db) as st:
        rep = ingest([str(OTRF / "otrf-security-datasets" / z) for z in sorted(gt)], st)
        rs = load_rules(None, kb)
        alerts, drep = detect(st, rs)
        file_of = dict(st.con.execute("SELECT event_id, file FROM events").fetchall())
        for z, info in sorted(gt.items()):
            mine = [al for al in alerts if any(z in file_of.get(e, "") for e in al.event_ids)]
            sigma = [al for al in mine if al.source == "sigma"]
            tri = triage(st, mine, kb=kb, ruleset=rs)
            cases = build_cases(st, mine, tri, kb=kb)
            top = cases[0] if cases else None
            per[z] = {"dataset": info["dataset"], "title": info["title"], "truth": info["techniques"],
                      "sigma_alerts": len(sigma), "cases": len(cases),
                      "top_case_alerts": len(top.alerts) if top else 0,
                      "sigma_alone": score(sorted({t for al in sigma for t in al.techniques}), info["techniques"]),
                      "with_triage": score(top.techniques if top else [], info["techniques"]),
                      "with_triage_all_cases": score(sorted({t for c in cases for t in c.techniques}),
                                                     info["techniques"])}
    agg = {}
    for mode in ("sigma_alone", "with_triage", "with_triage_all_cases"):
        agg[mode] = {k: round(sum(p[mode][k] for p in per.values()) / len(per), 3)
                     for k in ("recall_strict", "recall_family", "precision_strict", "precision_family")}
    res = {"recordings": len(per), "events": rep.read, "sigma_rules_run": drep.rules_run,
           "sigma_alerts": drep.sigma_alerts, "seconds": round(time.perf_counter() - t0, 1), "mean": agg,
           "per_recording": per, "load": os.getloadavg()}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(agg, indent=1))
    for z, p in per.items():
        print(f"{p['dataset']} {','.join(p['truth']):<10} sigma {p['sigma_alone']['recall_strict']:.0f}/"
              f"{p['sigma_alone']['recall_family']:.0f} ({len(p['sigma_alone']['found'])} techs)  top case "
              f"{p['with_triage']['recall_strict']:.0f}/{p['with_triage']['recall_family']:.0f} "
              f"({len(p['with_triage']['found'])} techs: {','.join(p['with_triage']['found'][:8])})  {p['title']}")


if __name__ == "__main__":
    main()
