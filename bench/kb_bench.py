"""Knowledge-base benchmark: full sync, lookup and search latency, retrieval quality.

    .venv/bin/python bench/kb_bench.py --mirror ../shared/data/mirror --datasets ../shared/data/datasets

1. Full ``secfoundry kb sync`` of every source from the mirror into an empty KB (cold: empty
   embedding cache), run as a child process: wall time and peak RSS (getrusage of the child).
   Then a forced re-sync (every source re-parsed, vectors from the cache).
2. Lookup latency: ``KnowledgeBase.show(id)`` (records merged across sources + all relation
   sections) for ids of every kind; p50/p99.
3. Search latency: ``KnowledgeBase.search(q)`` end to end (query embedding, BM25 x2, dense,
   fusion) for procedure sentences, CVE descriptions and short analyst queries; p50/p99.
4. Retrieval quality, recall@10 with ``type`` filters:
   - technique for the 16,017 ATT&CK procedure sentences of attack-procedure-examples.jsonl; each
     query holds its own "uses" relationship out of the passage index (``exclude`` = the
     (source_id, technique_id) pair the sentence comes from), so it cannot find itself;
   - CWE for 1,000 CVE descriptions (seeded sample of cve-records.jsonl.gz records with a CWE
     that the KB has as a weakness); CWE observed examples citing that CVE are held out.
   Reported for the fused ranking and per lane (ablation).
Results go to stdout (Markdown) and ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs), p)) if xs else float("nan")


def run_sync(db: Path, mirror: Path, extra: list[str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "secfoundry", "kb", "sync", "--mirror", str(mirror), "--db", str(db),
                           "--json", *extra], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = proc.stdout
    report = json.loads(out[out.index("{"):]) if "{" in out else {"error": proc.stderr[-2000:]}
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "peak_rss_mb": after.ru_maxrss / 1024, "exit_code": proc.returncode, "report": report}


def bench_sync(mirror: Path, db: Path) -> dict[str, Any]:
    cold = run_sync(db, mirror, [])
    warm = run_sync(db, mirror, ["--force"])
    return {"cold": cold, "forced_resync": warm}


def lookup_ids(kb: Any, n: int, rng: random.Random) -> list[str]:
    by_prefix: dict[str, list[str]] = {}
    for (rid,) in kb.store.conn.execute("SELECT DISTINCT id FROM records"):
        key = rid.split(":")[0] if ":" in rid else rid.rstrip("0123456789.()-")[:6]
        by_prefix.setdefault(key, []).append(rid)
    ids = []
    for key in sorted(by_prefix):
        ids += rng.sample(by_prefix[key], min(len(by_prefix[key]), max(5, n // len(by_prefix))))
    ids += ["T1059.001", "T1003.001", "CWE-79", "CAPEC-66", "CVE-2024-3400", "D3-AL", "AC-2", "T1086"]
    rng.shuffle(ids)
    return ids[:n] if len(ids) > n else ids


def _timed(fn: Any, args: list[Any]) -> dict[str, Any]:
    """Wall and CPU (this process, all threads) milliseconds per call: on a shared machine the
    CPU figure is what the call costs, the wall figure what it took under the load of the day."""
    wall, cpu = [], []
    for a in args:
        t0, c0 = time.perf_counter(), time.process_time()
        fn(a)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return {"n": len(args), "p50_ms": pct(wall, 50), "p99_ms": pct(wall, 99), "max_ms": max(wall),
            "cpu_p50_ms": pct(cpu, 50), "cpu_p99_ms": pct(cpu, 99)}


def bench_lookup(kb: Any, ids: list[str]) -> dict[str, Any]:
    for i in ids[:20]:
        kb.show(i)  # warm the sqlite page cache
    out = {"show": _timed(kb.show, ids), "validate": _timed(kb.validate, ids)}
    out["missing"] = sum(kb.show(i) is None for i in ids)
    return out


def bench_search_latency(kb: Any, queries: list[tuple[str, str | None]]) -> dict[str, Any]:
    kb.warm()
    return _timed(lambda qt: kb.search(qt[0], type=qt[1], k=10), queries)


def recall(kb: Any, items: list[dict[str, Any]], type_: str, batch: int = 256,
           variants: dict[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """items: {"q", "gold": set, "exclude": set}; recall@10 per fusion variant."""
    variants = variants or {"fused": ("id", "bm25", "passages", "dense"), "bm25+passages": ("bm25", "passages"),
                            "bm25": ("bm25",), "passages": ("passages",), "dense": ("dense",)}
    s = kb.searcher
    hits = {v: 0 for v in variants}
    hits_family = 0
    t0 = time.perf_counter()
    embed_s = 0.0
    for start in range(0, len(items), batch):
        if start and start % 2048 == 0:  # items are shuffled: a running figure is a fair sample
            print(f"  {start}/{len(items)} recall@10 fused {hits['fused'] / start:.4f}", flush=True)
        chunk = items[start:start + batch]
        te = time.perf_counter()
        qv = s.embedder.encode([it["q"] for it in chunk]) if s.dense is not None else [None] * len(chunk)
        embed_s += time.perf_counter() - te
        for it, vec in zip(chunk, qv):
            ranked, _ = s.rankings(it["q"], type_, exclude=it["exclude"], qvec=vec)
            for v, lanes in variants.items():
                top = [i for i, _, _ in s.fuse(ranked, 10, lanes)]
                if it["gold"] & set(top):
                    hits[v] += 1
                    if v == "fused":
                        hits_family += 1
                elif v == "fused" and it.get("family") and it["family"] & {t.split(".")[0] for t in top}:
                    hits_family += 1
    n = len(items)
    out = {"n": n, "recall@10": {v: hits[v] / n for v in variants}, "seconds": time.perf_counter() - t0,
           "query_embedding_seconds": embed_s}
    if any(it.get("family") for it in items):
        out["recall@10_family"] = hits_family / n  # technique or a sibling/parent of it in the top 10
    return out


def attack_items(path: Path, limit: int | None, rng: random.Random) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.open()]
    rows = rng.sample(rows, limit) if limit else rng.sample(rows, len(rows))  # shuffled
    return [{"q": r["text"], "gold": {r["technique_id"]}, "family": {r["technique_id"].split(".")[0]},
             "exclude": {(r["source_id"], r["technique_id"])}} for r in rows]


def cve_items(path: Path, kb: Any, n: int, rng: random.Random) -> list[dict[str, Any]]:
    weaknesses = {r[0] for r in kb.store.conn.execute("SELECT DISTINCT id FROM records WHERE type='weakness'")}
    pool = []
    with gzip.open(path, "rt") as f:
        for line in f:
            r = json.loads(line)
            gold = {c for c in (r.get("cwe_cna") or []) + (r.get("cwe_adp") or []) if c in weaknesses}
            if gold and r.get("description"):
                pool.append((r["id"], r["description"], gold))
    sample = rng.sample(pool, min(n, len(pool)))
    return [{"q": d, "gold": g, "exclude": {(cid, None)}} for cid, d, g in sample]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "data" / "mirror")
    ap.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "data" / "datasets")
    ap.add_argument("--db", type=Path, help="Reuse this KB (skips the sync benchmark unless --sync).")
    ap.add_argument("--sync", action="store_true", help="Run the sync benchmark even with --db.")
    ap.add_argument("--procedures", type=int, default=0, help="Sample this many procedure sentences (0: all).")
    ap.add_argument("--cves", type=int, default=1000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="sync,lookup,search,recall-cve,recall-procedures",
                    help="Comma-separated subset to run.")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    res: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
                                       "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}}
    tmp = tempfile.TemporaryDirectory(prefix="kb-bench-")
    db = args.db or Path(tmp.name) / "kb"
    parts = set(args.parts.split(","))
    if "sync" in parts and (args.db is None or args.sync):
        res["sync"] = bench_sync(args.mirror, db)
        print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "report"} for k, v in res["sync"].items()}),
              flush=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO / "src"))
    from secfoundry.kb import KnowledgeBase

    kb = KnowledgeBase.open(db)
    if "lookup" in parts:
        res["lookup"] = bench_lookup(kb, lookup_ids(kb, 1000, rng))
        print("lookup", res["lookup"], flush=True)
    # One seeded generator per dataset: each sample is independent of what else runs.
    procs = attack_items(args.datasets / "attack-procedure-examples.jsonl", args.procedures or None,
                         random.Random(args.seed + 1))
    cves = cve_items(args.datasets / "cve-records.jsonl.gz", kb, args.cves, random.Random(args.seed + 2))
    queries = [(it["q"], "technique") for it in rng.sample(procs, 150)]
    queries += [(it["q"], "weakness") for it in rng.sample(cves, 100)]
    queries += [(q, None) for q in ("credential dumping from lsass", "sql injection login form", "ransomware "
                                    "encrypting files", "kerberoasting service tickets", "log4j jndi lookup",
                                    "phishing attachment macro", "disable windows defender", "pass the hash",
                                    "container escape", "ssrf cloud metadata")] * 5
    rng.shuffle(queries)
    if "search" in parts:
        res["search_latency"] = bench_search_latency(kb, queries)
        print("search", res["search_latency"], flush=True)
    if "recall-cve" in parts:
        res["recall_cve_cwe"] = recall(kb, cves, "weakness")
        print("cve->cwe", res["recall_cve_cwe"], flush=True)
    if "recall-procedures" in parts:
        res["recall_attack_procedures"] = recall(kb, procs, "technique")
        print("procedures", res["recall_attack_procedures"], flush=True)
    res["machine"]["loadavg_end"] = os.getloadavg()
    st = kb.status()
    res["kb"] = {"counts": st.counts, "dense": st.dense}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2, default=str))
    print(json.dumps({k: v for k, v in res.items() if k != "sync"}, indent=2, default=str))


if __name__ == "__main__":
    main()
