"""Recipes: typed dataclasses for a whole corpus run, loadable from YAML (litgpt style).

A recipe names its inputs (stage 1, collect), then an ordered list of stages, each an ordered
list of steps resolved through the step registry (``engine/registry.py``)::

    name: quickstart
    inputs:
      - {kind: sources, names: [all]}            # every connector, from --mirror or live
      - {kind: general, path: /data/general-text, max_docs: 2000}
      - {kind: warc, paths: ["crawl/*.warc.gz"]}
    stages:
      - name: process
        steps:
          - {step: extract}
          - {step: langid, min_score: 0.5}
    engine: {num_cpus: 2, partition_rows: 2000}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from secfoundry.core.errors import InputError


# ---------------------------------------------------------------------------------------- inputs
@dataclass
class SourcesInput:
    """Documents from the high-value connectors in ``corpus/sources`` (rendered Markdown)."""

    kind: str = "sources"
    names: list[str] = field(default_factory=lambda: ["all"])  # registry names, or "all"
    exclude: list[str] = field(default_factory=list)
    mirror: str | None = None  # overrides the run's --mirror for these sources
    max_docs: int | None = None  # per source; None = all


@dataclass
class WarcInput:
    """WARC / WET files (Common Crawl layout). ``paths`` may hold globs, ``*.paths[.gz]``
    manifests (one relative path per line, resolved against ``base``) and http(s) URLs."""

    kind: str = "warc"
    paths: list[str] = field(default_factory=list)
    base: str = ""  # prefix for manifest entries: a directory or https://data.commoncrawl.org/
    source: str = "web"  # the Document.source given to these pages
    license: str = ""  # e.g. Common Crawl terms of use; pages keep their own copyright
    max_docs: int | None = None  # per file
    max_files: int | None = None


@dataclass
class JsonlInput:
    """JSON Lines (optionally .gz) with a field mapping onto Document fields."""

    kind: str = "jsonl"
    paths: list[str] = field(default_factory=list)
    text_field: str = "text"
    id_field: str | None = None  # else sha1(file name, line number)
    url_field: str | None = "url"
    title_field: str | None = "title"
    source_field: str | None = None  # a per-row source; else `source`
    source: str = "jsonl"
    license: str = ""
    metadata_fields: list[str] = field(default_factory=list)  # copied into Document.metadata
    max_docs: int | None = None  # per file


@dataclass
class ParquetInput:
    """Parquet files: our own stage output (Document columns) or any table with a text column."""

    kind: str = "parquet"
    paths: list[str] = field(default_factory=list)
    text_field: str = "text"
    id_field: str | None = "id"
    url_field: str | None = "url"
    title_field: str | None = "title"
    source: str = "parquet"  # used when the table has no `source` column
    license: str = ""
    max_docs: int | None = None


@dataclass
class GeneralInput:
    """General-domain replay text (e.g. ../shared/data/datasets/general-text)."""

    kind: str = "general"
    path: str = ""
    files: list[str] = field(default_factory=list)  # file names inside `path`; empty = all
    max_docs: int | None = None  # per file
    chunk_chars: int = 4000  # plain .txt files are cut into documents of about this size


@dataclass
class CrawlInput:
    """Run the wide-net crawler (collect/crawler.py) into a WARC, then read it back."""

    kind: str = "crawl"
    seeds: list[str] = field(default_factory=list)
    seeds_file: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # CrawlConfig fields
    source: str = "crawl"


INPUT_KINDS: dict[str, type] = {
    "sources": SourcesInput, "warc": WarcInput, "wet": WarcInput, "jsonl": JsonlInput,
    "parquet": ParquetInput, "general": GeneralInput, "crawl": CrawlInput,
}
InputConfig = SourcesInput | WarcInput | JsonlInput | ParquetInput | GeneralInput | CrawlInput


# ---------------------------------------------------------------------------------------- stages
STEP_KEYS = ("step", "enabled", "sources", "skip_sources")  # engine keys; the rest configure the step


@dataclass
class StepSpec:
    step: str  # registry name or "package.module:Class"
    options: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    # Routing by Document.source (fnmatch patterns): the step sees only matching documents;
    # the others pass it untouched (e.g. general replay skips the relevance filters).
    sources: list[str] = field(default_factory=list)  # empty: all
    skip_sources: list[str] = field(default_factory=list)

    def fingerprint(self) -> dict[str, Any]:
        fp: dict[str, Any] = {"step": self.step, "options": self.options}
        if self.sources or self.skip_sources:
            fp.update(sources=self.sources, skip_sources=self.skip_sources)
        return fp

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"step": self.step, **self.options}
        if not self.enabled:
            d["enabled"] = False
        if self.sources:
            d["sources"] = self.sources
        if self.skip_sources:
            d["skip_sources"] = self.skip_sources
        return d


@dataclass
class StageConfig:
    name: str
    steps: list[StepSpec] = field(default_factory=list)


@dataclass
class EngineConfig:
    ray_address: str | None = None  # None/"local": start a local Ray; "auto" or ray://host:port
    num_cpus: int | None = None  # local Ray only; None = all cores
    object_store_mb: int = 256  # local Ray object store (partitions are read by workers, not passed)
    concurrency: int | None = None  # workers per stage; None = num_cpus of the cluster
    partition_rows: int = 2000  # documents per collect partition (later stages keep partitions)
    batch_size: int = 512  # documents per run_batch call inside a partition
    compression: str = "zstd"
    keep_excluded: bool = True  # write the per-stage exclusion Parquet (reason column)
    verbose: bool = False  # show Ray worker logs
    warmup: bool = True  # set each step up once on the driver first (first-use model training/downloads)
    runtime_env: dict[str, Any] | None = None  # Ray runtime_env for clusters (working_dir, pip, env_vars)


@dataclass
class Recipe:
    name: str = "recipe"
    description: str = ""
    inputs: list[Any] = field(default_factory=list)
    stages: list[StageConfig] = field(default_factory=list)
    engine: EngineConfig = field(default_factory=EngineConfig)
    mirror: str | None = None  # default connector mirror (the CLI's --mirror overrides)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form settings for later stages

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, file: str | None = None) -> "Recipe":
        if not isinstance(data, dict):
            raise InputError("a recipe must be a mapping", file=file)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown recipe key(s) {unknown}; valid: {sorted(known)}", file=file)
        inputs = [_parse_input(x, i, file) for i, x in enumerate(data.get("inputs") or [])]
        stages = [_parse_stage(s, i, file) for i, s in enumerate(data.get("stages") or [])]
        names = [s.name for s in stages]
        if "collect" in names or len(set(names)) != len(names):
            raise InputError(f"stage names must be unique and not 'collect': {names}", file=file, field="stages")
        engine = _dataclass_from(EngineConfig, data.get("engine") or {}, file, "engine")
        return cls(name=str(data.get("name", "recipe")), description=str(data.get("description", "")),
                   inputs=inputs, stages=stages, engine=engine, mirror=data.get("mirror"),
                   extra=dict(data.get("extra") or {}))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Recipe":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise InputError(f"invalid YAML: {e}", file=str(path)) from e
        return cls.from_dict(data or {}, file=str(path))

    @classmethod
    def collect_only(cls, *, sources: list[str] = (), warc: list[str] = (), jsonl: list[str] = (),
                     parquet: list[str] = (), general: str | None = None, max_docs: int | None = None) -> "Recipe":
        """A recipe of inputs only (``secfoundry corpus collect`` without a recipe file)."""
        inputs: list[Any] = []
        if sources:
            inputs.append(SourcesInput(names=list(sources), max_docs=max_docs))
        if warc:
            inputs.append(WarcInput(paths=list(warc), max_docs=max_docs))
        if jsonl:
            inputs.append(JsonlInput(paths=list(jsonl), max_docs=max_docs))
        if parquet:
            inputs.append(ParquetInput(paths=list(parquet), max_docs=max_docs))
        if general:
            inputs.append(GeneralInput(path=str(general), max_docs=max_docs))
        if not inputs:
            raise InputError("give a recipe or at least one of --source/--warc/--jsonl/--parquet/--general")
        return cls(name="collect", inputs=inputs)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stages"] = [{"name": s.name, "steps": [st.to_dict() for st in s.steps]} for s in self.stages]
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def fingerprint(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _dataclass_from(cls: type, data: dict[str, Any], file: str | None, where: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping, got {type(data).__name__}", file=file, field=where)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"unknown key(s) {unknown} for {cls.__name__}; valid: {sorted(names)}",
                         file=file, field=where)
    try:
        return cls(**data)
    except TypeError as e:
        raise InputError(str(e), file=file, field=where) from e


def _parse_input(x: Any, i: int, file: str | None) -> Any:
    if not isinstance(x, dict) or "kind" not in x:
        raise InputError("each input needs a `kind`", file=file, field=f"inputs[{i}]")
    kind = x["kind"]
    if kind not in INPUT_KINDS:
        raise InputError(f"unknown input kind {kind!r}; valid: {sorted(INPUT_KINDS)}", file=file,
                         field=f"inputs[{i}].kind")
    cfg = _dataclass_from(INPUT_KINDS[kind], x, file, f"inputs[{i}]")
    for attr in ("paths", "names", "files", "seeds", "exclude"):
        if isinstance(getattr(cfg, attr, None), str):
            setattr(cfg, attr, [getattr(cfg, attr)])  # a single string is a one-item list
    return cfg


def _parse_stage(s: Any, i: int, file: str | None) -> StageConfig:
    if not isinstance(s, dict) or "name" not in s:
        raise InputError("each stage needs a `name`", file=file, field=f"stages[{i}]")
    steps = []
    for j, st in enumerate(s.get("steps") or []):
        where = f"stages[{i}].steps[{j}]"
        if isinstance(st, str):
            st = {"step": st}
        if not isinstance(st, dict) or "step" not in st:
            raise InputError("each step needs a `step` name", file=file, field=where)
        opts = {k: v for k, v in st.items() if k not in STEP_KEYS}
        routing = {}
        for k in ("sources", "skip_sources"):
            v = st.get(k) or []
            routing[k] = [v] if isinstance(v, str) else [str(x) for x in v]
        steps.append(StepSpec(step=str(st["step"]), options=opts, enabled=bool(st.get("enabled", True)), **routing))
    return StageConfig(name=str(s["name"]), steps=steps)


# The process stage of configs/corpus/*.yaml: the default chain (``corpus audit-filters`` replays it).
PROCESS_STEPS = ("extract", "contenttype", "langid", "keywords", "relevance", "quality", "pii")


def process_steps(config: dict[str, Any] | None = None, names: tuple[str, ...] = PROCESS_STEPS) -> list[Any]:
    """The map steps ``names``, in that order, each configured from ``config[<name>]`` (a mapping;
    ``False`` disables the step, as ``langid: false`` does in a recipe)."""
    from secfoundry.corpus.engine.registry import build_step

    config = config or {}
    return [build_step(n, config.get(n) or {}) for n in names if config.get(n, {}) is not False]
