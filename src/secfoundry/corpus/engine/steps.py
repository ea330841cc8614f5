"""The step API every corpus stage runs on, and the registry that resolves step names.

A *step* transforms or filters batches of :class:`~secfoundry.core.documents.Document`. Two kinds:

``map`` steps (the default; any object with ``run_batch``)::

    class MyStep:
        name = "mystep"                      # registry key, used in recipes: {step: mystep}
        kind = "map"                         # optional, "map" is the default
        def __init__(self, config: MyConfig | None = None): ...   # typed dataclass config
        def setup(self) -> None: ...         # optional: load models once per worker
        def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]: ...

    ``Dropped`` is any object with ``doc`` and ``reason`` (and optionally ``step``) attributes,
    e.g. :class:`secfoundry.corpus.process.base.Dropped` or :class:`Dropped` below. A step may
    also offer ``apply(doc) -> Decision(doc | None, reason)``; the engine falls back to it, one
    document at a time, when ``run_batch`` raises, so one bad document never loses a batch.

``global`` steps need the whole stage input before they can decide (dedup, decontamination
indexes, mixing weights, packing). They run in two phases::

    class MyGlobal(GlobalStep):
        name = "exact_dedup"
        def fit(self, ctx: GlobalContext) -> None: ...   # whole-dataset pass, once, on the driver
                                                          # (use ctx.dataset() for a Ray Data pass);
                                                          # persist results under ctx.state_dir
        def load(self, state_dir: Path) -> None: ...     # on every worker, before run_batch
        def run_batch(self, docs) -> (kept, dropped)      # per partition, like a map step

The engine splits a stage's step list into *phases* before every global step: phase = optional
leading global step + the map steps after it, fused per partition. Each phase writes its own
partition directory, so a crash inside ``fit`` or inside the per-partition pass resumes there.

Step names resolve through: :func:`register_step` (explicit), automatic discovery of classes
with a ``name`` and ``run_batch`` in ``secfoundry.corpus.process.*`` and
``secfoundry.corpus.prepare.*`` modules, and ``"package.module:ClassName"`` paths for plugins.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import pkgutil
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError

log = logging.getLogger(__name__)

DISCOVER_PACKAGES = ("secfoundry.corpus.process", "secfoundry.corpus.prepare")


@dataclass
class Dropped:
    """A document a step removed, and why (short, groupable: ``"lang:de"``, ``"dedup:exact"``)."""

    doc: Document
    step: str
    reason: str


@runtime_checkable
class MapStep(Protocol):
    name: str

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Any]]: ...


@dataclass
class GlobalContext:
    """What a global step's ``fit`` sees: the whole stage input, and where to keep its state."""

    partitions: list[Path]  # committed input Parquet files, in plan order
    state_dir: Path  # fit() writes here; the engine marks it complete after fit returns
    phase_dir: Path  # the phase's output directory (artifacts may go under phase_dir/"artifacts")
    num_cpus: int = 1
    options: dict[str, Any] = field(default_factory=dict)

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
            yield ray.get(head)

    def iter_documents(self) -> Iterator[Document]:
        for batch in self.iter_tables():
            for row in batch.to_pylist():
                yield Document.from_row(row)

    @property
    def artifacts_dir(self) -> Path:
        p = self.phase_dir / "artifacts"
        p.mkdir(parents=True, exist_ok=True)
        return p


class GlobalStep:
    """Base class for steps that need a whole-dataset view; see the module docstring."""

    name: str = "global"
    kind: str = "global"

    def setup(self) -> None:
        """Per-worker initialisation (models, tokenizers)."""

    def fit(self, ctx: GlobalContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, state_dir: Path) -> None:
        """Read what ``fit`` wrote (called in each worker before ``run_batch``)."""

    def run_batch(self, docs: list[Document]) -> tuple[list[Document], list[Dropped]]:
        return docs, []


def step_kind(step: Any) -> str:
    return getattr(step, "kind", "map") or "map"


# ----------------------------------------------------------------------------------------------
# registry

_REGISTRY: dict[str, type] = {}
_DISCOVERED = False


