"""Dedup judged by what a trainer cares about: redundant text left, distinct entities lost.

* **Redundant text left** (:func:`redundancy`): of every word n-gram ("shingle") of every kept
  document, the share that also occurs in *another* kept document. A corpus with no duplicated
  text scores 0; two identical documents score 1. Counted once per document (a document's own
  repeated lines are not cross-document redundancy), reported overall and per source.
* **Distinct entities lost** (:func:`entities_lost`): documents about an entity (a CVE, CWE,
  ATT&CK technique, GHSA/OSV/RUSTSEC advisory, NIST control ...; see ``identity.py``) that a
  dedup step removed, or *emptied* (kept with less than ``emptied_below`` of the words of its
  distinct paragraphs: a page that repeats its own paragraphs is not emptied by keeping one copy
  of each), while no kept document is about that entity. Removing an OSV record whose GHSA mirror (same CVE) stays
  loses nothing; removing CVE-2018-2711 because its paragraphs follow Oracle's template loses
  an entity. Target: 0.
* **Pairs** (:func:`pair_stats`): for planted or known duplicate pairs, how many have both
  copies still in the output and the word 5-gram Jaccard of the surviving copies.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from secfoundry.corpus.prepare.identity import document_key
from secfoundry.corpus.prepare.text import ngram_hashes, words
from secfoundry.core.documents import Document


@dataclass
class Redundancy:
    shingles: int = 0  # (document, distinct shingle) pairs over the kept documents
    redundant: int = 0  # of those, shingles that also occur in another kept document
    by_source: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.redundant / self.shingles if self.shingles else 0.0


def redundancy(docs: Iterable[Document], n: int = 13) -> Redundancy:
    """Share of the kept documents' distinct word ``n``-grams that another kept document also has."""
    per_doc: list[np.ndarray] = []
    sources: list[str] = []
    for d in docs:
        toks = words(d.text or "")
        if len(toks) < n:
            per_doc.append(np.zeros(0, dtype=np.uint64))
        else:
            per_doc.append(np.unique(ngram_hashes(toks, n)))
        sources.append(d.source)
    if not per_doc:
        return Redundancy()
    allh = np.concatenate(per_doc)
    if allh.size == 0:
        return Redundancy()
    # each hash appears at most once per document, so its count is the number of documents
    uniq, inv, counts = np.unique(allh, return_inverse=True, return_counts=True)
    shared = counts[inv.reshape(-1)] > 1
    lens = np.array([len(h) for h in per_doc], dtype=np.int64)
    doc_of = np.repeat(np.arange(len(per_doc)), lens)
    red_per_doc = np.bincount(doc_of, weights=shared, minlength=len(per_doc)).astype(np.int64)
    by_src: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s, t, r in zip(sources, lens.tolist(), red_per_doc.tolist()):
        by_src[s][0] += t
        by_src[s][1] += r
    return Redundancy(int(lens.sum()), int(red_per_doc.sum()), {s: (v[0], v[1]) for s, v in sorted(by_src.items())})


@dataclass
class EntityLoss:
    entity_docs: int = 0  # input documents about an entity
    removed: int = 0  # of those, removed by the step(s)
    emptied: int = 0  # of those, kept with less than `emptied_below` of their words
    # removed documents whose entity is kept only through another document about it (an alias twin)
    through_twin: list[tuple[str, str, str]] = field(default_factory=list)  # (doc id, source, entity key)
    lost: list[tuple[str, str, str]] = field(default_factory=list)  # (doc id, entity key, how)
    by_source: Counter = field(default_factory=Counter)  # lost entities per source

    @property
    def n_lost(self) -> int:
        return len(self.lost)


def distinct_words(text: str) -> int:
    """Words of a text's distinct paragraphs (a paragraph repeated verbatim counts once)."""
    from secfoundry.corpus.prepare.dedup_paragraph import split_paragraphs

    seen: set[str] = set()
    n = 0
    for p in split_paragraphs(text):
        k = " ".join(p.split())
        if k not in seen:
            seen.add(k)
            n += len(words(p))
    return n


def entities_lost(before: Iterable[Document], after: Iterable[Document], emptied_below: float = 0.25) -> EntityLoss:
    """Entities whose every document was removed or emptied between ``before`` and ``after``."""
    before = list(before)
    after_by_id = {d.id: d for d in after}
    keys_kept: set[str] = set()
    out = EntityLoss()
    gone: list[tuple[Document, str, str]] = []
    for d in before:
        key = document_key(d.text, d.title or "", d.id, d.source)
        a = after_by_id.get(d.id)
        if a is None:
            how = "removed"
        else:
            n0, n1 = distinct_words(d.text or ""), len(words(a.text or ""))
            how = "emptied" if n0 and n1 < emptied_below * n0 else ""
        if not how:
            keys_kept |= {key, document_key(a.text, a.title or "", a.id, a.source)}
            continue
        if key:
            gone.append((d, key, how))
    for d in before:
        if document_key(d.text, d.title or "", d.id, d.source):
            out.entity_docs += 1
    for d, key, how in gone:
        if how == "removed":
            out.removed += 1
        else:
            out.emptied += 1
        if key in keys_kept:
            if how == "removed" and not key.startswith("record:"):
                out.through_twin.append((d.id, d.source, key))
        else:
            out.lost.append((d.id, key, how))
            out.by_source[d.source] += 1
            keys_kept.add(key)  # one entity counts once
    return out


def jaccard(a: str, b: str, n: int = 5) -> float:
    ha, hb = set(ngram_hashes(words(a), n).tolist()), set(ngram_hashes(words(b), n).tolist())
    return len(ha & hb) / len(ha | hb) if ha or hb else 1.0


@dataclass
class PairStats:
    pairs: int = 0
    both_kept: int = 0
    jaccards: list[float] = field(default_factory=list)  # of the pairs with both copies kept

    @property
    def median_jaccard(self) -> float:
        return float(np.median(self.jaccards)) if self.jaccards else 0.0


def pair_stats(pairs: Iterable[tuple[str, str]], kept: Iterable[Document], n: int = 5) -> PairStats:
    by_id = {d.id: d for d in kept}
    out = PairStats()
    for a, b in pairs:
        out.pairs += 1
        if a in by_id and b in by_id:
            out.both_kept += 1
            out.jaccards.append(jaccard(by_id[a].text, by_id[b].text, n))
    return out
