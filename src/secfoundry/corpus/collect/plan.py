"""Stage 1 (collect) planning: recipe inputs -> independent, resumable collect tasks.

One task per connector, per input file, or per crawl. Each task streams documents; the engine
commits a task's documents as one partition (split into files of ``partition_rows``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from secfoundry.corpus.engine.recipe import (CrawlInput, GeneralInput, JsonlInput, ParquetInput,
                                             SourcesInput, WarcInput)
from secfoundry.core.errors import Quarantine
from secfoundry.core.documents import Document


@dataclass
class CollectTask:
    key: str  # partition key, unique in the stage, filesystem-safe
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_.")[:80] or "x"


def plan_tasks(inputs: list[Any], mirror: str | None = None) -> list[CollectTask]:
    from secfoundry.corpus.collect.general import general_files
    from secfoundry.corpus.collect.sources import source_names
    from secfoundry.corpus.collect.warc import expand_paths

    tasks: list[CollectTask] = []
    for i, inp in enumerate(inputs):
        if isinstance(inp, SourcesInput):
            for name in source_names(inp.names, inp.exclude):
                tasks.append(CollectTask(f"src-{_safe(name)}", "sources",
                                         {"name": name, "mirror": inp.mirror or mirror, "max_docs": inp.max_docs}))
        elif isinstance(inp, WarcInput):
            files = expand_paths(inp.paths, inp.base)[: inp.max_files]
            for j, p in enumerate(files):
                tasks.append(CollectTask(f"in{i}-warc-{j:05d}-{_safe(Path(p).name.split('.')[0])}", "warc",
                                         {"path": p, "source": inp.source, "license": inp.license,
                                          "max_docs": inp.max_docs}))
        elif isinstance(inp, (JsonlInput, ParquetInput)):
            kind = "jsonl" if isinstance(inp, JsonlInput) else "parquet"
            opts = dataclasses.asdict(inp)
            opts.pop("kind"), opts.pop("paths")
            for j, p in enumerate(expand_paths(inp.paths)):
                tasks.append(CollectTask(f"in{i}-{kind}-{j:05d}-{_safe(Path(p).name.split('.')[0])}", kind,
                                         {"path": p, **opts}))
        elif isinstance(inp, GeneralInput):
            for j, p in enumerate(general_files(inp.path, inp.files)):
                tasks.append(CollectTask(f"in{i}-general-{_safe(Path(p).name.split('.')[0])}", "general",
                                         {"path": p, "max_docs": inp.max_docs, "chunk_chars": inp.chunk_chars}))
        elif isinstance(inp, CrawlInput):
            seeds = list(inp.seeds)
            if inp.seeds_file:
                seeds += [s.strip() for s in Path(inp.seeds_file).read_text().splitlines()
                          if s.strip() and not s.startswith("#")]
            tasks.append(CollectTask(f"in{i}-crawl", "crawl",
                                     {"seeds": seeds, "options": inp.options, "source": inp.source}))
        else:
            raise TypeError(f"inputs[{i}]: unsupported input {type(inp).__name__}")
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError(f"collect task keys collide: {sorted(k for k in keys if keys.count(k) > 1)}")
    return tasks


def iter_task_documents(task: CollectTask, quarantine: Quarantine, work_dir: Path) -> Iterator[Document]:
    """The documents of one collect task. ``work_dir`` holds task artifacts (crawl WARCs)."""
    p = task.params
    if task.kind == "sources":
        from secfoundry.corpus.collect.sources import iter_source_documents

        yield from iter_source_documents(p["name"], mirror=p.get("mirror"), max_docs=p.get("max_docs"),
                                         quarantine=quarantine)
    elif task.kind == "warc":
        from secfoundry.corpus.collect.warc import iter_warc_documents

        yield from iter_warc_documents(p["path"], source=p["source"], license=p["license"],
                                       max_docs=p.get("max_docs"), quarantine=quarantine)
    elif task.kind == "jsonl":
        from secfoundry.corpus.collect.jsonl import iter_jsonl_documents

        yield from iter_jsonl_documents(p["path"], **{k: v for k, v in p.items() if k != "path"},
                                        quarantine=quarantine)
    elif task.kind == "parquet":
        from secfoundry.corpus.collect.parquet import iter_parquet_documents

        yield from iter_parquet_documents(p["path"], **{k: v for k, v in p.items() if k != "path"},
                                          quarantine=quarantine)
    elif task.kind == "general":
        from secfoundry.corpus.collect.general import iter_general_documents

        yield from iter_general_documents(p["path"], max_docs=p.get("max_docs"),
                                          chunk_chars=p.get("chunk_chars", 4000), quarantine=quarantine)
    elif task.kind == "crawl":
        from secfoundry.corpus.collect.crawler import CrawlConfig, crawl
        from secfoundry.corpus.collect.warc import iter_warc_documents

        opts = dict(p.get("options", {}))
        opts.setdefault("log_path", str(work_dir / f"{task.key}.log.jsonl"))
        cfg = CrawlConfig(seeds=p["seeds"], **opts)
        # A killed attempt left WARC segments: resume from them into a new segment, so pages
        # already fetched are neither fetched nor emitted twice.
        done = sorted(work_dir.glob(f"{task.key}.*.warc.gz"), key=lambda x: int(x.name.split(".")[-3]))
        segment = work_dir / f"{task.key}.{len(done)}.warc.gz"
        crawl(cfg, segment, resume=done)
        for seg in [*done, segment]:
            yield from iter_warc_documents(str(seg), source=p.get("source", "crawl"), quarantine=quarantine)
    else:
        raise ValueError(f"unknown collect task kind {task.kind!r}")
