"""MinHash-LSH near-duplicate removal with an entity guard.

Signatures are computed with vectorised numpy (one array op per document instead of
datasketch's one Python call per shingle), bucketed by LSH bands, and candidate pairs are
verified on the estimated Jaccard similarity. The entity guard keeps template pages apart:
for every kind of identifier both documents mention (CVE, CWE, technique, ...), they must share
at least one id of that kind. So CWE-79 and CWE-80 rendered from one template stay; a PyPA
advisory and its GHSA mirror (different advisory ids, same CVE) merge. The guard also compares
what the documents are *about* (``identity.py``: ids in the title / first heading / aliases):
two clusters whose documents are about different entities never merge, even when each page
mentions the other's id (CWE-162 "ParentOf CWE-163" and CWE-163 "ChildOf CWE-162") or their ids
are of different kinds (NIST ``AC-1`` and ``SI-1``, both "Policy and Procedures"). And it compares
titles (``identity.title_headings``: the last ``# `` heading near the top): two clusters whose
documents all have titles but share none are different pages — one-template records whose texts are near-identical
("Verify ownership of log files" / "Verify permissions of log files"; a Sigma rule and a crawled
page of a *sibling* rule; NIST SA-22 and its CTID mapping page "SA-22 mapped to ATT&CK") — while a
crawled copy keeps its original's heading and still merges.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from secfoundry.corpus.step import Dropped, GlobalContext, GlobalStep
from secfoundry.corpus.prepare.dedup_exact import drop_marked
from secfoundry.corpus.prepare.identity import document_key, title_headings
from secfoundry.corpus.prepare.text import entities, ngram_hashes, words
from secfoundry.core.documents import Document



def entity_kind(e: str) -> str:
    if e.startswith("TA"):
        return "TA"
    if e[0] in "TGSMC" and e[1:2].isdigit():
        return e[0]
    return e.split("-", 1)[0]


def entities_compatible(a: frozenset[str], b: frozenset[str]) -> bool:
    by_a, by_b = defaultdict(set), defaultdict(set)
    for e in a:
        by_a[entity_kind(e)].add(e)
    for e in b:
        by_b[entity_kind(e)].add(e)
    return all(by_a[k] & by_b[k] for k in by_a.keys() & by_b.keys())


@dataclass
class MinHashDedupConfig:
    shingle: int = 5  # words per shingle
    num_perm: int = 128
    bands: int = 20  # 20 bands x 6 rows: candidate probability > 0.99 from Jaccard 0.8 up
    threshold: float = 0.75  # estimated Jaccard needed to call two documents near-duplicates
    entity_guard: bool = True
    seed: int = 1
    title_guard: bool = True  # documents with disjoint title headings never merge


class MinHasher:
    """k hash functions = a strong 64-bit mixer (splitmix64 finaliser) over shingle ^ seed_k.

    Linear ``(a*x + b) mod p`` permutations are the textbook choice, but with 64-bit numpy
    arithmetic they either overflow or (with small a) stay monotonic in x for most inputs,
    which biases the estimate badly; a full-avalanche mixer needs no 128-bit products.
    """

    def __init__(self, num_perm: int, seed: int):
        rng = np.random.default_rng(seed)
        self.seeds = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)

    def signature(self, shingles: np.ndarray) -> np.ndarray:
        if len(shingles) == 0:
            return np.full(len(self.seeds), np.iinfo(np.uint64).max, dtype=np.uint64)
        z = np.unique(shingles)[None, :] ^ self.seeds[:, None]
        with np.errstate(over="ignore"):
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z ^= z >> np.uint64(31)
        return z.min(axis=1)


def signatures(texts: list[str], c: MinHashDedupConfig, titles: list[str] | None = None,
               ids: list[str] | None = None, sources: list[str] | None = None
               ) -> tuple[np.ndarray, list[frozenset[str]], list[str], list[frozenset[str]]]:
    mh = MinHasher(c.num_perm, c.seed)
    sigs = np.empty((len(texts), c.num_perm), dtype=np.uint64)
    ents: list[frozenset[str]] = []
    keys: list[str] = []
    heads = [title_headings(t or "") for t in texts]
    for i, text in enumerate(texts):
        sigs[i] = mh.signature(ngram_hashes(words(text or ""), c.shingle))
        e = entities(text or "") if c.entity_guard else frozenset()
        ents.append(e)
        keys.append(document_key(text or "", (titles[i] if titles else "") or "", ids[i] if ids else "",
                                 (sources[i] if sources else "") or "") if c.entity_guard else "")
    return sigs, ents, keys, heads


def partition_signatures(path: str, c: MinHashDedupConfig):
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    cols = ["id", "text"] + [x for x in ("title", "source") if x in names]
    table = pq.read_table(path, columns=cols)
    titles = table.column("title").to_pylist() if "title" in cols else None
    sources = table.column("source").to_pylist() if "source" in cols else None
    sigs, ents, keys, heads = signatures(table.column("text").to_pylist(), c, titles, table.column("id").to_pylist(),
                                         sources)
    return table.column("id").to_pylist(), sigs, ents, keys, heads


def _band_buckets(chunk: np.ndarray) -> list[list[int]]:
    """The LSH buckets of one band with two or more members: rows with identical band values,
    each bucket's members in row order, buckets in the order of their first row — the order the
    per-row dictionary loop this replaces produced (the clustering's merge order depends on it).
    Grouping by the band's values themselves (a lexicographic sort of the rows), not a hash of
    them, so no two different bands ever share a bucket. Vectorised: the per-row loop was most of
    the driver's serial clustering time."""
    n = len(chunk)
    if n < 2:
        return []
    order = np.lexsort(chunk.T[::-1])  # stable: equal rows keep row order
    s = chunk[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = (s[1:] != s[:-1]).any(axis=1)
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, n))
    multi = np.flatnonzero(sizes > 1)
    groups = [order[starts[g]:starts[g] + sizes[g]].tolist() for g in multi]
    groups.sort(key=lambda m: m[0])
    return groups


