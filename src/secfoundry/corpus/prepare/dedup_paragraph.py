"""Paragraph-level n-gram Bloom-filter deduplication (as the Foundation-Sec report describes).

Documents are visited in plan order. A paragraph whose word n-grams are (almost) all already in
the Bloom filter (earlier partitions) or earlier in its own partition is a repeat and is removed
from the document; the kept paragraphs' n-grams are then added.
Security-aware details:

* n-grams are salted with the paragraph's entity set (CVE/CWE/ATT&CK/... ids), so a templated
  paragraph that differs only in its id is *new* text, while a mirrored copy is a repeat;
* **entity guard**: in a document about an entity (ids in its title / first heading / alias
  line, see ``identity.py``) every paragraph is also salted with the document's canonical id, so
  its paragraphs can only be repeats of paragraphs of documents about the *same* entity (an OSV
  record and its GHSA mirror, both keyed by their CVE). Oracle advisories and kernel CVEs whose
  paragraphs follow one template are never trimmed or emptied by other advisories' text;
* **a record's own facts are its own**: in a document about an entity, a *field paragraph* (every
  line a list item or a table row: aliases, affected packages and versions, references, mapping
  tables) is also salted with the document's own id, so it is a repeat only of the same
  document's earlier text. Alias twins (``PYSEC-2021-467`` for ``tensorflow-cpu`` and its
  ``tensorflow``/``tensorflow-gpu``/GHSA siblings, all keyed ``CVE-2021-29539``) lose the shared
  description but keep their own id, aliases, affected packages and references;
* a document is dropped whole only when **nothing of its own is left**: fewer than
  ``min_own_words`` (10, about one sentence) words in paragraphs that are not repeats — long or
  short: an id heading, an alias line, a ``Detects: T1590.005`` stub and its own field lists
  count; shared headings ("## References") and boilerplate stubs seen elsewhere do not. Otherwise
  the repeated paragraphs are trimmed and the remainder stays (the old rule, "< 200 characters
  left and < half the document", dropped the OSV alias twins whose shared description was most
  of their text, and kept a 200-character remainder of pure boilerplate);
* short paragraphs (headings, "## Related", list stubs) are never removed — removing shared
  boilerplate headings only breaks document structure;
* fenced code blocks are one paragraph, never split at blank lines inside them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from secfoundry.corpus.step import Dropped, GlobalContext, GlobalStep
from secfoundry.corpus.prepare.bloom import BloomFilter
from secfoundry.corpus.prepare.identity import document_key
from secfoundry.corpus.prepare.text import entities, entity_salt, ngram_hashes, words
from secfoundry.core.documents import Document

_FENCE = re.compile(r"^\s*(```|~~~)")
_FIELD_LINE = re.compile(r"^\s*(?:[-*+]\s|\d{1,3}[.)]\s|\|)")


@dataclass
class ParagraphDedupConfig:
    ngram: int = 13
    threshold: float = 0.8  # fraction of a paragraph's n-grams already seen that makes it a repeat
    min_words: int = 10  # shorter paragraphs are never removed
    min_own_words: int = 10  # dropped whole only when fewer words than this are in non-repeated paragraphs
    error_rate: float = 1e-4
    entity_guard: bool = True  # salt every paragraph of a document about an entity with its id
    own_fields: bool = True  # field paragraphs (lists, tables) of an entity document repeat only its own text


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, keeping fenced code blocks whole."""
    blocks: list[str] = []
    cur: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and not line.strip():
            if cur:
                blocks.append("\n".join(cur))
                cur = []
            continue
        cur.append(line)
    if cur:
        blocks.append("\n".join(cur))
    return blocks


def field_paragraph(p: str) -> bool:
    """A record's facts: every non-empty line is a list item or a table row."""
    lines = [ln for ln in p.split("\n") if ln.strip()]
    return bool(lines) and all(_FIELD_LINE.match(ln) for ln in lines)


def paragraph_salt(p: str, p_ents: frozenset[str], key: str, doc_id: str, own_fields: bool = True) -> int:
    """The salt of a paragraph's n-grams: its own ids, the document's identity key (entity guard)
    and, for a field paragraph of a document about an entity, the document's own id."""
    if not key:
        return entity_salt(p_ents)
    s = p_ents | {key}
    if own_fields and field_paragraph(p):
        s = s | {"own:" + doc_id}
    return entity_salt(s)


def trim_paragraphs(doc, gone: list[int] | None) -> None:
    """Remove the paragraphs numbered ``gone`` (indices into ``split_paragraphs``) from ``doc``."""
    if not gone:
        return
    skip = set(gone)
    doc.text = "\n\n".join(p for i, p in enumerate(split_paragraphs(doc.text)) if i not in skip) + "\n"
    doc.metadata["paragraphs_removed"] = len(skip)

def apply_paragraph_decisions(docs: list, removed: dict[str, list[int]], drop: set[str],
                              step: str) -> tuple[list, list]:
    """Drop the documents in ``drop`` and trim the paragraphs ``removed`` names from the rest."""
    kept, dropped = [], []
    for d in docs:
        if d.id in drop:
            dropped.append(Dropped(d, step, "dedup:paragraphs"))
            continue
        trim_paragraphs(d, removed.get(d.id))
        kept.append(d)
    return kept, dropped


