"""Language ID on real CVE descriptions: routing + prose-only fastText vs fastText on raw text.

All 38,881 descriptions of datasets/cve-records.jsonl.gz are routed as crawl documents (no
source trust) and judged by LanguageStep; the FineWeb-style baseline keeps a text when
fastText's English score on the raw text is >= 0.65.

Run: .venv/bin/python bench/langid_bench.py
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    from secfoundry.corpus.process.contenttype import route
    from secfoundry.corpus.process.langid import LanguageStep, detect

    rows = [json.loads(x) for x in gzip.open(SHARED / "datasets" / "cve-records.jsonl.gz", "rt")]
    texts = [(r["id"], r["description"]) for r in rows if r.get("description")]
    step = LanguageStep()
    raw_keep = ours_keep = 0
    drops = []
    t0 = time.process_time()
    for cve_id, d in texts:
        raw_keep += detect(d).get("en", 0.0) >= 0.65
        r = route(d, "crawl")
        res = step.classify(d, r.content_type, r.prose)
        ours_keep += res.keep
        if not res.keep:
            drops.append((cve_id, res.lang, res.score, d[:120]))
    cpu = time.process_time() - t0
    n = len(texts)
    print(f"CVE descriptions: {n}")
    print(f"fastText en >= 0.65 on raw text keeps {raw_keep} ({100 * raw_keep / n:.2f}%)")
    print(f"routing + prose-only langid keeps     {ours_keep} ({100 * ours_keep / n:.3f}%)")
    print(f"CPU {cpu:.1f}s ({n / cpu:.0f} docs per CPU-second, routing + 2 fastText calls)")
    for x in drops:
        print("  dropped:", x)


if __name__ == "__main__":
    main()