def register_step(cls: type | None = None, *, name: str | None = None):
    """Class decorator: make a step available to recipes as ``{step: <name>}``."""

    def deco(c: type) -> type:
        key = name or getattr(c, "name", "")
        if not key:
            raise ValueError(f"step class {c.__name__} has no name")
        _REGISTRY[key] = c
        return c

    return deco(cls) if cls is not None else deco


def _is_step_class(obj: Any) -> bool:
    return (inspect.isclass(obj) and isinstance(getattr(obj, "name", None), str)
            and callable(getattr(obj, "run_batch", None)) and not inspect.isabstract(obj)
            and obj.__module__ != __name__)


_IMPORTED: set[str] = set()


def _candidate_modules() -> list[str]:
    out = []
    for pkg_name in DISCOVER_PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except Exception as e:  # a broken sibling package must not break the engine
            log.warning("step discovery: cannot import %s: %s", pkg_name, e)
            continue
        out += [f"{pkg_name}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)
                if not m.name.startswith(("_", "cli"))]
    return out


def _import_and_register(mod_name: str) -> None:
    if mod_name in _IMPORTED:
        return
    _IMPORTED.add(mod_name)
    try:
        module = importlib.import_module(mod_name)
    except Exception as e:
        log.warning("step discovery: cannot import %s: %s", mod_name, e)
        return
    for _, obj in inspect.getmembers(module, _is_step_class):
        if obj.__module__ != module.__name__:
            continue  # re-exported from elsewhere; registered by its own module
        key = obj.name
        if key in ("step", "global", "") or key in _REGISTRY:
            continue  # base classes and explicit registrations win
        _REGISTRY[key] = obj


def _discover(name: str | None = None) -> None:
    """Register step classes from the process/prepare modules. With ``name``, modules whose file
    name shares a word with it are tried first, so a worker imports only what it needs (some
    steps pull in heavy libraries)."""
    global _DISCOVERED
    import secfoundry.corpus.engine.builtin_steps  # noqa: F401  (registers itself)

    if name is not None and name in _REGISTRY:
        return
    mods = _candidate_modules()
    if name is not None:
        words = set(name.lower().replace("-", "_").split("_"))
        for m in mods:
            if words & set(m.rsplit(".", 1)[1].split("_")):
                _import_and_register(m)
        if name in _REGISTRY:
            return
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for m in mods:
        _import_and_register(m)


def available_steps() -> dict[str, type]:
    _discover()
    return dict(sorted(_REGISTRY.items()))


def resolve_step_class(name: str) -> type:
    if ":" in name:  # "package.module:ClassName"
        mod_name, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:
            raise InputError(f"cannot import step {name!r}: {e}", field="step") from e
    if name in _REGISTRY:
        return _REGISTRY[name]
    _discover(name)
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise InputError(f"unknown step {name!r}; known steps: {known}", field="step")
    return _REGISTRY[name]


def config_class(step_cls: type) -> type | None:
    """The dataclass a step is configured with: ``Config``/``config_class`` attribute, else the
    annotation of the first ``__init__`` parameter (``def __init__(self, config: XConfig | None)``)."""
    for attr in ("config_class", "Config"):
        c = getattr(step_cls, attr, None)
        if inspect.isclass(c) and dataclasses.is_dataclass(c):
            return c
    try:
        hints = typing.get_type_hints(step_cls.__init__)
    except Exception:
        return None
    params = [p for p in inspect.signature(step_cls.__init__).parameters.values() if p.name != "self"]
    if not params:
        return None
    ann = hints.get(params[0].name)
    candidates = typing.get_args(ann) if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union else (ann,)
    for c in candidates:
        if inspect.isclass(c) and dataclasses.is_dataclass(c):
            return c
    return None


def build_config(cfg_cls: type, options: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise InputError(f"unknown option(s) {unknown} for {cfg_cls.__name__}; valid: {sorted(names)}",
                         field=where)
    return cfg_cls(**options)


def build_step(name: str, options: dict[str, Any] | None = None) -> Any:
    """Instantiate a step from its registry name and recipe options."""
    cls = resolve_step_class(name)
    options = dict(options or {})
    cfg_cls = config_class(cls)
    if cfg_cls is not None:
        return cls(build_config(cfg_cls, options, f"steps.{name}"))
    if options:
        return cls(**options)
    return cls()
