"""Dedup quality per step: redundant text left and distinct entities lost (issue #14, item 5).

Input (deterministic): connector documents rendered from the mirror (up to ``--per-source`` per
connector, every connector), general-domain text, and **planted near-duplicates** of
``--planted`` of those documents (security and general alike): a date line prepended, ~3% of the
words dropped or doubled, a share line appended, placed at a random later position. The mirror
also holds **real duplicates**: the same vulnerability as an OSV record, its GHSA/PYSEC/RUSTSEC
alias and the CVE/NVD/KEV records, NIST controls and their CTID-mapping pages; they are found by
document identity (``corpus/prepare/identity.py``) and reported as groups.

The dedup steps run in this process exactly as the engine runs them (fit over Parquet
partitions, then every partition), in each order given by ``--orders``; after every step the
script reports the documents left, the redundant text left (13-gram shingles of a kept document
that another kept document also has; ``dedup_metrics.redundancy``), the distinct entities lost
so far (removed or emptied with no kept document about the same entity; target 0), the planted
pairs with both copies still kept (and their median 5-gram Jaccard), and the real duplicate
groups with more than one member kept.

    .venv/bin/python bench/corpus_dedup_quality.py [--per-source 800] [--general 2000] [--planted 1000]
    .venv/bin/python bench/corpus_dedup_quality.py --json bench/results/corpus_dedup_quality.json
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

DATE_LINES = ["Published: {d}", "Updated on {d}", "Posted {d} by the editorial team", "Last modified: {d}"]
SHARE_LINES = ["Share this article: Twitter | LinkedIn | Facebook | Email",
               "If you found this useful, share it with your team and subscribe to our newsletter.",
               "Share on social media. Copy link."]


def load_documents(mirror: Path, per_source: int, n_general: int):
    from secfoundry.corpus.collect.general import general_files, iter_general_documents
    from secfoundry.corpus.collect.sources import iter_source_documents
    from secfoundry.core.errors import Quarantine
    from secfoundry.sources.base import registry

    docs = []
    for name in sorted(registry()):
        if name == "epss":
            continue
        t = time.time()
        got = list(iter_source_documents(name, mirror=mirror, max_docs=per_source, quarantine=Quarantine()))
        docs += got
        print(f"  {name}: {len(got)} documents ({time.time() - t:.1f}s)", flush=True)
    gen = []
    files = general_files(str(SHARED / "datasets" / "general-text"))
    for f in files:
        gen += list(iter_general_documents(f, max_docs=max(1, n_general // max(1, len(files)))))
    print(f"  general: {len(gen[:n_general])} documents", flush=True)
    return docs + gen[:n_general]


def load_jsonl(path: Path):
    """The corpus throughput bench's input (``bench/corpus_throughput.py``): Markdown and plain-text
    documents (its HTML pages would need the process stage's extraction first)."""
    from secfoundry.core.documents import Document

    docs = []
    for f in sorted(path.glob("*.jsonl")):
        for line in f.open(encoding="utf-8"):
            d = json.loads(line)
            if d.get("format") != "html":
                docs.append(Document(id=d["id"], text=d["text"], source=d["source"], url=d.get("url") or "",
                                     title=d.get("title") or ""))
    return docs


def load_parquet(path: Path):
    """Documents of a pipeline phase directory (e.g. the throughput bench's ``01-process`` output):
    exactly what the run's dedup step reads, HTML pages already extracted, non-security pages
    already filtered out by the process stage."""
    import pyarrow.parquet as pq

    from secfoundry.core.documents import Document

    files = sorted((path / "data").glob("*.parquet")) if (path / "data").is_dir() else sorted(path.glob("*.parquet"))
    return [Document.from_row(r) for f in files for r in pq.read_table(f).to_pylist()]


def kept_by_group(before, kept) -> dict[str, tuple[int, int]]:
    kept_ids = {d.id for d in kept}
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d in before:
        if d.id.startswith("plant:"):
            continue
        s = d.source.split(":", 1)[1] if d.source.startswith("web:") else d.source
        g = ("general" if s.startswith("general") or d.source == "web:general"
             else "security web" if d.source.startswith("web:") else "security")
        for key in (g, d.source):
            out[key][0] += 1
            out[key][1] += d.id in kept_ids
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def near_copy(text: str, rng: random.Random) -> str:
    d = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    lines = text.split("\n")
    out = []
    for ln in lines:
        ws = ln.split(" ")
        if len(ws) > 3 and not ln.lstrip().startswith(("#", "```", "|")):
            new = []
            for w in ws:
                r = rng.random()
                if r < 0.015:
                    continue  # dropped
                new.append(w)
                if r > 0.985:
                    new.append(w)  # doubled
            ln = " ".join(new)
        out.append(ln)
    return rng.choice(DATE_LINES).format(d=d) + "\n\n" + "\n".join(out) + "\n\n" + rng.choice(SHARE_LINES) + "\n"


def plant(docs, n: int, seed: int = 0):
    from secfoundry.core.documents import Document

    rng = random.Random(seed)
    docs = list(docs)
    rng.shuffle(docs)  # the plan order mixes sources, as a crawl would
    cand = [i for i, d in enumerate(docs) if len((d.text or "").split()) >= 40]
    picks = sorted(rng.sample(cand, min(n, len(cand))))
    pairs = []
    inserts: dict[int, list] = defaultdict(list)
    for i in picks:
        d = docs[i]
        # a crawled copy: another source than the connector that made the original
        c = Document(id=f"plant:{d.id}", text=near_copy(d.text, rng), source=f"web:{d.source}", url=d.url, title=d.title)
        inserts[rng.randint(i + 1, len(docs))].append(c)  # somewhere after its original
        pairs.append((d.id, c.id))
    out = []
    for i, d in enumerate(docs):
        out += inserts.get(i, [])
        out.append(d)
    out += inserts.get(len(docs), [])
    return out, pairs


def real_groups(docs):
    """Documents about the same entity (identity key), per key with ≥ 2 documents."""
    from secfoundry.corpus.prepare.identity import identity, identity_key

    by_key = defaultdict(list)
    for d in docs:
        if d.id.startswith("plant:"):
            continue
        k = identity_key(identity(d.text, d.title or ""))  # entities only: records are unique by definition
        if k:
            by_key[k].append(d.id)
    return {k: v for k, v in by_key.items() if len(v) > 1}


def run_step(step, docs, tmp: Path, part_rows: int = 2000):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from secfoundry.corpus.step import GlobalContext
    from secfoundry.core.documents import Document

    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "in").mkdir(parents=True)
    (tmp / "state").mkdir()
    files = []
    for k in range(0, len(docs), part_rows):
        p = tmp / "in" / f"part-{k // part_rows:05d}.parquet"
        pq.write_table(pa.Table.from_pylist([d.to_row() for d in docs[k:k + part_rows]]), p)
        files.append(p)
    ctx = GlobalContext(partitions=files, state_dir=tmp / "state", phase_dir=tmp / "phase", num_cpus=1)
    t = time.perf_counter()
    step.fit(ctx)
    step.load(tmp / "state")
    kept, dropped = [], []
    for f in files:
        k, d = step.run_batch([Document.from_row(r) for r in pq.read_table(f).to_pylist()])
        kept += k
        dropped += d
    return kept, dropped, time.perf_counter() - t


