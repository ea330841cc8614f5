"""CTIBench-ATE micro-F1 of extract-ttps (no LLM, or with ``--llm SPEC``), under the leakage rule.

    .venv/bin/python bench/intel_ttps_ate.py [--llm smollm2-135m-instruct] [--out bench/results/intel_ttps_ate.json]

Each ATE item describes an ATT&CK software entry (its URL names the S-id). While scoring an
item, that software's own procedure examples (and any example whose text names it), and those
of every software the text names, are withheld from the sentence model; the number withheld is
reported. Gold and predictions are main technique ids (sub-techniques folded into their parent),
scored with the harness's own ATE parser and set metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llm", default=None)
    ap.add_argument("--min-confidence", type=float, default=None)
    ap.add_argument("--out", default="bench/results/intel_ttps_ate.json")
    ap.add_argument("--limit", type=int, default=0)
    a = ap.parse_args()

    from secfoundry.apps.intel.ttps import ExtractOptions, get_extractor
    from secfoundry.apps.intel.ttps_system import described_entities
    from secfoundry.eval import metrics, parsing
    from secfoundry.eval.benchmarks.ctibench import CTIBenchATE

    items = CTIBenchATE().load()
    if a.limit:
        items = items[:a.limit]
    t0 = time.time()
    ex = get_extractor()
    load_s = time.time() - t0
    preds, golds, rows = [], [], []
    t1 = time.time()
    for it in items:
        sid = re.search(r"/software/(S\d{4})", it.meta.get("url", ""))
        kw = {} if a.min_confidence is None else {"min_confidence": a.min_confidence}
        own = described_entities(it.question, ex.catalog) | ({sid.group(1)} if sid else set())
        opts = ExtractOptions(domain=(it.meta.get("Platform") or "enterprise").lower(), exclude_entities=tuple(sorted(own)),
                              exclude_mentioned_software=True, llm=a.llm, **kw)
        res = ex.extract(it.question, opts)
        answer = ", ".join(t.id for t in res.techniques)
        pred = parsing.attack_ids(answer, last_line=False)
        preds.append(pred)
        golds.append(set(it.gold))
        gold = set(it.gold)  # benchmark labels stay out of the results file: counts only
        rows.append({"id": it.id, "software": sid.group(1) if sid else None, "pred": sorted(pred),
                     "tp": len(pred & gold), "fp": len(pred - gold), "fn": len(gold - pred),
                     "excluded_examples": res.excluded_examples,
                     "confidences": {t.id: t.confidence for t in res.techniques}})
    s = metrics.set_scores(preds, golds)
    out = {"benchmark": "ctibench-ate", "n": len(items), "llm": a.llm, "micro_f1": round(s.micro_f1, 4),
           "micro_precision": round(s.micro_precision, 4), "micro_recall": round(s.micro_recall, 4),
           "macro_f1": round(s.macro_f1, 4), "exact_match": round(s.exact, 4),
           "excluded_examples_mean": round(sum(r["excluded_examples"] for r in rows) / max(1, len(rows)), 1),
           "load_s": round(load_s, 1), "seconds_per_item": round((time.time() - t1) / max(1, len(items)), 3),
           "loadavg": os.getloadavg()[0], "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
