"""Hybrid search: BM25 over records and passages (FTS5) + dense cosine, fused with RRF.

Lanes, each ranking ids (all records sharing an id count as one result):
- ``id``: ids written in the query (``T1059.001``, ``CVE-2024-3400``) that the KB holds;
- ``bm25``: FTS5 ``bm25()`` over record name (x10), ids/aliases (x5) and description (x1);
- ``passages``: FTS5 over passages (procedure examples, observed examples...), crediting the
  record each passage describes;
- ``dense``: cosine between the query embedding and the persisted record vectors.

Reciprocal rank fusion: ``score(id) = sum_lanes weight / (RRF_K + rank)``; no score
calibration needed between BM25 and cosine. The query embedder is loaded once per
``Searcher`` and kept warm.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Collection, Iterable

import numpy as np

from secfoundry.kb import ids as idmod
from secfoundry.kb.dense import DenseIndex, Embedder
from secfoundry.kb.store import Store

RRF_K = 60
# Passages carry the most specific evidence (another procedure example of the same technique,
# an observed example of the same CWE): weight 2. Chosen on a 400-sentence / 300-CVE sample
# (equal weights: 0.89 / 0.717 recall@10; passages x2: 0.918 / 0.727).
LANE_WEIGHTS = {"id": 10.0, "bm25": 1.0, "passages": 2.0, "dense": 1.0}
PASSAGE_VOTE_K = 5  # a record's passage-lane score: sum of 1 / (PASSAGE_VOTE_K + rank) over its passages
CANDIDATES = 100  # per lane, before fusion
# Query terms in more than this share of a table's rows can be dropped from its BM25 query
# (faster on long queries). Off by default: at 0.05 it saved ~25% CPU but cost 6 points of
# passage-lane recall on procedure sentences (fused recall unchanged).
MAX_DF = 1.0

# User-facing type names -> record types (records.py), so `--type cwe` works.
TYPE_ALIASES = {
    "technique": "technique", "techniques": "technique", "ttp": "technique", "sub-technique": "technique",
    "tactic": "tactic", "group": "group", "actor": "group", "software": "software", "malware": "software",
    "tool": "software", "mitigation": "mitigation", "campaign": "campaign", "data-source": "data-source",
    "asset": "asset", "detection": "detection-strategy", "detection-strategy": "detection-strategy",
    "analytic": "detection-strategy", "weakness": "weakness", "cwe": "weakness", "cwe-category": "cwe-category",
    "category": "cwe-category", "cwe-view": "cwe-view", "view": "cwe-view", "attack-pattern": "attack-pattern",
    "capec": "attack-pattern", "vulnerability": "vulnerability", "cve": "vulnerability", "kev": "vulnerability",
    "advisory": "advisory", "ghsa": "advisory", "osv": "advisory", "sigma": "sigma-rule", "sigma-rule": "sigma-rule",
    "rule": "sigma-rule", "atomic": "atomic-test", "atomic-test": "atomic-test", "test": "atomic-test",
    "cheatsheet": "cheatsheet", "owasp": "cheatsheet", "d3fend": "d3fend-technique",
    "d3fend-technique": "d3fend-technique", "defense": "d3fend-technique", "control": "control",
    "nist": "control", "compliance-rule": "compliance-rule", "compliance": "compliance-rule", "mapping": "mapping",
}

_STOP = frozenset("""a an and are as at be been by can could did do does for from had has have how i if in into is it
its of on or that the their them then there these they this those to was were what when where which who will with
would via using used use uses also such other than may might not no its our your we you he she his her after before
during while""".split())
_TOKEN = re.compile(r"[A-Za-z0-9]+")


def resolve_types(type_: str | Iterable[str] | None) -> list[str] | None:
    """``"technique,cwe"`` / ``["cwe"]`` -> record types; None means no filter."""
    if type_ is None:
        return None
    items = type_.split(",") if isinstance(type_, str) else list(type_)
    out = [TYPE_ALIASES.get(t.strip().lower(), t.strip().lower()) for t in items if t and t.strip()]
    return list(dict.fromkeys(out)) or None


def query_terms(text: str, max_terms: int = 64) -> list[str]:
    terms: dict[str, None] = {}
    for tok in _TOKEN.findall(text.lower()):
        if len(tok) > 1 and tok not in _STOP:
            terms.setdefault(tok, None)
        if len(terms) >= max_terms:
            break
    return list(terms)


def fts_query(text: str | list[str], max_terms: int = 64) -> str:
    """Free text (or terms) -> an FTS5 OR query of quoted terms (no FTS syntax leaks through)."""
    terms = query_terms(text, max_terms) if isinstance(text, str) else text
    return " OR ".join(f'"{t}"' for t in terms)


class _Exclusion:
    """(via-or-ref, target) pairs to hold out; target None matches any target."""

    def __init__(self, pairs: Collection[tuple[str, str | None]]):
        self.pairs = set(pairs)
        self.vias = {v for v, _ in self.pairs}

    def hit(self, via: str, target: str) -> bool:
        return (via, target) in self.pairs or (via, None) in self.pairs


@dataclass
class Hit:
    id: str
    type: str
    name: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)  # lane -> 1-based rank
    snippet: str = ""
    evidence: str = ""  # the passage that matched, when one did (e.g. a procedure example)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Searcher:
    def __init__(self, store: Store, dense: DenseIndex | None = None, embedder: Embedder | None = None):
        self.store = store
        self.dense = dense if dense is not None and len(dense) else None
        self.embedder = embedder
        self._catalog: dict[str, tuple[str, str]] | None = None
        self._df: dict[tuple[str, str], int] = {}
        self._rows: dict[str, int] = {}
        self.max_df = MAX_DF

    @property
    def catalog(self) -> dict[str, tuple[str, str]]:
        """id -> (type, name), the current record preferred; loaded once."""
        if self._catalog is None:
            cat: dict[str, tuple[str, str]] = {}
            for r in self.store.conn.execute(
                    "SELECT id, type, name FROM records ORDER BY revoked DESC, deprecated DESC, rid"):
                cat[r[0]] = (r[1] or "", r[2] or "")
            self._catalog = cat
        return self._catalog

    def _match(self, terms: list[str], table: str) -> str:
        """The FTS query for ``table``: terms too common there (df > max_df) are dropped — they
        barely move BM25 but make FTS5 score most of the table. The 3 rarest always stay."""
        if not terms or self.max_df >= 1:
            return fts_query(terms)
        if table not in self._rows:
            self._rows[table] = int(self.store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        limit = self.max_df * max(self._rows[table], 1)
        dfs = []
        for t in terms:
            key = (table, t)
            if key not in self._df:
                # Counting stops just past the limit: only "rare enough?" matters, and a full
                # count(*) of a very common term walks its whole posting list (the p99 cost).
                self._df[key] = int(self.store.conn.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {table} MATCH ? LIMIT ?)",
                    (f'"{t}"', int(limit) + 1)).fetchone()[0])
            dfs.append((self._df[key], t))
        keep = {t for df, t in dfs if 0 < df <= limit} | {t for df, t in sorted(dfs)[:3] if df > 0}
        return fts_query([t for t in terms if t in keep])

    def embed_query(self, q: str) -> np.ndarray | None:
        if self.dense is None or self.embedder is None:
            return None
        return self.embedder.encode([q])[0]

    # -- lanes ----------------------------------------------------------------------------------------
    def _lane_ids(self, q: str, types: list[str] | None) -> list[str]:
        out = []
        for i in idmod.extract_ids(q):
            t = self.catalog.get(i)
            if t and (types is None or t[0] in types):
                out.append(i)
        return out

    def _lane_bm25(self, match: str, types: list[str] | None, n: int) -> list[str]:
        sql = ("SELECT r.id FROM records_fts JOIN records r ON r.rid = records_fts.rowid "
               "WHERE records_fts MATCH ?")
        args: list[Any] = [match]
        if types:
            sql += f" AND r.type IN ({','.join('?' * len(types))})"
            args += types
        sql += " ORDER BY bm25(records_fts, 10.0, 5.0, 1.0) LIMIT ?"
        args.append(n * 3)
        return list(dict.fromkeys(r[0] for r in self.store.conn.execute(sql, args)))[:n]

    def _lane_passages(self, match: str, types: list[str] | None, n: int,
                       exclude: "_Exclusion | None") -> tuple[list[str], dict[str, str]]:
        """Records ranked by the votes of their matching passages (several procedure examples
        of one technique outrank a single lucky match), with the best passage as evidence."""
        sql = ("SELECT p.target, p.via, p.ref, p.text FROM passages_fts JOIN passages p ON p.pid = passages_fts.rowid "
               "WHERE passages_fts MATCH ? ORDER BY bm25(passages_fts) LIMIT ?")
        votes: dict[str, float] = {}
        evidence: dict[str, str] = {}
        rank = 0
        for target, via, ref, text in self.store.conn.execute(sql, (match, n * 5)):
            if exclude and (exclude.hit(via, target) or exclude.hit(ref, target)):
                continue
            t = self.catalog.get(target)
            if t is None or (types is not None and t[0] not in types):
                continue
            rank += 1
            votes[target] = votes.get(target, 0.0) + 1.0 / (PASSAGE_VOTE_K + rank)
            evidence.setdefault(target, text)
        ranked = sorted(votes, key=lambda i: (-votes[i], i))[:n]
        return ranked, {i: evidence[i] for i in ranked}

    def _lane_dense(self, qvec: np.ndarray, types: list[str] | None, n: int,
                    exclude: "_Exclusion | None") -> list[str]:
        assert self.dense is not None
        rows = None
        if exclude:
            ex = [i for i in self.dense.passage_rows_via(exclude.vias) if exclude.hit(self.dense.entries[i].via,
                                                                                   self.dense.ids[i])]
            rows = np.array(ex, dtype=np.int64) if ex else None
        out: dict[str, None] = {}
        for row, _ in self.dense.top(qvec, n * 4, types, rows):
            out.setdefault(self.dense.ids[row], None)
            if len(out) >= n:
                break
        return list(out)

    # -- fusion ---------------------------------------------------------------------------------------
    def rankings(self, q: str, type: str | Iterable[str] | None = None, *,
                 lanes: Iterable[str] = ("id", "bm25", "passages", "dense"),
                 exclude: Collection[tuple[str, str | None]] | None = None, qvec: np.ndarray | None = None,
                 candidates: int = CANDIDATES) -> tuple[dict[str, list[str]], dict[str, str]]:
        """Each lane's ranked ids (and matched passages), before fusion."""
        types = resolve_types(type)
        lanes = set(lanes)
        ex = _Exclusion(exclude) if exclude else None
        ranked: dict[str, list[str]] = {}
        evidence: dict[str, str] = {}
        if "id" in lanes:
            ranked["id"] = self._lane_ids(q, types)
        terms = query_terms(q)
        if terms and "bm25" in lanes:
            match = self._match(terms, "records_fts")
            ranked["bm25"] = self._lane_bm25(match, types, candidates) if match else []
        if terms and "passages" in lanes:
            match = self._match(terms, "passages_fts")
            ranked["passages"], evidence = self._lane_passages(match, types, candidates, ex) if match else ([], {})
        if "dense" in lanes and self.dense is not None:
            if qvec is None:
                qvec = self.embed_query(q)
            if qvec is not None:
                ranked["dense"] = self._lane_dense(qvec, types, candidates, ex)
        return ranked, evidence

    @staticmethod
    def fuse(ranked: dict[str, list[str]], k: int, lanes: Iterable[str] | None = None
             ) -> list[tuple[str, float, dict[str, int]]]:
        """Reciprocal rank fusion of lane rankings -> [(id, score, {lane: rank})]."""
        use = set(lanes) if lanes is not None else set(ranked)
        scores: dict[str, float] = {}
        ranks: dict[str, dict[str, int]] = {}
        for lane, ids in ranked.items():
            if lane not in use:
                continue
            w = LANE_WEIGHTS.get(lane, 1.0)
            for r, i in enumerate(ids, 1):
                scores[i] = scores.get(i, 0.0) + w / (RRF_K + r)
                ranks.setdefault(i, {})[lane] = r
        top = sorted(scores, key=lambda i: (-scores[i], i))[:k]
        return [(i, scores[i], ranks[i]) for i in top]

    def search(self, q: str, type: str | Iterable[str] | None = None, k: int = 10, *,
               lanes: Iterable[str] = ("id", "bm25", "passages", "dense"),
               exclude: Collection[tuple[str, str | None]] | None = None, qvec: np.ndarray | None = None,
               candidates: int = CANDIDATES) -> list[Hit]:
        """Top-``k`` ids for ``q``.

        ``exclude``: (via, target) or (ref, target) pairs whose passages must not count; target
        None means any target. Benchmarks hold a query's own procedure example out this way.
        """
        ranked, evidence = self.rankings(q, type, lanes=lanes, exclude=exclude, qvec=qvec, candidates=candidates)
        hits = []
        for i, score, ranks in self.fuse(ranked, k):
            rtype, name = self.catalog.get(i, ("", ""))
            hits.append(Hit(id=i, type=rtype, name=name, score=round(score, 6), ranks=ranks,
                            evidence=evidence.get(i, "") if "passages" in ranks else ""))
        self._snippets(hits)
        return hits

    def _snippets(self, hits: list[Hit], width: int = 220) -> None:
        if not hits:
            return
        ids = [h.id for h in hits]
        rows = self.store.conn.execute(
            f"SELECT id, description FROM records WHERE id IN ({','.join('?' * len(ids))}) "
            "ORDER BY length(description)", ids).fetchall()
        desc = {r[0]: r[1] for r in rows if r[1]}
        from secfoundry.kb.text import clean

        for h in hits:
            text = clean(desc.get(h.id, ""))
            h.snippet = text if len(text) <= width else text[:width].rsplit(" ", 1)[0] + " ..."
