"""PII scrubber: exactness on the labelled set, and what it replaces in real security documents.

Connector documents (CVE, ATT&CK, OSV, Sigma, KEV ...) hold very little personal data but many
indicators, version numbers and ids, so every replacement there is worth a look: the script
prints counts per placeholder and source, and each replacement with its context, for audit.

Run: .venv/bin/python bench/pii_bench.py [--limit 300] [--show 40]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("EMAIL", "PHONE", "CREDIT_CARD", "SSN", "IBAN", "SECRET", "PRIVATE_KEY")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--show", type=int, default=40)
    ap.add_argument("--mirror", default=str(ROOT.parent / "shared" / "data" / "mirror"))
    args = ap.parse_args()

    from secfoundry.corpus.process.audit import source_documents
    from secfoundry.corpus.process.pii import PIIScrubber

    s = PIIScrubber()
    cases = [json.loads(x) for x in (ROOT / "tests/corpus/process/data/pii_labelled.jsonl").read_text().splitlines()]
    tp = fp = fn = 0
    for c in cases:
        got = Counter(r.kind for r in s.find(c["text"]))
        exp = Counter({k: c["expected"].count(f"<{k}>") for k in KINDS})
        tp += sum((got & exp).values())
        fp += sum((got - exp).values())
        fn += sum((exp - got).values())
    exact = sum(s.scrub(c["text"])[0] == c["expected"] for c in cases)
    print(f"labelled set: {len(cases)} cases, {exact} exact; placeholders TP {tp} FP {fp} FN {fn}")

    counts: dict[str, Counter] = defaultdict(Counter)
    n_docs: Counter = Counter()
    chars = 0
    shown = []
    errors: list[str] = []
    t0 = time.perf_counter()
    for doc in source_documents(Path(args.mirror), None, args.limit, errors):
        n_docs[doc.source] += 1
        chars += len(doc.text)
        for r in s.find(doc.text):
            counts[doc.source][r.kind] += 1
            if len(shown) < args.show:
                ctx = doc.text[max(0, r.start - 50): r.end + 30].replace("\n", " ")
                shown.append(f"{doc.source} {doc.id} <{r.kind}> {r.text!r}: …{ctx}…")
    dt = time.perf_counter() - t0
    print(f"\n{sum(n_docs.values())} connector documents, {chars / 1e6:.1f} M chars "
          f"(read + scrub {dt:.1f}s); errors: {errors}")
    print("\n| source | docs | " + " | ".join(KINDS) + " |\n|---|---:|" + "---:|" * len(KINDS))
    for src in sorted(n_docs):
        print(f"| {src} | {n_docs[src]} | " + " | ".join(str(counts[src][k]) for k in KINDS) + " |")
    print("\nreplacements with context:")
    for line in shown:
        print(" -", line)


if __name__ == "__main__":
    main()