def read_identity_columns(path: str) -> tuple[list, list, list, list]:
    """One partition's ids, texts, titles and sources (empty strings where a column is absent)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    cols = ["id", "text"] + [c for c in ("title", "source") if c in names]
    table = pq.read_table(path, columns=cols)
    ids = table.column("id").to_pylist()
    titles = table.column("title").to_pylist() if "title" in cols else [""] * len(ids)
    srcs = table.column("source").to_pylist() if "source" in cols else [""] * len(ids)
    return ids, table.column("text").to_pylist(), titles, srcs


def paragraph_hashes(path: str, ngram: int, entity_guard: bool = True, own_fields: bool = True) -> dict:
    """Per paragraph of every document in one partition: its entity-salted n-gram hashes (one
    flat array with offsets, so a task returns a few numpy arrays, not 100k small objects),
    word count and length."""
    ids, texts, titles, srcs = read_identity_columns(path)
    text_len, n_words, n_chars, chunks = [], [], [], []
    para_off, hash_off = [0], [0]
    for doc_id, text, title, src in zip(ids, texts, titles, srcs):
        text = text or ""
        text_len.append(len(text))
        key = document_key(text, title or "", doc_id, src or "") if entity_guard else ""
        for p in split_paragraphs(text):
            toks = words(p)
            h = ngram_hashes(toks, ngram, salt=paragraph_salt(p, entities(p), key, doc_id, own_fields))
            chunks.append(h)
            hash_off.append(hash_off[-1] + len(h))
            n_words.append(len(toks))
            n_chars.append(len(p))
        para_off.append(len(n_words))
    return {"ids": ids, "text_len": text_len, "words": np.asarray(n_words, dtype=np.int64),
            "chars": np.asarray(n_chars, dtype=np.int64), "para_off": para_off, "hash_off": hash_off,
            "hashes": np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint64)}


def partition_pass(bloom: BloomFilter, part: dict, c: ParagraphDedupConfig) -> tuple[dict[str, list[int]], list[str]]:
    """Decide every paragraph of one partition (the output of :func:`paragraph_hashes`), then add
    the kept paragraphs' n-grams to the filter.

    An n-gram counts as seen when the filter has it (earlier partitions) or it occurs earlier in
    this partition (exact, via first occurrences). That is the document-by-document pass done
    in a handful of array operations per partition instead of a few per paragraph; it differs
    only in that n-grams of an earlier *removed* paragraph also count as seen (a removed
    paragraph was already >= ``threshold`` seen). Returns (doc id -> removed paragraph
    indices, ids of documents to drop)."""
    hashes = part["hashes"]
    h_off = np.asarray(part["hash_off"], dtype=np.int64)
    p_off = np.asarray(part["para_off"], dtype=np.int64)
    lens = np.diff(h_off)
    n_para = len(lens)
    if n_para == 0:
        return {}, []
    starts = h_off[:-1]
    seen = bloom.contains(hashes)
    if hashes.size:
        _, first, inv = np.unique(hashes, return_index=True, return_inverse=True)
        seen |= first[inv.reshape(-1)] < np.repeat(starts, lens)
    nonempty = lens > 0
    counts = np.zeros(n_para, dtype=np.int64)
    if nonempty.any():
        counts[nonempty] = np.add.reduceat(seen.astype(np.int64), starts[nonempty])
    repeat = nonempty & (counts >= c.threshold * np.maximum(lens, 1))
    gone = repeat & (part["words"] >= c.min_words)
    bloom.add(hashes[np.repeat(~gone, lens)])

    doc_of = np.repeat(np.arange(len(p_off) - 1), np.diff(p_off))
    # a document's own text: its paragraphs, long or short, that are not repeats (an id heading,
    # an alias line, its own field lists); shared headings and boilerplate stubs do not count
    own_words = np.bincount(doc_of, weights=np.where(repeat, 0, part["words"]), minlength=len(p_off) - 1)
    removed: dict[str, list[int]] = {}
    drop: list[str] = []
    for d in np.unique(doc_of[gone]).tolist():
        idx = (np.flatnonzero(gone[p_off[d]:p_off[d + 1]])).tolist()
        if own_words[d] < c.min_own_words:  # nothing of its own left
            drop.append(part["ids"][d])
        else:
            removed[part["ids"][d]] = idx
    return removed, drop


class ParagraphDedup(GlobalStep):
    name = "paragraph_dedup"

    def __init__(self, config: ParagraphDedupConfig | None = None):
        self.config = config or ParagraphDedupConfig()
        self.removed: dict[str, list[int]] = {}
        self.drop: set[str] = set()

    def fit(self, ctx: GlobalContext) -> None:
        # Hashing is per paragraph and parallel (one task per partition); the Bloom pass that
        # decides what is a repeat is inherently serial and runs here, in plan order.
        c = self.config
        import pyarrow.compute as pc

        total_chars = 0  # ~5 characters per word: sizes the filter before any hashing
        for batch in ctx.iter_tables(columns=["text"]):
            total_chars += int(pc.sum(pc.utf8_length(batch.column("text"))).as_py() or 0)
        bloom = BloomFilter(capacity=max(1000, total_chars // 5), error_rate=c.error_rate)
        removed: dict[str, list[int]] = {}
        drop: list[str] = []
        for part in ctx.map_partitions(paragraph_hashes, c.ngram, c.entity_guard, c.own_fields):
            part_removed, part_drop = partition_pass(bloom, part, c)
            removed.update(part_removed)
            drop += part_drop
        (ctx.state_dir / "paragraphs.json").write_text(json.dumps({"removed": removed, "drop": drop}))

    def load(self, state_dir: Path) -> None:
        st = json.loads((Path(state_dir) / "paragraphs.json").read_text())
        self.removed, self.drop = st["removed"], set(st["drop"])

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        return apply_paragraph_decisions(docs, self.removed, self.drop, self.name)