class MinHashDedup(GlobalStep):
    name = "minhash_dedup"

    def __init__(self, config: MinHashDedupConfig | None = None):
        self.config = config or MinHashDedupConfig()
        self.duplicate_of: dict[str, str] = {}

    def cluster(self, ids: list[str], sigs: np.ndarray, ents: list[frozenset[str]],
                keys: list[str] | None = None, heads: list[frozenset[str]] | None = None) -> dict[str, str]:
        """LSH bucketing + verification over precomputed signatures (rows in priority order);
        ``keys``: each document's identity key ('' when it is about no entity); ``heads``: its
        title headings (``identity.title_headings``; none: no title guard)."""
        c = self.config
        rows = c.num_perm // c.bands
        items = ids
        ents = list(ents)
        about = [frozenset({k}) if k else frozenset() for k in (keys or [""] * len(ids))]
        heads = list(heads) if heads is not None and c.title_guard else [frozenset()] * len(ids)
        parent = list(range(len(items)))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        checked: set[tuple[int, int]] = set()
        width = sigs.shape[1] if sigs.ndim == 2 and sigs.shape[1] else 1
        for band in range(c.bands):
            for members in _band_buckets(sigs[:, band * rows:(band + 1) * rows]):
                # Small buckets: compare all pairs; huge ones (boilerplate): each against the head.
                for jj in range(1, len(members)):
                    for ii in (range(jj) if len(members) <= 50 else (0,)):
                        i, j = members[ii], members[jj]
                        if (i, j) in checked or find(i) == find(j):
                            continue
                        checked.add((i, j))
                        if np.count_nonzero(sigs[i] == sigs[j]) / width < c.threshold:  # = mean(equal)
                            continue
                        ri, rj = find(i), find(j)
                        # Guard against whole clusters, not pairs: otherwise CWE-79 ~ X ~ CWE-80
                        # would chain two template pages together through a third document.
                        if c.entity_guard and (not entities_compatible(ents[ri], ents[rj])
                                               or (about[ri] and about[rj] and not about[ri] & about[rj])):
                            continue
                        if heads[ri] and heads[rj] and not heads[ri] & heads[rj]:
                            continue
                        lo, hi = min(ri, rj), max(ri, rj)
                        parent[hi] = lo  # the earlier document stays the root
                        ents[lo] = ents[lo] | ents[hi]
                        about[lo] = about[lo] | about[hi]
                        heads[lo] = heads[lo] | heads[hi]
        out: dict[str, str] = {}
        for i in range(len(items)):
            r = find(i)
            if r != i:
                out[items[i]] = items[r]
        return out

    def fit(self, ctx: GlobalContext) -> None:
        # Signatures in parallel (one task per partition); bucketing and clustering, which need
        # every signature, on the driver (128 uint64 per document).
        ids: list[str] = []
        sigs: list[np.ndarray] = []
        ents: list[frozenset[str]] = []
        keys: list[str] = []
        heads: list[frozenset[str]] = []
        for part_ids, part_sigs, part_ents, part_keys, part_heads in ctx.map_partitions(partition_signatures,
                                                                                      self.config):
            ids += part_ids
            sigs.append(part_sigs)
            ents += part_ents
            keys += part_keys
            heads += part_heads
        allsigs = np.concatenate(sigs) if sigs else np.zeros((0, self.config.num_perm), dtype=np.uint64)
        (ctx.state_dir / "near_duplicates.json").write_text(json.dumps(self.cluster(ids, allsigs, ents, keys, heads)))

    def load(self, state_dir: Path) -> None:
        self.duplicate_of = json.loads((Path(state_dir) / "near_duplicates.json").read_text())

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        return drop_marked(docs, self.duplicate_of, self.name, "dedup:near")
