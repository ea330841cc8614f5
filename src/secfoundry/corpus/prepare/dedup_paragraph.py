"""Paragraph-level n-gram Bloom-filter deduplication (as the Foundation-Sec report describes).

Documents are visited in plan order. A paragraph whose word n-grams are (almost) all already in
the Bloom filter is a repeat and is removed from the document; otherwise its n-grams are added.
Security-aware details:

* n-grams are salted with the paragraph's entity set (CVE/CWE/ATT&CK/... ids), so a templated
  paragraph that differs only in its id is *new* text, while a mirrored copy is a repeat;
* short paragraphs (headings, "## Related", list stubs) are never removed — removing shared
  boilerplate headings only breaks document structure;
* fenced code blocks are one paragraph, never split at blank lines inside them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from secfoundry.corpus.engine.steps import Dropped, GlobalContext, GlobalStep
from secfoundry.corpus.prepare.bloom import BloomFilter
from secfoundry.corpus.prepare.text import entities, entity_salt, ngram_hashes, words
from secfoundry.documents import Document

_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass
class ParagraphDedupConfig:
    ngram: int = 13
    threshold: float = 0.8  # fraction of a paragraph's n-grams already seen that makes it a repeat
    min_words: int = 10  # shorter paragraphs are never removed
    min_keep_chars: int = 200  # a document left shorter than this (and < half its size) is dropped
    error_rate: float = 1e-4


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


class ParagraphDedup(GlobalStep):
    name = "paragraph_dedup"

    def __init__(self, config: ParagraphDedupConfig | None = None):
        self.config = config or ParagraphDedupConfig()
        self.removed: dict[str, list[int]] = {}
        self.drop: set[str] = set()

    def fit(self, ctx: GlobalContext) -> None:
        c = self.config
        total_words = 0
        for batch in ctx.iter_tables(columns=["text"]):
            total_words += sum(len(t or "") for t in batch.column("text").to_pylist()) // 5
        bloom = BloomFilter(capacity=max(1000, total_words), error_rate=c.error_rate)
        removed: dict[str, list[int]] = {}
        drop: list[str] = []
        for batch in ctx.iter_tables(columns=["id", "text"]):
            for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
                paras = split_paragraphs(text or "")
                gone, kept_chars = [], 0
                for i, p in enumerate(paras):
                    toks = words(p)
                    h = ngram_hashes(toks, c.ngram, salt=entity_salt(entities(p)))
                    if len(toks) >= c.min_words and len(h) and bloom.contains(h).mean() >= c.threshold:
                        gone.append(i)
                        continue
                    bloom.add(h)
                    kept_chars += len(p)
                if gone:
                    if kept_chars < c.min_keep_chars and kept_chars < len(text or "") / 2:
                        drop.append(doc_id)
                    else:
                        removed[doc_id] = gone
        (ctx.state_dir / "paragraphs.json").write_text(json.dumps({"removed": removed, "drop": drop}))

    def load(self, state_dir: Path) -> None:
        st = json.loads((Path(state_dir) / "paragraphs.json").read_text())
        self.removed, self.drop = st["removed"], set(st["drop"])

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        kept, dropped = [], []
        for d in docs:
            if d.id in self.drop:
                dropped.append(Dropped(d, self.name, "dedup:paragraphs"))
                continue
            gone = self.removed.get(d.id)
            if gone:
                paras = split_paragraphs(d.text)
                skip = set(gone)
                d.text = "\n\n".join(p for i, p in enumerate(paras) if i not in skip) + "\n"
                d.metadata["paragraphs_removed"] = len(skip)
            kept.append(d)
        return kept, dropped
