"""Exact duplicate removal on a normalised text hash (case, Unicode width and whitespace folded).

The first document in plan order (sources as the recipe lists them) is kept; every later copy
is dropped with reason ``dedup:exact`` and ``duplicate_of`` naming the keeper.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import xxhash

from secfoundry.corpus.step import Dropped, GlobalContext, GlobalStep
from secfoundry.corpus.prepare.text import normalize
from secfoundry.core.documents import Document


@dataclass
class ExactDedupConfig:
    normalize: bool = True  # False: byte-identical texts only


class ExactDedup(GlobalStep):
    name = "exact_dedup"

    def __init__(self, config: ExactDedupConfig | None = None):
        self.config = config or ExactDedupConfig()
        self.duplicate_of: dict[str, str] = {}

    def key(self, text: str) -> int:
        t = normalize(text) if self.config.normalize else text
        return xxhash.xxh64_intdigest(t.encode("utf-8", "surrogatepass"))

    def fit(self, ctx: GlobalContext) -> None:
        first: dict[int, str] = {}
        dups: dict[str, str] = {}
        for batch in ctx.iter_tables(columns=["id", "text"]):
            for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
                k = self.key(text or "")
                keeper = first.setdefault(k, doc_id)
                if keeper != doc_id:
                    dups[doc_id] = keeper
        (ctx.state_dir / "duplicates.json").write_text(json.dumps(dups))

    def load(self, state_dir: Path) -> None:
        self.duplicate_of = json.loads((Path(state_dir) / "duplicates.json").read_text())

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        return drop_marked(docs, self.duplicate_of, self.name, "dedup:exact")


def drop_marked(docs: list[Document], duplicate_of: dict[str, str], step: str,
                reason: str) -> tuple[list[Document], list[Dropped]]:
    """Drop the documents a dedup fit marked, recording which document each one duplicates."""
    kept, dropped = [], []
    for d in docs:
        keeper = duplicate_of.get(d.id)
        if keeper is None:
            kept.append(d)
        else:
            d.metadata["duplicate_of"] = keeper
            dropped.append(Dropped(d, step, reason))
    return kept, dropped
