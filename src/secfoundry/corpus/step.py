"""The one step API every corpus stage runs on (the registry that resolves names is ``engine/registry.py``).

A *step* transforms or filters batches of :class:`~secfoundry.core.documents.Document`. Two kinds:

``map`` steps (the default; subclass :class:`Step` and write ``apply``, or any object with
``run_batch``)::

    class MyStep(Step):
        name = "mystep"                      # registry key, used in recipes: {step: mystep}
        kind = "map"                         # optional, "map" is the default
        def __init__(self, config: MyConfig | None = None): ...   # typed dataclass config
        def setup(self) -> None: ...         # optional: load models once per worker
        def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]: ...

    A step returns what it kept and what it dropped, each drop a :class:`Dropped` (document,
    step, short groupable reason). :class:`Step` derives ``run_batch`` from
    ``apply(doc) -> Decision(doc | None, reason)``; when a vectorised ``run_batch`` raises, the
    engine retries the batch one document at a time, so one bad document never loses a batch.

``global`` steps need the whole stage input before they can decide (dedup, decontamination
indexes, mixing weights, packing). They run in two phases::

    class MyGlobal(GlobalStep):
        name = "exact_dedup"
        def fit(self, ctx: GlobalContext) -> None: ...   # whole-dataset pass, once, on the driver
                                                          # (use ctx.dataset() for a Ray Data pass);
                                                          # persist results under ctx.state_dir
        def load(self, state_dir: Path) -> None: ...     # on every worker, before run_batch
        def run_batch(self, docs) -> (kept, dropped)      # per partition, like a map step
        def prebuild(self) -> Any: ...                   # optional: the part of fit that needs no
                                                          # corpus (a benchmark index); the engine may
                                                          # run it ahead, beside the previous phase's
                                                          # serial work, and hands it over as ctx.prebuilt

The engine splits a stage's step list into *phases* before every global step: phase = optional
leading global step + the map steps after it, fused per partition. Each phase writes its own
partition directory, so a crash inside ``fit`` or inside the per-partition pass resumes there.

Steps do not know their neighbours: a recipe (``engine/recipe.py``) is the only place that
orders them. Step names resolve through ``engine/registry.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from secfoundry.core.documents import Document


@dataclass
class Dropped:
    """A document a step removed, and why (short, groupable: ``"lang:de"``, ``"dedup:exact"``)."""

    doc: Document
    step: str
    reason: str


CUTS_KEY = "_cuts"  # metadata key the engine pops: spans a step cut out of a kept document


def record_cut(doc: Document, step: str, reason: str, text: str, evidence: dict[str, Any] | None = None) -> None:
    """Note that ``step`` cut ``text`` out of ``doc`` (the document stays). The engine writes each
    cut to the phase's ``cuts/<partition>.parquet`` (removed text, reason, evidence) and counts
    its characters per step and source; it never reaches the kept document's metadata."""
    doc.metadata.setdefault(CUTS_KEY, []).append({"step": step, "reason": reason, "text": text, **(evidence or {})})


@dataclass
class Decision:
    doc: Document | None  # None: dropped
    reason: str | None = None

    @property
    def kept(self) -> bool:
        return self.doc is not None


class Step:
    """A map step: subclasses implement ``apply``; ``run_batch`` may be overridden to vectorise."""

    name: str = "step"
    kind: str = "map"

    def setup(self) -> None:
        """Per-worker initialisation (models, tokenizers)."""

    def apply(self, doc: Document) -> Decision:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, doc: Document) -> Decision:
        return self.safe_apply(doc)

    def safe_apply(self, doc: Document) -> Decision:
        try:
            return self.apply(doc)
        except Exception as e:  # one bad document never stops the batch
            return Decision(None, f"error:{type(e).__name__}: {str(e)[:200]}")

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        kept: list[Document] = []
        dropped: list[Dropped] = []
        for doc in docs:
            d = self.safe_apply(doc)
            if d.doc is not None:
                kept.append(d.doc)
            else:
                dropped.append(Dropped(doc, self.name, d.reason or self.name))
        return kept, dropped


def run_steps(steps: list[Any], docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
    """Apply map steps, in the order given (a recipe's), to a batch; returns survivors and every
    drop with its step."""
    all_dropped: list[Dropped] = []
    for step in steps:
        docs, dropped = step.run_batch(docs)
        all_dropped.extend(dropped)
    return docs, all_dropped


@dataclass
class GlobalContext:
    """What a global step's ``fit`` sees: the whole stage input, and where to keep its state."""

    partitions: list[Path]  # committed input Parquet files, in plan order
    state_dir: Path  # fit() writes here; the engine marks it complete after fit returns
    phase_dir: Path  # the phase's output directory (artifacts may go under phase_dir/"artifacts")
    num_cpus: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    prebuilt: Any = None  # what the step's prebuild() returned when the engine ran it ahead (else None)
    on_parallel_done: Callable[[], None] | None = None  # called once map_partitions' tasks are all done

    def dataset(self, columns: list[str] | None = None):
        """The stage input as a Ray Dataset (for cluster-scale passes: map_batches, groupby)."""
        import ray.data

        ds = ray.data.read_parquet([str(p) for p in self.partitions])
        return ds.select_columns(columns) if columns else ds

    def iter_tables(self, columns: list[str] | None = None, batch_size: int = 8192) -> Iterator[Any]:
        """Driver-side pass: pyarrow RecordBatches of the input, partition by partition."""
        import pyarrow.parquet as pq

        for path in self.partitions:
            pf = pq.ParquetFile(path)
            yield from pf.iter_batches(batch_size=batch_size, columns=columns)

    def map_partitions(self, fn: Callable[..., Any], *args: Any) -> Iterator[Any]:
        """``fn(path, *args)`` for every input partition, results yielded in plan order.

        The parallel half of a global fit (hashing, signatures) runs as Ray tasks when Ray is up
        and there is more than one CPU, with a bounded number in flight so results stream to
        the driver's serial half instead of piling up; otherwise in this process."""
        import ray

        paths = [str(p) for p in self.partitions]
        if self.num_cpus <= 1 or len(paths) <= 1 or not ray.is_initialized():
            for p in paths:
                yield fn(p, *args)
            self._parallel_done()
            return
        remote = ray.remote(num_cpus=1)(fn)
        window = 2 * self.num_cpus
        pending = [remote.remote(p, *args) for p in paths[:window]]
        nxt = len(pending)
        while pending:
            head = pending.pop(0)
            if nxt < len(paths):
                pending.append(remote.remote(paths[nxt], *args))
                nxt += 1
            result = ray.get(head)
            if not pending:
                self._parallel_done()  # the CPUs are free: the driver's serial half starts now
            yield result

    def _parallel_done(self) -> None:
        cb, self.on_parallel_done = self.on_parallel_done, None
        if cb is not None:
            cb()

    def iter_documents(self) -> Iterator[Document]:
        for batch in self.iter_tables():
            for row in batch.to_pylist():
                yield Document.from_row(row)

    @property
    def artifacts_dir(self) -> Path:
        p = self.phase_dir / "artifacts"
        p.mkdir(parents=True, exist_ok=True)
        return p


class GlobalStep(Step):
    """A step that needs a whole-dataset view (``fit``) before its per-partition pass; see the
    module docstring. Without a ``run_batch`` of its own it keeps every document as it is."""

    name: str = "global"
    kind: str = "global"

    def fit(self, ctx: GlobalContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, state_dir: Path) -> None:
        """Read what ``fit`` wrote (called in each worker before ``run_batch``)."""

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        return docs, []


def step_kind(step: Any) -> str:
    return getattr(step, "kind", "map") or "map"

