"""Mixing: per-source upsampling (e.g. TTP sources x3) and general-domain replay at a target ratio.

Factors are applied by repeating or subsampling whole documents, deterministically from a hash
of the document id, so reruns produce the same mix. Copies get ids ``<id>#r<k>`` and the packer
splits train/test on the base id, so a document and its copies never straddle the split.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from secfoundry.corpus.step import Dropped, GlobalContext, GlobalStep
from secfoundry.core.documents import Document


@dataclass
class MixConfig:
    # Source (or source prefix before ":") -> repeat factor: 3.0 triples, 0.5 keeps half.
    weights: dict[str, float] = field(default_factory=dict)
    replay_sources: list[str] = field(default_factory=lambda: ["general"])  # general-domain sources
    # Target share of replay text (by characters) in the final mix; None keeps replay as is.
    replay_ratio: float | None = None
    seed: int = 0


def base_source(source: str) -> str:
    return source.split(":", 1)[0]


def _unit(doc_id: str, seed: int, k: int = 0) -> float:
    h = hashlib.sha1(f"{seed}:{k}:{doc_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def copies(doc_id: str, factor: float, seed: int) -> int:
    whole = math.floor(factor)
    return whole + (1 if _unit(doc_id, seed) < factor - whole else 0)


class Mix(GlobalStep):
    name = "mix"

    def __init__(self, config: MixConfig | None = None):
        self.config = config or MixConfig()
        self.factors: dict[str, float] = {}

    def _is_replay(self, source: str) -> bool:
        return any(source == r or source.startswith(r + ":") or base_source(source) == r for r in self.config.replay_sources)

    def _weight(self, source: str) -> float:
        w = self.config.weights
        return float(w.get(source, w.get(base_source(source), 1.0)))

    def compute_factors(self, chars: dict[str, int]) -> dict[str, float]:
        factors = {s: self._weight(s) for s in chars}
        r = self.config.replay_ratio
        if r is not None:
            if not 0 <= r < 1:
                raise ValueError(f"replay_ratio must be in [0, 1), got {r}")
            sec = sum(chars[s] * f for s, f in factors.items() if not self._is_replay(s))
            rep = sum(chars[s] for s in factors if self._is_replay(s))
            if rep:
                scale = (r / (1 - r)) * sec / rep
                for s in factors:
                    if self._is_replay(s):
                        factors[s] = scale
        return factors

    def fit(self, ctx: GlobalContext) -> None:
        chars: dict[str, int] = defaultdict(int)
        for batch in ctx.iter_tables(columns=["source", "text"]):
            for s, t in zip(batch.column("source").to_pylist(), batch.column("text").to_pylist()):
                chars[s or "unknown"] += len(t or "")
        factors = self.compute_factors(dict(chars))
        report = {s: {"chars_in": chars[s], "factor": factors[s], "chars_out": round(chars[s] * factors[s])} for s in sorted(chars)}
        (ctx.state_dir / "mix.json").write_text(json.dumps({"factors": factors, "report": report}, indent=1))
        (ctx.artifacts_dir / "mix_report.json").write_text(json.dumps(report, indent=1))

    def load(self, state_dir: Path) -> None:
        self.factors = json.loads((Path(state_dir) / "mix.json").read_text())["factors"]

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        out, dropped = [], []
        for d in docs:
            f = self.factors.get(d.source, self._weight(d.source))
            n = copies(d.id, f, self.config.seed)
            if n == 0:
                dropped.append(Dropped(d, self.name, "mix:subsampled"))
                continue
            out.append(d)
            for k in range(1, n):
                out.append(Document(id=f"{d.id}#r{k}", text=d.text, source=d.source, url=d.url, license=d.license,
                                    title=d.title, version=d.version, metadata={**d.metadata, "mix_copy": k}))
        return out, dropped
