"""Embed the intel corpora once with the contextual all-MiniLM-L6-v2 model, into the per-text cache.

    nice -n 5 .venv/bin/python bench/intel_embed.py [--corpus ttps,cwe,ctibench,kev] [--limit N]
        [--embedder minilm] [--out bench/results/intel_embed.json]

Corpora (the exact texts the apps embed, so later fits and benches find every vector cached):

* ``ttps`` - the ATT&CK procedure examples extract-ttps learns from (entity names masked, as in
  ``ttps_model.TechniqueModel``), ~17.7k;
* ``cwe`` - the cleaned descriptions of the CWE-labelled CVE records of the full intel model
  (``dense_cwe``: the temporal model's rows and the dev/test halves are subsets), ~23.5k;
* ``ctibench`` - the descriptions of the CTIBench RCM / RCM-2021 items (queries only);
* ``kev`` - the descriptions of the KEV CVEs found in the CVE records (queries only).

Vectors go to ``vectors.VectorStore`` (``SECFOUNDRY_HOME/intel/embeddings/<embedder>/``): texts
sorted by length before batching (padding is most of the cost), truncated at 256 word pieces,
written shard by shard keyed by a hash of the text, so a killed run resumes and a second run
embeds nothing. Reported per corpus: texts, new texts embedded, wall and CPU seconds, texts/s,
word pieces per text (mean, and the share truncated), load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def corpus_texts(name: str, limit: int = 0) -> list[str]:
    from secfoundry.apps.intel.cve_guard import clean_description

    if name == "ttps":
        from secfoundry.apps.intel.ttps import TTPExtractor

        ex = TTPExtractor(representation="tfidf")
        texts = [e.text for e in ex.model.examples]
    elif name == "cwe":
        from secfoundry.apps.intel.fitted import IntelModel

        model = IntelModel.get(dense=False)
        texts = [clean_description(model.descriptions[i])[0] for i, lab in enumerate(model.cwe_labels) if lab]
    elif name == "ctibench":
        import csv

        from secfoundry.core.paths import benchmark_data_dir

        csv.field_size_limit(1 << 26)
        texts = []
        for b in ("cti-rcm", "cti-rcm-2021"):
            with (benchmark_data_dir() / "ctibench" / f"{b}.tsv").open(encoding="utf-8", newline="") as fh:
                rows = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
                texts += [clean_description(r["Description"])[0] for r in rows]
    elif name == "kev":
        from secfoundry.apps.intel.cve_index import load_records

        kev = kev_ids()
        recs, _ = load_records(errors=[])
        texts = [clean_description(r.description)[0] for r in recs if r.id in kev and r.description]
    else:
        raise SystemExit(f"unknown corpus {name!r}")
    texts = [t for t in texts if t]
    return texts[:limit] if limit else texts


def kev_ids() -> set[str]:
    from secfoundry.core.paths import mirror_dir

    p = mirror_dir() / "kev" / "known_exploited_vulnerabilities.json"
    return {v["cveID"] for v in json.loads(p.read_text())["vulnerabilities"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="ttps,cwe")
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--limit", type=int, default=0, help="first N texts of each corpus (speed checks)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "intel_embed.json"))
    a = ap.parse_args()
    from secfoundry.apps.intel.vectors import VectorStore, intel_embedder

    log = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True)  # noqa: E731
    emb = intel_embedder(a.embedder)
    store = VectorStore(emb)
    log(f"{emb.name}: {len(store):,} vectors cached in {store.dir}")
    rows = []
    for name in a.corpus.split(","):
        texts = corpus_texts(name, a.limit)
        uniq = list(dict.fromkeys(texts))
        new = [t for t in uniq if not store.has(t)]
        pieces = []
        if new and hasattr(emb, "load"):
            tok = emb.load().tokenizer
            pieces = [len(tok(t, add_special_tokens=True)["input_ids"]) for t in new[:: max(1, len(new) // 2000)]]
        before = dict(store.stats)
        load0 = os.getloadavg()
        store.get(uniq, persist=True, log=log)
        wall = store.stats["wall_s"] - before["wall_s"]
        cpu = store.stats["cpu_s"] - before["cpu_s"]
        row = {"corpus": name, "texts": len(texts), "unique": len(uniq), "embedded": len(new),
               "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
               "texts_per_s": round(len(new) / wall, 1) if wall else None,
               "texts_per_cpu_s": round(len(new) / cpu, 1) if cpu else None,
               "word_pieces_mean": round(sum(pieces) / len(pieces), 1) if pieces else None,
               "truncated_share": round(sum(p > 256 for p in pieces) / len(pieces), 4) if pieces else None,
               "loadavg_start": load0, "loadavg_end": os.getloadavg()}
        log(json.dumps(row))
        rows.append(row)
    out = {"embedder": emb.name, "threads": getattr(emb, "threads", None), "store": str(store.dir),
           "cached_total": len(store), "rows": rows}
    if not a.limit:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
