"""Small generic steps the engine ships (the security-specific ones live in process/ and prepare/)."""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, field

from secfoundry.corpus.step import Dropped
from secfoundry.corpus.engine.registry import register_step
from secfoundry.core.documents import Document


@dataclass
class LengthFilterConfig:
    min_chars: int = 1
    max_chars: int | None = None  # longer documents are dropped (e.g. giant dumps); None = no cap


@register_step
class LengthFilter:
    """Drops documents whose text is shorter/longer than the bounds (``length:short|long``)."""

    name = "length_filter"

    def __init__(self, config: LengthFilterConfig | None = None):
        self.config = config or LengthFilterConfig()

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        kept, dropped = [], []
        for d in docs:
            n = len(d.text.strip())
            if n < self.config.min_chars:
                dropped.append(Dropped(d, self.name, "length:short"))
            elif self.config.max_chars is not None and n > self.config.max_chars:
                dropped.append(Dropped(d, self.name, "length:long"))
            else:
                kept.append(d)
        return kept, dropped


@dataclass
class SourceFilterConfig:
    include: list[str] = field(default_factory=list)  # fnmatch patterns on Document.source; empty = all
    exclude: list[str] = field(default_factory=list)


@register_step
class SourceFilter:
    """Keeps documents whose source matches ``include`` and not ``exclude`` (``source:excluded``)."""

    name = "source_filter"

    def __init__(self, config: SourceFilterConfig | None = None):
        self.config = config or SourceFilterConfig()

    def _keep(self, source: str) -> bool:
        inc = not self.config.include or any(fnmatch.fnmatch(source, p) for p in self.config.include)
        return inc and not any(fnmatch.fnmatch(source, p) for p in self.config.exclude)

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        kept = [d for d in docs if self._keep(d.source)]
        dropped = [Dropped(d, self.name, "source:excluded") for d in docs if not self._keep(d.source)]
        return kept, dropped


@dataclass
class SampleConfig:
    fraction: float = 1.0  # of each source's documents to keep
    per_source: dict[str, float] = field(default_factory=dict)  # overrides by exact source name
    seed: str = "0"


@register_step
class Sample:
    """Deterministic sampling by hash of the document id: the same documents on every run and
    resume, whatever the partitioning (``sample:out``)."""

    name = "sample"

    def __init__(self, config: SampleConfig | None = None):
        self.config = config or SampleConfig()

    def _u(self, doc_id: str) -> float:
        h = hashlib.blake2b(f"{self.config.seed}\x1f{doc_id}".encode(), digest_size=8).digest()
        return int.from_bytes(h, "big") / 2**64

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        kept, dropped = [], []
        for d in docs:
            frac = self.config.per_source.get(d.source, self.config.fraction)
            (kept if self._u(d.id) < frac else dropped).append(d)
        return kept, [Dropped(d, self.name, "sample:out") for d in dropped]
