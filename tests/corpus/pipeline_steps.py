"""Steps used only by the pipeline tests (resolved as ``pipeline_steps:<Class>``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from secfoundry.corpus.step import Dropped, GlobalContext, GlobalStep
from secfoundry.core.documents import Document


@dataclass
class SlowConfig:
    seconds: float = 0.1  # per batch: makes a phase long enough to be killed half-way


class Slow:
    name = "slow"

    def __init__(self, config: SlowConfig | None = None):
        self.config = config or SlowConfig()

    def run_batch(self, docs):
        time.sleep(self.config.seconds)
        for d in docs:
            d.metadata["slow"] = True
        return docs, []


@dataclass
class BoomConfig:
    bad: str = "boom"  # documents whose text contains this make the step raise


class Boom:
    """Raises on a whole batch when one document is bad (the engine must isolate that one)."""

    name = "boom"

    def __init__(self, config: BoomConfig | None = None):
        self.config = config or BoomConfig()

    def run_batch(self, docs):
        if any(self.config.bad in d.text for d in docs):
            raise ValueError("cannot handle this document")
        return docs, []


@dataclass
class DupTextConfig:
    pass


class DupText(GlobalStep):
    """Global step: drops every document whose exact text appeared earlier in plan order."""

    name = "dup_text"

    def __init__(self, config: DupTextConfig | None = None):
        self.drop: dict[str, str] = {}

    def fit(self, ctx: GlobalContext) -> None:
        first: dict[str, str] = {}
        drop: dict[str, str] = {}
        for batch in ctx.iter_tables(columns=["id", "text"]):
            for i, t in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
                if first.setdefault(t, i) != i:
                    drop[i] = first[t]
        (ctx.state_dir / "drop.json").write_text(json.dumps(drop))

    def load(self, state_dir: Path) -> None:
        self.drop = json.loads((Path(state_dir) / "drop.json").read_text())

    def run_batch(self, docs: list[Document]):
        kept = [d for d in docs if d.id not in self.drop]
        return kept, [Dropped(d, self.name, "dup:text") for d in docs if d.id in self.drop]


@dataclass
class SourceCapConfig:
    cap: int = 3


class SourceCap(GlobalStep):
    """Global step whose fit is a Ray Data pass: keeps the first ``cap`` ids (sorted) per source."""

    name = "source_cap"

    def __init__(self, config: SourceCapConfig | None = None):
        self.config = config or SourceCapConfig()
        self.keep: set[str] = set()

    def fit(self, ctx: GlobalContext) -> None:
        cap = self.config.cap

        def per_block(batch):  # runs in the cluster: per source, a count and the `cap` smallest ids
            by: dict[str, list[str]] = {}
            for i, src in zip(batch["id"], batch["source"]):
                by.setdefault(str(src), []).append(str(i))
            return {"source": list(by), "n": [len(v) for v in by.values()],
                    "ids": [json.dumps(sorted(v)[:cap]) for v in by.values()]}

        counts: dict[str, int] = {}
        cand: dict[str, list[str]] = {}
        for r in ctx.dataset(columns=["id", "source"]).map_batches(per_block, batch_format="numpy").take_all():
            counts[r["source"]] = counts.get(r["source"], 0) + int(r["n"])  # driver-side reduce
            cand.setdefault(r["source"], []).extend(json.loads(r["ids"]))
        keep = [i for ids in cand.values() for i in sorted(ids)[:cap]]
        (ctx.state_dir / "keep.json").write_text(json.dumps({"keep": keep, "counts": counts}))

    def load(self, state_dir: Path) -> None:
        self.keep = set(json.loads((Path(state_dir) / "keep.json").read_text())["keep"])

    def run_batch(self, docs: list[Document]):
        return ([d for d in docs if d.id in self.keep],
                [Dropped(d, self.name, "cap:source") for d in docs if d.id not in self.keep])


@dataclass
class CountOnlyConfig:
    pass


class CountOnly(GlobalStep):
    """A global step that only writes state (like ``pack``): documents pass through unchanged."""

    name = "count_only"

    def __init__(self, config: CountOnlyConfig | None = None):
        self.config = config or CountOnlyConfig()

    def fit(self, ctx: GlobalContext) -> None:
        n = sum(b.num_rows for b in ctx.iter_tables(columns=["id"]))
        (ctx.state_dir / "count.json").write_text(json.dumps({"docs": n}))


def _rows(path: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


@dataclass
class ParallelCountConfig:
    pass


class ParallelCount(GlobalStep):
    """A global step whose fit has a parallel half (ctx.map_partitions) and a serial half."""

    name = "parallel_count"

    def __init__(self, config: ParallelCountConfig | None = None):
        self.config = config or ParallelCountConfig()

    def fit(self, ctx: GlobalContext) -> None:
        n = sum(ctx.map_partitions(_rows))
        (ctx.state_dir / "count.json").write_text(json.dumps({"docs": n}))


@dataclass
class PrebuiltIndexConfig:
    value: int = 7


class PrebuiltIndex(GlobalStep):
    """A global step with a corpus-independent ``prebuild`` (like decontamination's benchmark index)."""

    name = "prebuilt_index"

    def __init__(self, config: PrebuiltIndexConfig | None = None):
        self.config = config or PrebuiltIndexConfig()

    def prebuild(self) -> dict:
        import os

        return {"value": self.config.value * 6, "pid": os.getpid()}

    def fit(self, ctx: GlobalContext) -> None:
        import os

        pre = ctx.prebuilt
        ahead = pre is not None
        pre = pre or self.prebuild()
        (ctx.state_dir / "index.json").write_text(json.dumps({"ahead": ahead, "value": pre["value"],
                                                               "elsewhere": pre["pid"] != os.getpid()}))
