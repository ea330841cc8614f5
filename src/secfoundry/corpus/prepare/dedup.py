"""One global step for the three dedup passes: exact, then MinHash near-duplicates, then paragraphs.

``exact_dedup``, ``minhash_dedup`` and ``paragraph_dedup`` as separate recipe steps are three
phases: three full reads and writes of the corpus and the text normalised and tokenised three
times. ``dedup`` does the same work in one phase: one task per partition reads the text once and
computes the exact key, the MinHash signature and entity set, and the entity-salted paragraph
n-grams from one tokenisation; the driver then decides, in plan order,

1. exact duplicates (normalised text hash; the first document stays) — ``dedup:exact``;
2. near-duplicates among the rest (MinHash-LSH + the entity guard of ``dedup_minhash``) —
   ``dedup:near``. MinHash sees whole documents, before any paragraph is trimmed, so a mirrored
   copy with a date line and a few edited words is compared with its original as it is;
3. repeated paragraphs in the survivors (Bloom pass of ``dedup_paragraph``, with its entity
   guard) — trimmed, or ``dedup:paragraphs`` when nothing of the document's own is left (see
   ``dedup_paragraph``: a record's own field lists are never another document's repeat).

Reasons, ``duplicate_of`` and ``paragraphs_removed`` are the same as the single steps write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xxhash

from secfoundry.corpus.prepare.bloom import BloomFilter
from secfoundry.corpus.prepare.dedup_minhash import MinHashDedup, MinHashDedupConfig, MinHasher
from secfoundry.corpus.prepare.dedup_paragraph import (ParagraphDedupConfig, apply_paragraph_decisions, paragraph_salt,
                                                      partition_pass, read_identity_columns, split_paragraphs)
from secfoundry.corpus.prepare.identity import document_key, title_headings
from secfoundry.corpus.prepare.text import entities, ngram_hashes, normalize, words
from secfoundry.corpus.step import Dropped, GlobalContext, GlobalStep
from secfoundry.core.documents import Document


@dataclass
class DedupConfig:
    exact: bool = True
    near: bool = True
    paragraphs: bool = True
    # MinHash (see dedup_minhash.MinHashDedupConfig). Lower threshold than minhash_dedup's 0.75, with
    # 32 bands x 4 rows: crawled copies with ~3% of words edited plus date/share lines sit around
    # Jaccard 0.6-0.8; measured on 1,000 planted pairs: 97% merged, 0 distinct entities lost
    # (BENCHMARKS.md, "Corpus dedup quality"); the entity guard keeps template pages apart.
    shingle: int = 5
    num_perm: int = 128
    bands: int = 32
    threshold: float = 0.6
    entity_guard: bool = True  # both the MinHash cluster guard and the paragraph identity salt
    seed: int = 1
    # paragraphs (see dedup_paragraph.ParagraphDedupConfig)
    ngram: int = 13
    paragraph_threshold: float = 0.8
    min_words: int = 10
    min_own_words: int = 10
    error_rate: float = 1e-4
    own_fields: bool = True

    title_guard: bool = True  # MinHash: documents with disjoint title headings never merge

    def minhash(self) -> MinHashDedupConfig:
        return MinHashDedupConfig(self.shingle, self.num_perm, self.bands, self.threshold, self.entity_guard, self.seed,
                                  self.title_guard)

    def paragraph(self) -> ParagraphDedupConfig:
        return ParagraphDedupConfig(ngram=self.ngram, threshold=self.paragraph_threshold, min_words=self.min_words,
                                    min_own_words=self.min_own_words, error_rate=self.error_rate,
                                    entity_guard=self.entity_guard, own_fields=self.own_fields)


def partition_features(path: str, c: DedupConfig) -> dict:
    """Everything the three passes need from one partition, from one read and one tokenisation."""
    ids, texts, titles, srcs = read_identity_columns(path)
    mh = MinHasher(c.num_perm, c.seed)
    keys = np.zeros(len(ids), dtype=np.uint64)
    sigs = np.empty((len(ids), c.num_perm), dtype=np.uint64)
    ents: list[frozenset[str]] = []
    about: list[str] = []
    heads: list[frozenset[str]] = []
    text_len, n_words, n_chars, chunks = [], [], [], []
    para_off, hash_off = [0], [0]
    for i, (text, title, src) in enumerate(zip(texts, titles, srcs)):
        text = text or ""
        text_len.append(len(text))
        if c.exact:
            keys[i] = xxhash.xxh64_intdigest(normalize(text).encode("utf-8", "surrogatepass"))
        doc_ents = entities(text) if (c.entity_guard and (c.near or c.paragraphs)) else frozenset()
        ents.append(doc_ents if c.near else frozenset())
        key = document_key(text, title or "", ids[i], src or "") if c.entity_guard else ""
        about.append(key)
        heads.append(title_headings(text) if c.near else frozenset())
        doc_tokens: list[str] = []
        for p in split_paragraphs(text):
            toks = words(p)
            doc_tokens += toks
            if c.paragraphs:
                pe = entities(p) if doc_ents else frozenset()
                h = ngram_hashes(toks, c.ngram, salt=paragraph_salt(p, pe, key, ids[i], c.own_fields))
                chunks.append(h)
                hash_off.append(hash_off[-1] + len(h))
                n_words.append(len(toks))
                n_chars.append(len(p))
        para_off.append(len(n_words))
        if c.near:
            sigs[i] = mh.signature(ngram_hashes(doc_tokens, c.shingle))
    return {"ids": ids, "keys": keys, "sigs": sigs if c.near else None, "ents": ents, "about": about, "heads": heads,
            "text_len": text_len,
            "words": np.asarray(n_words, dtype=np.int64), "chars": np.asarray(n_chars, dtype=np.int64),
            "para_off": para_off, "hash_off": hash_off,
            "hashes": np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint64)}


def subset_paragraphs(part: dict, keep: np.ndarray) -> dict:
    """The paragraph arrays of ``part`` restricted to the documents where ``keep`` is true."""
    p_off = np.asarray(part["para_off"], dtype=np.int64)
    h_off = np.asarray(part["hash_off"], dtype=np.int64)
    docs = np.flatnonzero(keep)
    paras = np.concatenate([np.arange(p_off[d], p_off[d + 1]) for d in docs]) if len(docs) else np.zeros(0, np.int64)
    paras = paras.astype(np.int64)
    lens = h_off[paras + 1] - h_off[paras] if len(paras) else np.zeros(0, np.int64)
    hidx = np.concatenate([np.arange(h_off[q], h_off[q + 1]) for q in paras]) if len(paras) else np.zeros(0, np.int64)
    counts = p_off[docs + 1] - p_off[docs]
    return {"ids": [part["ids"][d] for d in docs], "text_len": [part["text_len"][d] for d in docs],
            "words": part["words"][paras], "chars": part["chars"][paras],
            "para_off": np.concatenate([[0], np.cumsum(counts)]).tolist(),
            "hash_off": np.concatenate([[0], np.cumsum(lens)]).tolist(),
            "hashes": part["hashes"][hidx.astype(np.int64)] if len(hidx) else np.zeros(0, dtype=np.uint64)}


class Dedup(GlobalStep):
    name = "dedup"

    def __init__(self, config: DedupConfig | None = None):
        self.config = config or DedupConfig()
        self.exact_of: dict[str, str] = {}
        self.near_of: dict[str, str] = {}
        self.removed: dict[str, list[int]] = {}
        self.drop: set[str] = set()

    def fit(self, ctx: GlobalContext) -> None:
        c = self.config
        parts = list(ctx.map_partitions(partition_features, c))
        # 1. exact, in plan order
        first: dict[int, str] = {}
        exact_of: dict[str, str] = {}
        if c.exact:
            for part in parts:
                for doc_id, k in zip(part["ids"], part["keys"].tolist()):
                    keeper = first.setdefault(k, doc_id)
                    if keeper != doc_id:
                        exact_of[doc_id] = keeper
        # 2. near-duplicates among the documents exact dedup kept
        near_of: dict[str, str] = {}
        if c.near:
            ids, sigs, ents, about, heads = [], [], [], [], []
            for part in parts:
                keep = np.array([i not in exact_of for i in part["ids"]], dtype=bool)
                ids += [i for i, k in zip(part["ids"], keep) if k]
                sigs.append(part["sigs"][keep])
                ents += [e for e, k in zip(part["ents"], keep) if k]
                about += [a for a, k in zip(part["about"], keep) if k]
                heads += [h for h, k in zip(part["heads"], keep) if k]
            allsigs = np.concatenate(sigs) if sigs else np.zeros((0, c.num_perm), dtype=np.uint64)
            near_of = MinHashDedup(c.minhash()).cluster(ids, allsigs, ents, about, heads)
        # 3. paragraphs of the survivors, in plan order
        removed: dict[str, list[int]] = {}
        drop: list[str] = []
        if c.paragraphs:
            pc = c.paragraph()
            total_chars = sum(int(sum(p["text_len"])) for p in parts)
            bloom = BloomFilter(capacity=max(1000, total_chars // 5), error_rate=pc.error_rate)
            for part in parts:
                keep = np.array([i not in exact_of and i not in near_of for i in part["ids"]], dtype=bool)
                sub = part if keep.all() else subset_paragraphs(part, keep)
                r, d = partition_pass(bloom, sub, pc)
                removed.update(r)
                drop += d
        (ctx.state_dir / "dedup.json").write_text(json.dumps(
            {"exact": exact_of, "near": near_of, "removed": removed, "drop": drop}))

    def load(self, state_dir: Path) -> None:
        st = json.loads((Path(state_dir) / "dedup.json").read_text())
        self.exact_of, self.near_of = st["exact"], st["near"]
        self.removed, self.drop = st["removed"], set(st["drop"])

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        rest, dropped = [], []
        for d in docs:
            if d.id in self.exact_of or d.id in self.near_of:
                exact = d.id in self.exact_of
                d.metadata["duplicate_of"] = self.exact_of[d.id] if exact else self.near_of[d.id]
                dropped.append(Dropped(d, self.name, "dedup:exact" if exact else "dedup:near"))
            else:
                rest.append(d)
        kept, para_dropped = apply_paragraph_decisions(rest, self.removed, self.drop, self.name)
        return kept, dropped + para_dropped