def build(name: str, options: dict):
    from secfoundry.corpus.engine.registry import build_step

    return build_step(name, options)


def evaluate(order: list[str], docs, pairs, groups, tmp: Path, step_options: dict) -> list[dict]:
    from secfoundry.corpus.prepare.dedup_metrics import entities_lost, pair_stats, redundancy

    rows = []
    r0 = redundancy(docs)
    rows.append({"step": "input", "docs": len(docs), "redundant": r0.fraction, "lost": 0, "removed_entity_docs": 0,
                 "emptied": 0, "planted_both": pair_stats(pairs, docs).both_kept, "groups_multi": len(groups),
                 "seconds": 0.0, "lost_examples": []})
    cur = docs
    for name in order:
        kept, dropped, secs = run_step(build(name, step_options.get(name, {})), cur,
                                       tmp / name)
        loss = entities_lost(docs, kept)
        twins = [t for t in loss.through_twin if not t[0].startswith("plant:")]  # planted copies are not twins
        red = redundancy(kept)
        ps = pair_stats(pairs, kept)
        kept_ids = {d.id for d in kept}
        multi = sum(1 for ids in groups.values() if sum(i in kept_ids for i in ids) > 1)
        rows.append({"step": name, "docs": len(kept), "dropped": len(dropped),
                     "reasons": dict(Counter(d.reason for d in dropped)), "redundant": red.fraction,
                     "redundant_by_source": {s: (r / t if t else 0.0) for s, (t, r) in red.by_source.items()},
                     "lost": loss.n_lost, "removed_entity_docs": loss.removed, "emptied": loss.emptied,
                     "lost_by_source": dict(loss.by_source), "lost_examples": loss.lost[:15],
                     "through_twin": len(twins), "through_twin_by_source": dict(Counter(s for _, s, _ in twins)),
                     "through_twin_examples": twins[:10],
                     "planted_both": ps.both_kept, "planted_median_jaccard": ps.median_jaccard,
                     "groups_multi": multi, "seconds": secs, "kept_by_group": kept_by_group(docs, kept)})
        print(f"  {name:16s} docs {len(kept):6d}  redundant {100 * red.fraction:5.2f}%  entities lost {loss.n_lost}"
              f" (removed {loss.removed}, emptied {loss.emptied}; {len(twins)} removed kept only via an alias twin)  planted both kept {ps.both_kept}/{ps.pairs}"
              f" (J {ps.median_jaccard:.2f})  groups >1 kept {multi}/{len(groups)}  {secs:.1f}s", flush=True)
        cur = kept
    kg = rows[-1]["kept_by_group"]
    print("  kept after " + " -> ".join(order) + ": " + ", ".join(
        f"{k} {v[1]}/{v[0]} = {100 * v[1] / v[0]:.1f}%" for k, v in kg.items() if k in ("security", "security web", "general")), flush=True)
    print("  per source: " + ", ".join(f"{k} {100 * v[1] / v[0]:.1f}%" for k, v in kg.items()
                                       if k not in ("security", "security web", "general") and v[1] < v[0]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirror", type=Path, default=SHARED / "mirror")
    ap.add_argument("--per-source", type=int, default=800)
    ap.add_argument("--general", type=int, default=2000)
    ap.add_argument("--planted", type=int, default=1000)
    ap.add_argument("--orders", default="exact_dedup,paragraph_dedup,minhash_dedup;exact_dedup,minhash_dedup,paragraph_dedup")
    ap.add_argument("--options", default="{}", help='JSON: per-step options, e.g. {"minhash_dedup": {"threshold": 0.6}}')
    ap.add_argument("--input-jsonl", type=Path, default=None,
                    help="use this JSONL directory (the corpus throughput bench's input) instead of sampling the mirror")
    ap.add_argument("--input-parquet", type=Path, default=None,
                    help="use this phase directory's Parquet partitions (e.g. <run>/01-process) as the input")
    ap.add_argument("--work", type=Path, default=Path("/tmp/secfoundry-dedup-quality"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    print("loading documents ...", flush=True)
    if args.input_parquet:
        docs = load_parquet(args.input_parquet)
    elif args.input_jsonl:
        docs = load_jsonl(args.input_jsonl)
    else:
        docs = load_documents(args.mirror, args.per_source, args.general)
    docs, pairs = plant(docs, args.planted)
    groups = real_groups(docs)
    print(f"{len(docs)} documents ({len(pairs)} planted near-duplicates); {len(groups)} real duplicate groups "
          f"({sum(map(len, groups.values()))} documents)", flush=True)
    src_of = {d.id: d.source for d in docs}
    group_kinds = Counter(" + ".join(sorted({src_of[i] for i in ids})) for ids in groups.values())
    print("real groups by sources:", dict(group_kinds.most_common(12)), flush=True)
    results = {"docs": len(docs), "planted": len(pairs), "groups": len(groups), "group_kinds": dict(group_kinds),
               "options": json.loads(args.options), "orders": {}}
    for order in args.orders.split(";"):
        steps = order.split(",")
        print(f"order: {' -> '.join(steps)}", flush=True)
        results["orders"][order] = evaluate(steps, docs, pairs, groups, args.work, results["options"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
